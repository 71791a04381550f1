/**
 * The engine's own cost per step on top of the executor: 100 `echo` steps (each streaming one line
 * through redaction and the event sink) over one connection to a loopback sshd.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startSshd } from '../dev/sim/sshd.js';
import { parseSiteProfile } from '../src/config/site.js';
import { runToEnd } from '../src/engine/engine.js';
import { inProcessApprovals, MemoryAttempts } from '../src/engine/in-process.js';
import { parseRunbook } from '../src/runbook/load.js';
import { connectSsh } from '../src/ssh/executor.js';

const STEPS = 100;

export async function benchEngineSteps(): Promise<Record<string, number>> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'capi-bench-engine-'));
  const home = path.join(root, 'home');
  await mkdir(home);
  const sshd = await startSshd({ dir: path.join(root, 'sshd'), homeDir: home, pathPrepend: [] });
  const steps = Array.from(
    { length: STEPS },
    (_, i) => `  - id: s${i}\n    title: Step ${i}\n    run: echo "step ${i} OS_PASSWORD=not-really"\n`,
  ).join('');
  const runbook = parseRunbook(
    '/bench/bench.yaml',
    `name: bench\nsummary: b\nsource: b\nsteps:\n${steps}`,
    new Map(),
  );
  const site = parseSiteProfile(
    {
      name: 'bench',
      openrc: '~/admin-openrc',
      capi_project_id: '0123456789abcdef0123456789abcdef',
      mgmt_server: 'capi-mgmt-v2',
      mgmt_fip: '127.0.0.1',
      mgmt_ssh_user: 'ubuntu',
      mgmt_ssh_key: '~/.ssh/id_ed25519',
      mgmt_kubeconfig: '~/capi-mgmt.kubeconfig',
      workload_cluster: 'capi-test-1',
    },
    'bench',
  );
  const executor = await connectSsh({ target: sshd.target });
  try {
    let events = 0;
    const heapBefore = process.memoryUsage().heapUsed;
    const start = performance.now();
    const outcome = await runToEnd({
      runId: 'bench',
      runbook,
      params: {},
      site,
      requestedBy: 'bench',
      executor,
      approvals: inProcessApprovals(async () => ({ approved: false, by: 'bench', at: '', reason: 'denied' })),
      attempts: new MemoryAttempts(),
      emit: () => {
        events += 1;
      },
    });
    const totalMs = performance.now() - start;
    if (outcome.status !== 'succeeded') throw new Error(`bench run ${outcome.status}: ${outcome.message}`);
    return {
      steps: STEPS,
      events,
      total_ms: Math.round(totalMs),
      per_step_ms: Math.round((totalMs / STEPS) * 100) / 100,
      heap_growth_mb: Math.round(((process.memoryUsage().heapUsed - heapBefore) / 1048576) * 10) / 10,
    };
  } finally {
    await executor.close();
    await sshd.stop();
    await rm(root, { recursive: true, force: true });
  }
}
