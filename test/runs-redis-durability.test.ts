import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';
import { loadRunbooks } from '../src/runbook/load.js';
import { redisLossStatement, reportRedisAtStartup } from '../src/runs/redis-checks.js';
import {
  confirmPlan,
  durabilityOf,
  judgeReply,
  type RedisDurability,
  RedisWriteConfirm,
} from '../src/runs/redis-durability.js';
import { decideNext, type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { type RedisProcess, scratchDir, startRedisProcess } from './support/redis-servers.js';

const db = useTestRedis();
const COMMANDS = new URL('../commands/', import.meta.url).pathname;

const v70: RedisDurability = {
  cluster: false,
  version: '7.0.15',
  aof: true,
  appendfsync: 'everysec',
  save: '',
  waitaof: false,
  replicas: 0,
};
const v72: RedisDurability = { ...v70, version: '7.2.4', waitaof: true };

/** The local redis-server's own version, from the binary (not from what the product detects). */
async function serverVersion(): Promise<string> {
  const { stdout } = await promisify(execFile)('redis-server', ['--version']);
  return /v=(\d+\.\d+\.\d+)/.exec(stdout)?.[1] ?? '0.0.0';
}
const hasWaitaof = (v: string) => {
  const [major = 0, minor = 0] = v.split('.').map(Number);
  return major > 7 || (major === 7 && minor >= 2);
};

describe('how a write is confirmed', () => {
  it('should fsync with WAITAOF where Redis has it, wait for replicas with WAIT, and say why when neither applies', () => {
    const opts = { replicas: 0, timeoutMs: 2000 };
    expect(confirmPlan(v72, opts)).toEqual({ steps: [{ command: 'WAITAOF', args: [1, 0, 2000] }] });
    expect(confirmPlan(v72, { ...opts, replicas: 1 })).toEqual({
      steps: [
        { command: 'WAITAOF', args: [1, 0, 2000] },
        { command: 'WAIT', args: [1, 2000] },
      ],
    });
    expect(confirmPlan(v70, { ...opts, replicas: 2 })).toEqual({
      steps: [{ command: 'WAIT', args: [2, 2000] }],
    });
    expect(confirmPlan(v70, opts)).toEqual({
      none: 'Redis 7.0.15 has no WAITAOF (it needs 7.2) and REDIS_WAIT_REPLICAS is 0',
    });
    // WAITAOF 1 is an error on a Redis without AOF: nothing local to wait for.
    expect(confirmPlan({ ...v72, aof: false }, opts)).toEqual({
      none: 'AOF is off and REDIS_WAIT_REPLICAS is 0',
    });
    expect(confirmPlan({ ...v72, cluster: true }, { ...opts, replicas: 1 })).toHaveProperty('none');
  });

  it('should judge WAITAOF by its local fsync count and WAIT by the replicas that hold the write', () => {
    const waitaof = { command: 'WAITAOF', args: [1, 0, 2000] } as const;
    const wait = { command: 'WAIT', args: [1, 300] } as const;
    expect(judgeReply(waitaof, [1, 0])).toEqual({ ok: true, how: 'fsynced to the AOF (WAITAOF)' });
    expect(judgeReply(waitaof, [0, 0])).toEqual({
      ok: false,
      why: 'Redis did not fsync it to its AOF within 2000 ms (WAITAOF answered [0,0])',
    });
    expect(judgeReply(wait, 1)).toEqual({ ok: true, how: 'held by 1 replica(s) (WAIT)' });
    expect(judgeReply(wait, 0)).toEqual({
      ok: false,
      why: 'it reached 0 of 1 Redis replica(s) within 300 ms',
    });
  });

  it('should detect WAITAOF once per connection and confirm through it (recorded Redis 7.2 replies)', async () => {
    const sent: unknown[][] = [];
    let fsynced = 1;
    // The replies a Redis 7.2.4 with appendonly yes gives, recorded; every command sent is kept.
    const recorded = {
      on: () => recorded,
      info: async () =>
        '# Server\r\nredis_version:7.2.4\r\n# Persistence\r\naof_enabled:1\r\n# Replication\r\nconnected_slaves:0\r\n',
      config: async (_sub: string, name: string) => [name, name === 'appendfsync' ? 'everysec' : ''],
      call: async (...args: unknown[]) => {
        sent.push(args);
        return [args[1] === 0 ? 0 : fsynced, 0];
      },
    } as unknown as Redis;
    const confirm = new RedisWriteConfirm(recorded, { replicas: 0, timeoutMs: 1500 });
    expect(await confirm.confirm()).toEqual({ kind: 'confirmed', how: 'fsynced to the AOF (WAITAOF)' });
    fsynced = 0;
    expect(await confirm.confirm()).toEqual({
      kind: 'short',
      why: 'Redis did not fsync it to its AOF within 1500 ms (WAITAOF answered [0,0])',
    });
    // One probe for the connection, then one WAITAOF per confirmation.
    expect(sent).toEqual([
      ['WAITAOF', 0, 0, 1],
      ['WAITAOF', 1, 0, 1500],
      ['WAITAOF', 1, 0, 1500],
    ]);
  });
});

describe('confirming on real redis-servers', () => {
  let scratch: Awaited<ReturnType<typeof scratchDir>>;
  const processes: RedisProcess[] = [];
  const clients: Redis[] = [];
  const connect = (port: number) => {
    const c = new Redis({ host: '127.0.0.1', port });
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    scratch = await scratchDir('durability');
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(processes.map((p) => p.kill()));
    await scratch.remove();
  });

  it('should use WAITAOF where the server has it, and otherwise fall back to WAIT for the replicas asked', async () => {
    const version = await serverVersion();
    const aof = await startRedisProcess({
      dir: scratch.dir,
      name: 'aof',
      config: ['appendonly yes', 'appendfsync everysec', 'appenddirname aof-dir'],
    });
    processes.push(aof);
    const redis = connect(aof.port);
    await redis.set('durability:x', '1');
    const d = await durabilityOf(redis);
    expect(d).toMatchObject({ version, aof: true, appendfsync: 'everysec', waitaof: hasWaitaof(version) });
    const alone = await new RedisWriteConfirm(redis, { replicas: 0, timeoutMs: 2000 }).confirm();
    const missingReplica = await new RedisWriteConfirm(redis, { replicas: 1, timeoutMs: 200 }).confirm();
    if (hasWaitaof(version)) {
      expect(alone).toEqual({ kind: 'confirmed', how: 'fsynced to the AOF (WAITAOF)' });
    } else {
      // This machine's 7.0: nothing to confirm a single server's write with.
      expect(alone).toEqual({
        kind: 'unavailable',
        why: `Redis ${version} has no WAITAOF (it needs 7.2) and REDIS_WAIT_REPLICAS is 0`,
      });
    }
    expect(missingReplica).toEqual({
      kind: 'short',
      why: 'it reached 0 of 1 Redis replica(s) within 200 ms',
    });
  });

  it('should confirm through WAIT once a replica holds the write', async () => {
    const master = await startRedisProcess({ dir: scratch.dir, name: 'master', config: [] });
    processes.push(master);
    const replica = await startRedisProcess({
      dir: scratch.dir,
      name: 'replica',
      config: [`replicaof 127.0.0.1 ${master.port}`],
    });
    processes.push(replica);
    const redis = connect(master.port);
    await eventually('the replica to be in sync', async () =>
      /connected_slaves:1/.test(await redis.info('replication')) ? true : undefined,
    );
    await redis.set('durability:y', '1');
    expect(await new RedisWriteConfirm(redis, { replicas: 1, timeoutMs: 5000 }).confirm()).toEqual({
      kind: 'confirmed',
      how: 'held by 1 replica(s) (WAIT)',
    });
  });

  it('should say once at start-up what a single Redis with AOF everysec can lose, and that the jumphost refuses a resend', async () => {
    const version = await serverVersion();
    const server = await startRedisProcess({
      dir: scratch.dir,
      name: 'startup',
      config: ['appendonly yes', 'appendfsync everysec', 'appenddirname aof-startup'],
    });
    processes.push(server);
    const chunks: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer | string, _encoding, callback) {
        chunks.push(chunk.toString());
        callback();
      },
    });
    const logger = createLogger({ level: 'info', destination, name: 'capi-test' });
    const target = { mode: 'single', url: `redis://127.0.0.1:${server.port}`, waitReplicas: 0 } as const;
    await reportRedisAtStartup(connect(server.port), target, logger);
    const lines = chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: number; msg: string; waitaof: boolean; aof: boolean });
    const statements = lines.filter((l) => l.msg.startsWith('What Redis can lose here'));
    expect(statements).toHaveLength(1);
    const [said] = statements;
    expect(said).toMatchObject({ aof: true, appendfsync: 'everysec', waitaof: hasWaitaof(version) });
    expect(said?.msg).toContain(
      'up to the last second of writes (appendfsync everysec) when its host crashes',
    );
    if (!hasWaitaof(version)) {
      // Nothing can be confirmed here: a warning, naming why.
      expect(said?.level).toBe(40);
      expect(said?.msg).toContain(
        `WAITAOF needs Redis 7.2 and a single server or Sentinel; this is ${version}`,
      );
    }
    expect(said?.msg).toContain('on a restore from a backup, everything since the backup');
    expect(said?.msg).toMatch(/no destructive step is sent twice: the jumphost keeps a marker/);
  });
});

