import { DelayedError, type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { resolveJumphost } from '../config/jumphost.js';
import type { SiteProfile } from '../config/site.js';
import { RunInterrupted, type RunOutcome, runRunbook, validateParams } from '../engine/engine.js';
import { asCodedError } from '../errors.js';
import { type RunJob, RunJobSchema } from '../queue/job.js';
import { connectRedis } from '../queue/redis.js';
import type { RunbookSet } from '../runbook/load.js';
import { ApprovalStore } from '../runs/approvals.js';
import { TargetLock, targetKey } from '../runs/lock.js';
import { isFinalStatus, type RunRecord, RunRegistry } from '../runs/registry.js';
import { RunTimeline } from '../runs/timeline.js';
import { connectSsh } from '../ssh/executor.js';
import type { JumphostTarget } from '../ssh/types.js';
import { validationMessage } from '../validation.js';
import { RedisApprovalPort } from './approval-port.js';
import { CheckpointStore } from './checkpoints.js';
import { timelineSink } from './timeline-sink.js';

export interface AgentOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  /** The sites this agent can reach; it serves every queue they name. */
  readonly sites: ReadonlyMap<string, SiteProfile>;
  /** JUMPHOST_* from the environment; each site profile's jumphost block wins field by field. */
  readonly jumphostEnv: Partial<JumphostTarget>;
  readonly runbooks: RunbookSet;
  readonly approvalTimeoutMs: number;
  readonly logger: Logger;
  /** Runs handled at once; a run waiting for approval does not count. Default 2. */
  readonly concurrency?: number;
  /** How long a killed agent's run stays locked before another agent takes it (BullMQ lockDuration). */
  readonly lockDurationMs?: number;
  /** How often this agent looks for runs a dead agent left behind. */
  readonly stalledIntervalMs?: number;
  /** On shutdown, how long the running step may take to finish before it is interrupted. */
  readonly shutdownGraceMs?: number;
}

export interface Agent {
  readonly queueNames: readonly string[];
  /** Repeat-safe: the second call returns the first call's promise. */
  close(): Promise<void>;
}

/** How often a running job looks for a cancel request in its run record. */
const CANCEL_POLL_MS = 250;
/** While it works, an agent keeps its site lock this long past its last step. */
const RUNNING_LOCK_TTL_MS = 10 * 60_000;

/**
 * A BullMQ worker that runs runbooks on one site's jumphost. Runs survive this process: each step's
 * checkpoint is in Redis, a waiting approval parks the job in the delayed set, and a job whose agent
 * died is taken over by another agent's stalled-job check and resumed from its checkpoint.
 */
