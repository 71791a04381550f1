/**
 * One connection, 50 sequential `true` steps against a fresh loopback sshd: the per-step overhead the
 * engine pays on a jumphost (channel open, wrapper, exit status), without network latency.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { startSshd } from '../dev/sim/sshd.js';
import { connectSsh } from '../src/ssh/executor.js';

const EXECS = 50;

function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

const round = (n: number) => Math.round(n * 100) / 100;

export async function benchSshExec(): Promise<Record<string, number>> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'capi-bench-ssh-'));
  const home = path.join(root, 'home');
  await mkdir(home);
  const sshd = await startSshd({ dir: path.join(root, 'sshd'), homeDir: home, pathPrepend: [] });
  try {
    const connectStart = performance.now();
    const ex = await connectSsh({ target: sshd.target });
    const connectMs = performance.now() - connectStart;
    try {
      // One step first, so the numbers exclude sshd's first-session costs.
      await ex.exec({ script: 'true', env: {}, timeoutMs: 10_000 });
      const each: number[] = [];
      const start = performance.now();
      for (let i = 0; i < EXECS; i++) {
        const t = performance.now();
        const r = await ex.exec({ script: 'true', env: {}, timeoutMs: 10_000 });
        if (r.code !== 0) throw new Error(`bench step ${i} exited with ${r.code} (${r.stderr.trim()})`);
        each.push(performance.now() - t);
      }
      const totalMs = performance.now() - start;
      each.sort((a, b) => a - b);
      return {
        execs: EXECS,
        connectMs: round(connectMs),
        totalMs: round(totalMs),
        p50Ms: round(percentile(each, 50)),
        p95Ms: round(percentile(each, 95)),
        maxMs: round(each[each.length - 1] ?? Number.NaN),
      };
    } finally {
      await ex.close();
    }
  } finally {
    await sshd.stop();
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify({ bench: 'ssh-exec', ...(await benchSshExec()) }));
}
