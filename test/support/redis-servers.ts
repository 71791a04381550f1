import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from '../../dev/net.js';
import { eventually } from './eventually.js';

/** A redis-server (or sentinel) process on 127.0.0.1 that a test started and stops. */
export interface RedisProcess {
  readonly port: number;
  readonly child: ChildProcess;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
}

/** One scratch directory per test setup; every process's files live in it and go with it. */
export async function scratchDir(name: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `capi-${name}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Starts `redis-server <config file>` and waits until it answers PING. `config` lines are written to a file
 * in `dir` (a sentinel rewrites its file, so it must be one). Only ever binds 127.0.0.1.
 */
export async function startRedisProcess(opts: {
  readonly dir: string;
  readonly name: string;
  readonly config: readonly string[];
  readonly port?: number;
  readonly sentinel?: boolean;
}): Promise<RedisProcess> {
  const port = opts.port ?? (await freePort());
  const file = path.join(opts.dir, `${opts.name}.conf`);
  // A sentinel takes no persistence settings; a data node keeps nothing on disk (these tests kill, not restart).
  // A replica syncs at once instead of after the default 5 s of waiting for more replicas.
  const persistence = opts.sentinel ? [] : ['save ""', 'appendonly no', 'repl-diskless-sync-delay 0'];
  await writeFile(
    file,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${opts.dir}`, ...persistence, ...opts.config].join('\n'),
  );
  const child = spawn('redis-server', [file, ...(opts.sentinel ? ['--sentinel'] : [])], {
    stdio: ['ignore', 'ignore', process.env.CAPI_DEBUG_CHILD ? 'inherit' : 'ignore'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 25 });
  probe.on('error', () => undefined);
  try {
    await eventually(`${opts.name} on port ${port} to answer PING`, async () =>
      (await probe.ping().catch(() => undefined)) === 'PONG' ? true : undefined,
    );
  } finally {
    probe.disconnect();
  }
  return {
    port,
    child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Three masters, no replicas, every slot assigned, `cluster_state:ok` on each node. */
export async function startRedisCluster(dir: string): Promise<RedisProcess[]> {
  const nodes = await Promise.all(
    ['a', 'b', 'c'].map((n) =>
      startRedisProcess({
        dir,
        name: `cluster-${n}`,
        config: ['cluster-enabled yes', `cluster-config-file nodes-${n}.conf`, 'cluster-node-timeout 2000'],
      }),
    ),
  );
  await promisify(execFile)('redis-cli', [
    '--cluster',
    'create',
    ...nodes.map((n) => `127.0.0.1:${n.port}`),
    '--cluster-replicas',
    '0',
    '--cluster-yes',
  ]);
  for (const node of nodes) {
    const c = new Redis({ port: node.port, host: '127.0.0.1' });
    try {
      await eventually(`cluster node ${node.port} to report cluster_state:ok`, async () =>
        /cluster_state:ok/.test(await c.cluster('INFO')) ? true : undefined,
      );
    } finally {
      c.disconnect();
    }
  }
  return nodes;
}

/** The master's port the sentinel at `sentinelPort` names for `name`. */
export async function sentinelMaster(sentinelPort: number, name: string): Promise<number | undefined> {
  const s = new Redis({
    port: sentinelPort,
    host: '127.0.0.1',
    lazyConnect: true,
    retryStrategy: () => null,
  });
  s.on('error', () => undefined);
  try {
    await s.connect();
    const addr = (await s.call('SENTINEL', 'get-master-addr-by-name', name)) as [string, string] | null;
    return addr ? Number(addr[1]) : undefined;
  } catch {
    return undefined;
  } finally {
    s.disconnect();
  }
}
