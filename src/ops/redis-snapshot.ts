import { Queue } from 'bullmq';
import type { RedisClient } from '../redis/connection.js';
import type { ApprovalStore } from '../runs/approvals.js';
import type { RunRegistry } from '../runs/registry.js';
import type { RedisSnapshot } from './metrics.js';

/** How many active runs a scrape looks at; there is at most one exclusive run per site. */
const ACTIVE_RUNS_LIMIT = 1000;

/**
 * What a Prometheus scrape reads from Redis: each queue's depth and workers, the active runs by status, and
 * how long the oldest undecided approval has waited. `close()` closes the queue handles it opened.
 */
export function redisSnapshotSource(opts: {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly queueNames: readonly string[];
  readonly registry: RunRegistry;
  readonly approvals: ApprovalStore;
}): { read: () => Promise<RedisSnapshot>; close: () => Promise<void> } {
  const queues = opts.queueNames.map((name) => {
    const q = new Queue(name, { connection: opts.redis, prefix: opts.prefix });
    q.on('error', () => {
      // A scrape during a Redis outage fails that scrape; the gauges are left empty, nothing else.
    });
    return q;
  });
  const read = async (): Promise<RedisSnapshot> => {
    const depths = await Promise.all(
      queues.map(async (q) => {
        const counts = await q.getJobCounts('waiting', 'active', 'delayed');
        return {
          queue: q.name,
          waiting: counts.waiting ?? 0,
          active: counts.active ?? 0,
          delayed: counts.delayed ?? 0,
          workers: await q.getWorkersCount(),
        };
      }),
    );
    const active = await opts.registry.list({ active: true, limit: ACTIVE_RUNS_LIMIT });
    const activeRuns: Record<string, number> = {};
    for (const r of active) activeRuns[r.status] = (activeRuns[r.status] ?? 0) + 1;
    const now = Date.now();
    let oldest = 0;
    for (const r of active.filter((r) => r.status === 'waiting_approval')) {
      for (const a of await opts.approvals.pendingForRun(r.runId)) {
        oldest = Math.max(oldest, (now - Date.parse(a.requestedAt)) / 1000);
      }
    }
    return { queues: depths, activeRuns, oldestApprovalWaitSeconds: oldest };
  };
  return {
    read,
    close: async () => {
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}
