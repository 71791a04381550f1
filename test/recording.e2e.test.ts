import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { type SimJumphost, startSimJumphost } from '../dev/sim/jumphost.js';
import { parseSiteProfile } from '../src/config/site.js';
import { runToEnd } from '../src/engine/engine.js';
import { MemoryAttempts } from '../src/engine/in-process.js';
import { readRecording, writeRecording } from '../src/recording/format.js';
import { RecordingExecutor } from '../src/recording/record.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { connectSsh } from '../src/ssh/executor.js';
import { ofType, recorder, runOptions, scriptedApprovals, testRunbook } from './support/engine.js';
import { spawnCollecting } from './support/process.js';
import { ScriptedExecutor } from './support/scripted-executor.js';
import { CORPUS_KEEP, CORPUS_SECRETS, SECRET_CORPUS } from './support/secret-corpus.js';

/**
 * Recordings of real outputs: the one shipped (the seed's as-executed outputs) passes check-recording and a
 * changed output shape fails it; the simulator serves a recording as a scenario; `record` keeps no secret.
 */

const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;
const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const SEED = new URL('../dev/sim/recordings/seed-2026-06-10', import.meta.url).pathname;

let runbooks: RunbookSet;
let dir: string;
const sims: SimJumphost[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
  dir = await mkdtemp(path.join(os.tmpdir(), 'capi-recording-'));
});
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}) {
  return spawnCollecting(process.execPath, [BIN, ...args], {
    env: { ...process.env, COMMANDS_DIR: COMMANDS, SITE_FILE: '', ...env },
  }).done;
}

/** Runs diagnose on a simulated jumphost and returns its findings. */
async function diagnoseOn(sim: SimJumphost): Promise<string[]> {
  const executor = await connectSsh({ target: sim.target });
  try {
    const rec = recorder();
    const runbook = runbooks.runbooks.get('diagnose');
    if (runbook === undefined) throw new Error('no diagnose');
    const outcome = await runToEnd({
      ...runOptions(runbook, executor, { emit: rec.emit }),
      site: parseSiteProfile(sim.site, 'simulated site'),
    });
    expect(outcome.status).toBe('succeeded');
    return ofType(rec.events, 'decision').map((d) => d.message);
  } finally {
    await executor.close();
  }
}

