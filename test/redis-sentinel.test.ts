import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisTarget } from '../src/config/env.js';
import { connectRedis } from '../src/redis/connection.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import {
  approveEverything,
  type Harness,
  isType,
  quietLogger,
  startHarness,
  waitForEvent,
} from './support/agent.js';
import { eventually } from './support/eventually.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';
import { type RedisProcess, scratchDir, sentinelMaster, startRedisProcess } from './support/redis-servers.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  // The Redis processes go whatever happens to the harness: a hung stop must not leave them running.
  const stopping = h?.stop();
  h = undefined;
  await Promise.race([stopping, new Promise((r) => setTimeout(r, 10_000).unref())]);
  for (const c of cleanups.splice(0).reverse()) await c();
});

const stops = async (hh: Harness) =>
  (await hh.sims[0]?.journal())?.filter((j) => j.ok && j.action === 'server.stop').length;

async function info(port: number, section: string): Promise<string> {
  const c = new Redis({ port, host: '127.0.0.1' });
  try {
    return await c.info(section);
  } finally {
    c.disconnect();
  }
}

describe('Redis Sentinel', () => {
  it('should follow a failover mid-run: the run completes and nothing destructive is sent twice', async () => {
    const scratch = await scratchDir('sentinel');
    cleanups.push(scratch.remove);
    const processes: RedisProcess[] = [];
    cleanups.push(() => Promise.all(processes.map((p) => p.kill())));
    const master = await startRedisProcess({ dir: scratch.dir, name: 'master', config: [] });
    processes.push(master);
    const replica = await startRedisProcess({
      dir: scratch.dir,
      name: 'replica',
      config: [`replicaof 127.0.0.1 ${master.port}`],
    });
    processes.push(replica);
    await eventually('the replica to be in sync', async () =>
      /master_link_status:up/.test(await info(replica.port, 'replication')) ? true : undefined,
    );
    const sentinels = await Promise.all(
      [1, 2, 3].map((i) =>
        startRedisProcess({
          dir: scratch.dir,
          name: `sentinel-${i}`,
          sentinel: true,
          config: [
            `sentinel monitor mymaster 127.0.0.1 ${master.port} 2`,
            'sentinel down-after-milliseconds mymaster 500',
            'sentinel failover-timeout mymaster 10000',
          ],
        }),
      ),
    );
    processes.push(...sentinels);
    // A failover needs the sentinels to know the replica and each other (quorum 2).
    for (const s of sentinels) {
      await eventually(`sentinel ${s.port} to see the replica and the other sentinels`, async () => {
        const text = await info(s.port, 'sentinel');
        return /slaves=1,sentinels=3/.test(text) ? true : undefined;
      });
    }

    const target: RedisTarget = {
      mode: 'sentinel',
      sentinels: sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })),
      name: 'mymaster',
      tls: false,
      waitReplicas: 1,
    };
    const redis = connectRedis(target, 'store', quietLogger);
    cleanups.push(async () => redis.disconnect());
    h = await startHarness({ redis, prefix: 'capi-sentinel', runbooks, scenarios: ['healthy'] });
    // The job lock outlasts the failover, as BullMQ's 30 s default does in production.
    await h.startAgent({ redis: target, waitReplicasTimeoutMs: 20_000, lockDurationMs: 10_000 });
    const run = await h.service.submit({
      runbook: 'park',
      args: [],
      site: 'site-0',
      requestedBy: 'U_REQUESTER',
    });
    const approver = new AbortController();
    const approving = approveEverything(h.service, run.runId, approver.signal);
    await waitForEvent(h.service, run.runId, isType('approval.decided'));
    // Replication is asynchronous: a failover loses the writes the replica has not received yet (WAIT is how
    // the attempt journal guards against that). The master dies once the run's resumption has reached the
    // replica, so what is tested is how the product follows the failover.
    const direct = new Redis({ port: master.port, host: '127.0.0.1' });
    expect(await direct.wait(1, 5000)).toBe(1);
    direct.disconnect();

    await master.kill();
    await eventually(
      'the sentinels to promote the replica',
      async () =>
        (await sentinelMaster(sentinels[0]?.port ?? 0, 'mymaster')) === replica.port ? true : undefined,
      { timeoutMs: 30_000 },
    );
    // A replacement node joins the new master, so a destructive attempt can be confirmed by a replica again
    // (until then the run waits at WAIT: the only copy of its attempt record would be on one node).
    processes.push(
      await startRedisProcess({
        dir: scratch.dir,
        name: 'replacement',
        config: [`replicaof 127.0.0.1 ${replica.port}`],
      }),
    );

    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000);
    expect(finished.status).toBe('succeeded');
    approver.abort();
    await approving;
    expect(await stops(h)).toBe(1);
    expect(await h.service.getRun(run.runId)).toMatchObject({ status: 'succeeded' });
    // Everything lives on the promoted replica now.
    expect(await info(replica.port, 'replication')).toMatch(/role:master/);
  });

  it('should refuse to send a destructive command whose attempt record no replica confirmed', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    // The test Redis has no replica: WAIT 1 can only time out.
    await h.startAgent({
      redis: { mode: 'single', url: REDIS_URL, waitReplicas: 1 },
      waitReplicasTimeoutMs: 200,
    });
    const run = await h.service.submit({
      runbook: 'park',
      args: [],
      site: 'site-0',
      requestedBy: 'U_REQUESTER',
    });
    const approver = new AbortController();
    const approving = approveEverything(h.service, run.runId, approver.signal);
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'));
    approver.abort();
    await approving;
    expect(finished.status).toBe('failed');
    expect(finished.message).toMatch(
      /reached 0 of 1 Redis replica\(s\) within 200 ms.*the command was NOT sent/,
    );
    expect(await stops(h)).toBe(0);
  });
});
