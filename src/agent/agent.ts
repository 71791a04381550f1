/**
 * The agent: BullMQ workers that run runbooks on their sites' jumphosts. This module only wires the parts
 * together and shuts them down in order; a run job's phases are in run-job.ts, how a run ends in
 * run-ends.ts, the watch over runs no agent is running in idle-runs.ts, cancels in cancels.ts.
 */
import { Worker } from 'bullmq';
import { mgmtHostKeyTrustNotice } from '../config/site.js';
import { RunInterrupted } from '../engine/outcome.js';
import { RunFencedError } from '../errors.js';
import { NO_AUDIT } from '../ops/audit.js';
import { readOnlyQueue } from '../queue/queues.js';
import { connectRedis } from '../redis/connection.js';
import { CancelSubscription } from './cancels.js';
import { IdleRuns } from './idle-runs.js';
import { jobProcessor } from './jobs.js';
import {
  type AgentOptions,
  DEFAULT_LOCK_DURATION_MS,
  DEFAULT_RETENTION_SWEEP_MS,
  DEFAULT_SITE_LOCK_TTL_MS,
  DEFAULT_STALLED_INTERVAL_MS,
} from './options.js';
import { RunEnds } from './run-ends.js';
import { openRunStores } from './stores.js';

export { type AgentOptions, DEFAULT_LOCK_DURATION_MS, DEFAULT_STALLED_INTERVAL_MS } from './options.js';

export interface Agent {
  readonly queueNames: readonly string[];
  /** The queues whose worker is not running (closed, or stopped by an error); empty when all run. */
  stoppedWorkers(): string[];
  /** Repeat-safe: the second call returns the first call's promise. */
  close(): Promise<void>;
}

/**
 * A BullMQ worker that runs runbooks on one site's jumphost. Runs survive this process: each step's
 * checkpoint is in Redis, a waiting approval parks the job in the delayed set, and a job whose agent
 * died is taken over by another agent's stalled-job check and resumed from its checkpoint.
 */
export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const { logger } = opts;
  for (const site of opts.sites.values()) {
    const notice = mgmtHostKeyTrustNotice(site);
    if (notice !== undefined) logger.warn({ site: site.name }, notice);
  }
  const siteQueues = [...new Set([...opts.sites.values()].map((s) => s.queue))];
  const lockTtlMs = opts.siteLockTtlMs ?? DEFAULT_SITE_LOCK_TTL_MS;
  const audit = opts.audit ?? NO_AUDIT;
  const store = connectRedis(opts.redis, 'store', logger);
  const workerConnection = connectRedis(opts.redis, 'worker', logger);
  const stores = openRunStores(store, opts);
  const ends = new RunEnds({ stores, audit, ...(opts.metrics ? { metrics: opts.metrics } : {}), logger });
  /** The runs this process is running, by job id: aborted on shutdown or when BullMQ loses their lock. */
  const running = new Map<string, AbortController>();
  const cancels = await CancelSubscription.open(store, opts.prefix, logger);
  let stopping = false;
  const processor = jobProcessor({
    opts,
    stores,
    ends,
    audit,
    cancels,
    running,
    lockTtlMs,
    stopping: () => stopping,
  });

  const idleRuns = new IdleRuns({ opts, stores, ends, siteQueues, lockTtlMs });
  idleRuns.start();
  const stopSweeping = stores.retention.startSweeping(
    opts.retentionSweepMs ?? DEFAULT_RETENTION_SWEEP_MS,
    logger,
  );

  const workers = siteQueues.flatMap((name) =>
    [
      { queue: name, concurrency: opts.concurrency ?? 2 },
      { queue: readOnlyQueue(name), concurrency: opts.readOnlyConcurrency ?? 2 },
    ].map(({ queue, concurrency }) => {
      const worker = new Worker(queue, processor, {
        connection: workerConnection,
        prefix: opts.prefix,
        concurrency,
        lockDuration: opts.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS,
        stalledInterval: opts.stalledIntervalMs ?? DEFAULT_STALLED_INTERVAL_MS,
        // A run is resumable from its checkpoint, so a stall is not a reason to give it up.
        maxStalledCount: 10,
      });
      worker.on('error', (err) => logger.error({ queue, err }, 'worker error'));
      worker.on('failed', (job, err) => logger.error({ runId: job?.id, err }, 'run job failed'));
      // Another agent may already hold the job: stop acting on it here at once.
      worker.on('lockRenewalFailed', (jobIds) => {
        for (const id of jobIds) {
          const abort = running.get(id);
          if (abort && !abort.signal.aborted) {
            abort.abort(new RunFencedError(id, "BullMQ could not renew this agent's job lock"));
          }
        }
      });
      return worker;
    }),
  );
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  const stoppedWorkers = () => workers.filter((w) => !w.isRunning()).map((w) => w.name);
  const countWorkers = () => {
    for (const w of workers) opts.metrics?.agentWorkers.set({ queue: w.name }, w.isRunning() ? 1 : 0);
  };
  countWorkers();

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      stopping = true;
      idleRuns.stop();
      stopSweeping();
      const grace = setTimeout(() => {
        for (const a of running.values()) a.abort(new RunInterrupted('the agent is shutting down'));
      }, opts.shutdownGraceMs ?? 10_000);
      for (const worker of workers) {
        try {
          await worker.close();
        } catch (err) {
          logger.warn({ err }, 'closing a worker failed');
        }
      }
      clearTimeout(grace);
      countWorkers();
      await idleRuns.close();
      for (const conn of [workerConnection, cancels.connection, store]) {
        try {
          await conn.quit();
        } catch (err) {
          logger.warn({ err }, 'closing a redis connection failed');
        }
      }
    })();
    return closing;
  };
  return { queueNames: workers.map((w) => w.name), stoppedWorkers, close };
}