describe('the shipped recording (the seed documents as executed)', () => {
  it('should pass check-recording, finding what the seed found', async () => {
    const r = await cli(['check-recording', SEED]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('diagnose: 16 of 24 step(s) checked against the recording, 6 not recorded');
    for (const issue of [
      'D-042 cosmetic health',
      'LB-failover (ERROR/ONLINE)',
      'Cluster not Available on an LB timeout',
      'amphora orphans (failed spawn)',
      'amphora orphans (zombies)',
      'amphora headroom',
      'juju-macaroon',
    ]) {
      expect(r.stdout).toContain(`note: finds: ${issue}`);
    }
    expect(r.stdout).toMatch(
      /no problems: every recorded output parses and yields what the runbooks read\n$/,
    );
  });

  it('should fail check-recording, naming the step and what broke, when an output changes shape', async () => {
    const changed = path.join(dir, 'changed-shape');
    await cp(SEED, changed, { recursive: true });
    const file = path.join(changed, 'diagnose.yaml');
    const recorded = parseYaml(await readFile(file, 'utf8')) as {
      commands: { step: string; stdout?: string }[];
    };
    for (const c of recorded.commands) {
      // A client that names the health fields otherwise, and one that wraps the LB list in an object.
      if (c.step === 'magnum-health') c.stdout = (c.stdout ?? '').replace(/"health_status/g, '"healthStatus');
      if (c.step === 'load-balancers') c.stdout = `loadbalancers:\n${(c.stdout ?? '').replace(/^/gm, '  ')}`;
    }
    await writeFile(file, stringify(recorded));
    const r = await cli(['check-recording', changed]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      '  PROBLEM  magnum-health\n             capture health yields nothing from the output: out.health_status is not in it, so default() fell back\n             capture reason yields nothing (null) from the output\n',
    );
    expect(r.stdout).toMatch(
      /PROBLEM {2}load-balancers\n {13}capture error_online_lbs throws: .*filter\(\) needs a list/,
    );
    expect(r.stdout).toMatch(/\n\d+ problem\(s\)\n$/);
  });

  it('should be served by the simulator as a scenario: diagnose reports what the seed found', async () => {
    const sim = await startSimJumphost({ scenario: SEED, timeScale: 0.01 });
    sims.push(sim);
    const findings = await diagnoseOn(sim);
    const issues = findings.map((f) => f.split(/[:(]/)[0]?.trim());
    expect(issues).toEqual([
      'D-042 cosmetic false-negative',
      'LB provisioning ERROR with operating ONLINE',
      'Cluster Available=False with a load-balancer timeout',
      'amphora orphans, failed-spawn variant',
      'amphora orphans, heartbeating-zombie variant',
      'no hypervisor has +1024 MB amphora headroom',
      'juju-macaroon',
    ]);
    expect(await sim.journal()).toEqual([]);
  });
});

describe('capi-chatops record', () => {
  it('should record a site with its tool versions, and its recording should check clean and replay the site', async () => {
    const live = await startSimJumphost({ scenario: 'lb-error', timeScale: 0.01 });
    sims.push(live);
    const site = path.join(dir, 'lb-error.yaml');
    await writeFile(site, stringify(live.site));
    const out = path.join(dir, 'lb-error-recording');
    const recorded = await cli(['record', '--site', site, '--out', out, '--runbook', 'diagnose']);
    expect(recorded.stderr).toBe('');
    expect(recorded.code).toBe(0);
    expect(recorded.stdout).toContain('diagnose: 23 command(s) recorded (the run succeeded)');
    expect(recorded.stdout).toContain('recover: not recorded (not asked for (--runbook))');
    expect((await readdir(out)).sort()).toEqual(['diagnose.yaml', 'recording.yaml']);
    const recording = await readRecording(out);
    expect(recording.meta.tools).toMatchObject({
      openstack: { version: '7.4.0' },
      kubectl: { version: 'v1.32.3' },
      ssh: { version: '9.6p1' },
      juju: { version: '3.5.4' },
    });
    const checked = await cli(['check-recording', out]);
    expect(checked.code).toBe(0);
    expect(checked.stdout).toContain(
      'diagnose: 24 of 24 step(s) checked against the recording, 0 not recorded',
    );

    // Served back, the recording is the site as diagnose saw it.
    await live.stop();
    const replayed = await startSimJumphost({ scenario: out, timeScale: 0.01 });
    sims.push(replayed);
    const issues = (await diagnoseOn(replayed)).map((f) => f.split(/[:(]/)[0]?.trim());
    expect(issues).toEqual([
      'D-042 cosmetic false-negative',
      'LB provisioning ERROR with operating ONLINE',
      'Cluster Available=False with a load-balancer timeout',
    ]);
  }, 180_000); // Two whole diagnose runs, on the simulated cloud and replayed: over the default minute under load.

  it('should store no secret the redactor would hide, and keep what operators read', async () => {
    const rb = testRunbook(
      `read_only: true\nsteps:\n${SECRET_CORPUS.map((_, i) => `  - id: c${i}\n    title: C${i}\n    run: corpus ${i}\n`).join('')}`,
      'leaky',
    );
    const executor = new RecordingExecutor(
      new ScriptedExecutor(
        SECRET_CORPUS.map((e, i) => [new RegExp(`^corpus ${i}$`), { stdout: e.output }] as const),
      ),
    );
    await runToEnd(
      runOptions(rb, executor, { approvals: scriptedApprovals([]), attempts: new MemoryAttempts() }),
    );
    const out = path.join(dir, 'leaky');
    await writeRecording(
      out,
      {
        format: 1,
        site: 'test',
        recorded_at: new Date().toISOString(),
        origin: 'test',
        tools: { openstack: {}, kubectl: {}, ssh: {}, juju: {} },
        profile: {},
        runbooks: ['leaky'],
        skipped: {},
      },
      [{ runbook: 'leaky', commands: executor.commands }],
    );
    const stored = await readFile(path.join(out, 'leaky.yaml'), 'utf8');
    expect(executor.commands).toHaveLength(SECRET_CORPUS.length);
    expect(CORPUS_SECRETS.filter((s) => stored.includes(s))).toEqual([]);
    expect(CORPUS_KEEP.filter((k) => !stored.includes(k))).toEqual([]);
  });
});