describe('what each deployment is told it can lose', () => {
  it('should name the loss of each deployment and what is confirmed against it', () => {
    const single = { mode: 'single', waitReplicas: 0 } as const;
    expect(redisLossStatement({ ...v70, aof: false, save: '' }, single)).toMatch(
      /^What Redis can lose here: everything, on a restart or a crash \(AOF off and no RDB snapshots\); on a restore/,
    );
    expect(redisLossStatement({ ...v70, aof: false, save: '3600 1' }, single)).toContain(
      'every write since its last RDB snapshot',
    );
    expect(redisLossStatement({ ...v72, appendfsync: 'always' }, single)).toMatch(
      /^What Redis can lose here: on a restore from a backup, everything since the backup\. /,
    );
    expect(redisLossStatement(v72, single)).toContain(
      'except destructive attempts, decisions and cancels: those wait for their fsync (WAITAOF)',
    );
    const sentinel = redisLossStatement({ ...v70, replicas: 2 }, { mode: 'sentinel', waitReplicas: 1 });
    expect(sentinel).toContain(
      'on a failover, the writes the new master had not received, except destructive attempts, decisions and cancels: those wait for 1 replica(s) (WAIT)',
    );
    expect(redisLossStatement(v70, { mode: 'sentinel', waitReplicas: 0 })).toContain(
      'REDIS_WAIT_REPLICAS is 0: nothing waits for a replica',
    );
    const cluster = redisLossStatement({ ...v72, cluster: true }, { mode: 'cluster', waitReplicas: 0 });
    expect(cluster).toContain('on a shard failover');
    expect(cluster).toContain('in a Cluster');
  });
});

describe('a cancel and a denial that Redis could not confirm', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('should record them, act on them, and tell the person they are not confirmed', async () => {
    const runbooks = await loadRunbooks(COMMANDS);
    // The shared test Redis has no replica: asking one to hold each decision can only fall short.
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks,
      scenarios: ['healthy'],
      service: { waitReplicas: 1, confirmTimeoutMs: 200 },
    });
    await h.startAgent();
    const denied = await h.submit('park');
    const decided = await decideNext(h.service, denied.runId, false);
    expect(decided.result).toMatchObject({
      outcome: 'decided',
      unconfirmed: 'it reached 0 of 1 Redis replica(s) within 200 ms',
    });
    expect((await waitForEvent(h.service, denied.runId, isType('run.finished'))).status).toBe('denied');

    const cancelled = await h.submit('park');
    await waitForEvent(h.service, cancelled.runId, isType('approval.requested'));
    const record = await h.service.cancel(cancelled.runId, 'U_CANCELLER');
    expect(record.unconfirmed).toBe('it reached 0 of 1 Redis replica(s) within 200 ms');
    expect((await waitForEvent(h.service, cancelled.runId, isType('run.finished'))).status).toBe('cancelled');
  });
});