export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const { logger } = opts;
  const queueNames = [...new Set([...opts.sites.values()].map((s) => s.queue))];
  const store = connectRedis(opts.redisUrl, 'store', logger);
  const workerConnection = connectRedis(opts.redisUrl, 'worker', logger);
  const registry = new RunRegistry(store, opts.prefix);
  const timeline = new RunTimeline(store, opts.prefix);
  const approvals = new ApprovalStore(store, opts.prefix);
  const lock = new TargetLock(store, opts.prefix);
  const checkpoints = new CheckpointStore(store, opts.prefix);
  const running = new Set<AbortController>();
  let stopping = false;

  /** The bookkeeping of a finished run, done before its run.finished event becomes visible. */
  const finishRecord = async (job: RunJob, status: RunRecord['status'], message: string) => {
    await registry.update(job.runId, { status, message });
    await lock.release(targetKey(job.site), job.runId);
    await checkpoints.delete(job.runId);
  };

  /** Ends a run that never reached the engine (refused, cancelled while parked, jumphost unreachable). */
  const endWithoutEngine = async (job: RunJob, status: 'failed' | 'cancelled', message: string) => {
    await finishRecord(job, status, message);
    await timeline.append(
      job.runId,
      { type: 'run.finished', status, message, durationMs: 0 },
      'run.finished',
    );
  };

  const processor = async (job: Job, token?: string): Promise<RunOutcome | undefined> => {
    const parsed = RunJobSchema.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(`job ${job.id} is not a run: ${validationMessage(parsed.error)}`);
    }
    const data = parsed.data;
    const record = await registry.get(data.runId);
    if (!record) throw new UnrecoverableError(`run ${data.runId} has no record: nothing to run`);
    if (isFinalStatus(record.status)) {
      // An agent that died between finishing the record and appending run.finished: append it now
      // (deduplicated, so a run.finished that did land is not repeated).
      const status = record.status as 'succeeded' | 'failed' | 'denied' | 'cancelled';
      const message = record.message ?? status;
      await timeline.append(
        data.runId,
        { type: 'run.finished', status, message, durationMs: 0 },
        'run.finished',
      );
      return undefined;
    }
    const log = logger.child({ runId: data.runId, runbook: data.runbook });

    if (record.cancelRequestedBy !== undefined && record.status !== 'running') {
      await endWithoutEngine(
        data,
        'cancelled',
        `cancelled by ${record.cancelRequestedBy} before it ran again`,
      );
      return undefined;
    }
    const site = opts.sites.get(data.site);
    if (!site) {
      await endWithoutEngine(data, 'failed', `this agent has no site profile named ${data.site}`);
      return undefined;
    }
    const runbook = opts.runbooks.runbooks.get(data.runbook);
    if (!runbook) {
      await endWithoutEngine(data, 'failed', `this agent has no runbook named ${data.runbook}`);
      return undefined;
    }
    const held = await lock.acquire(targetKey(data.site), data.runId, RUNNING_LOCK_TTL_MS);
    if (!held.acquired) {
      await endWithoutEngine(data, 'failed', `site ${data.site} is locked by run ${held.heldBy}`);
      return undefined;
    }

    const checkpoint = await checkpoints.load(data.runId);
    const resume = checkpoint && {
      checkpoint,
      reason:
        record.status === 'waiting_approval'
          ? 'an approval was decided (or expired)'
          : 'an agent took over this run after its previous agent stopped; the step it was on runs again, and a destructive step reads back the cloud before acting',
    };
    await registry.update(data.runId, { status: 'running' });

    let executor: Awaited<ReturnType<typeof connectSsh>>;
    try {
      executor = await connectSsh({ target: resolveJumphost(site, opts.jumphostEnv) });
    } catch (err) {
      await endWithoutEngine(data, 'failed', `cannot reach the jumphost: ${asCodedError(err).message}`);
      return undefined;
    }
    const abort = new AbortController();
    running.add(abort);
    const watcher = setInterval(() => {
      registry.get(data.runId).then(
        (r) => {
          if (r?.cancelRequestedBy !== undefined && !abort.signal.aborted) abort.abort(r.cancelRequestedBy);
        },
        (err: unknown) => log.warn({ err: asCodedError(err).message }, 'cannot read the run record'),
      );
    }, CANCEL_POLL_MS);

    let outcome: RunOutcome;
    try {
      outcome = await runRunbook({
        runId: data.runId,
        runbook,
        params: validateParams(runbook, data.args),
        site,
        requestedBy: record.requestedBy,
        executor,
        approvals: new RedisApprovalPort(approvals, opts.approvalTimeoutMs),
        emit: timelineSink(data.runId, {
          timeline,
          registry,
          approvals,
          approvalTimeoutMs: opts.approvalTimeoutMs,
          onFinished: (e) => finishRecord(data, e.status, e.message),
        }),
        signal: abort.signal,
        ...(resume ? { resume } : {}),
        onCheckpoint: async (cp) => {
          await checkpoints.save(data.runId, cp);
          await lock.refresh(targetKey(data.site), data.runId, RUNNING_LOCK_TTL_MS);
        },
        pauseRequested: () => stopping,
      });
    } finally {
      clearInterval(watcher);
      running.delete(abort);
      await executor.close();
    }

    if (outcome.status === 'suspended' || outcome.status === 'interrupted') {
      await checkpoints.save(data.runId, outcome.checkpoint);
      if (outcome.status === 'suspended') {
        await registry.update(data.runId, { status: 'waiting_approval' });
        // Nobody must start another run on this site while this one waits for a human.
        await lock.refresh(
          targetKey(data.site),
          data.runId,
          Date.parse(outcome.expiresAt) - Date.now() + RUNNING_LOCK_TTL_MS,
        );
        await job.moveToDelayed(Date.parse(outcome.expiresAt), token);
        // A decision (or cancel) that landed while the job was still active found nothing to wake.
        const now = await approvals.get(outcome.approvalId);
        const again = await registry.get(data.runId);
        if (now?.decision !== undefined || again?.cancelRequestedBy !== undefined) await job.promote();
        log.info(
          { approvalId: outcome.approvalId, expiresAt: outcome.expiresAt },
          'run waiting for approval',
        );
      } else {
        await registry.update(data.runId, { status: 'interrupted' });
        await job.moveToDelayed(Date.now(), token);
        log.info('run interrupted by shutdown; another agent resumes it');
      }
      throw new DelayedError();
    }
    log.info({ status: outcome.status }, 'run finished');
    return outcome;
  };

  const workers = queueNames.map((name) => {
    const worker = new Worker(name, processor, {
      connection: workerConnection,
      prefix: opts.prefix,
      concurrency: opts.concurrency ?? 2,
      lockDuration: opts.lockDurationMs ?? 30_000,
      stalledInterval: opts.stalledIntervalMs ?? 30_000,
      // A run is resumable from its checkpoint, so a stall is not a reason to give it up.
      maxStalledCount: 10,
    });
    worker.on('error', (err) => logger.error({ queue: name, err: err.message }, 'worker error'));
    worker.on('failed', (job, err) => logger.error({ runId: job?.id, err: err.message }, 'run job failed'));
    return worker;
  });
  await Promise.all(workers.map((w) => w.waitUntilReady()));

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      stopping = true;
      const grace = setTimeout(() => {
        for (const a of running) a.abort(new RunInterrupted('the agent is shutting down'));
      }, opts.shutdownGraceMs ?? 10_000);
      for (const worker of workers) {
        try {
          await worker.close();
        } catch (err) {
          logger.warn({ err: asCodedError(err).message }, 'closing a worker failed');
        }
      }
      clearTimeout(grace);
      for (const conn of [workerConnection, store]) {
        try {
          await conn.quit();
        } catch (err) {
          logger.warn({ err: asCodedError(err).message }, 'closing a redis connection failed');
        }
      }
    })();
    return closing;
  };
  return { queueNames, close };
}
