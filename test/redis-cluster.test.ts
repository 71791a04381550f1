import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisTarget } from '../src/config/env.js';
import { redisSnapshotSource } from '../src/ops/redis-snapshot.js';
import { connectRedis } from '../src/redis/connection.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { ApprovalStore } from '../src/runs/approvals.js';
import { RunRegistry } from '../src/runs/registry.js';
import {
  approveEverything,
  type Harness,
  isType,
  quietLogger,
  startHarness,
  waitForEvent,
} from './support/agent.js';
import { eventually } from './support/eventually.js';
import { scratchDir, startRedisCluster } from './support/redis-servers.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
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

describe('Redis Cluster', () => {
  it('should run a run end to end with every key in one slot when the queue prefix is a hash tag', async () => {
    const scratch = await scratchDir('cluster');
    cleanups.push(scratch.remove);
    const nodes = await startRedisCluster(scratch.dir);
    cleanups.push(() => Promise.all(nodes.map((n) => n.kill())));
    const target: RedisTarget = {
      mode: 'cluster',
      nodes: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
      tls: false,
      waitReplicas: 0,
    };
    const redis = connectRedis(target, 'store', quietLogger);
    cleanups.push(async () => redis.disconnect());
    const prefix = '{capi-test}';

    h = await startHarness({ redis, prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent({ redis: target, retentionMs: 3_600_000 });
    const run = await h.service.submit({
      runbook: 'park',
      args: [],
      site: 'site-0',
      requestedBy: 'U_REQUESTER',
    });
    const approver = new AbortController();
    const approving = approveEverything(h.service, run.runId, approver.signal);
    expect((await waitForEvent(h.service, run.runId, isType('run.finished'))).status).toBe('succeeded');
    approver.abort();
    expect(await approving).toBe(1);
    expect((await h.sims[0]?.journal())?.filter((j) => j.ok && j.action === 'server.stop')).toHaveLength(1);
    // The run store's multi-key scripts ran (fenced writes, the attempt journal, the retention expiry) ...
    expect(await h.service.getRun(run.runId)).toMatchObject({ status: 'succeeded' });
    expect(await redis.pttl(`${prefix}:run:${run.runId}:attempts`)).toBeGreaterThan(0);
    // ... because every key of the product, BullMQ's included, is on the one node that owns the tag's slot.
    const sizes = await Promise.all(
      nodes.map(async (n) => {
        const c = new Redis({ port: n.port, host: '127.0.0.1' });
        try {
          return await c.dbsize();
        } finally {
          c.disconnect();
        }
      }),
    );
    expect(sizes.filter((n) => n > 0)).toHaveLength(1);
    // A metrics scrape reads the queues and runs through the cluster too.
    const snapshot = redisSnapshotSource({
      redis,
      prefix,
      queueNames: ['jobs'],
      registry: new RunRegistry(redis, prefix),
      approvals: new ApprovalStore(redis, prefix),
    });
    cleanups.push(() => snapshot.close());
    // BullMQ moves the job out of active only after the run's last event is stored: wait for that.
    const queues = await eventually(
      'the finished job to leave the active list',
      async () => (await snapshot.read()).queues,
      { until: (q) => q[0]?.active === 0 },
    );
    expect(queues).toEqual([{ queue: 'jobs', waiting: 0, active: 0, delayed: 0, workers: 1 }]);
    expect(Math.max(...sizes)).toBeGreaterThan(10);
  });
});
