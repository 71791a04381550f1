import { DelayedError, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { RedisTarget } from '../config/env.js';
import { resolveJumphost } from '../config/jumphost.js';
import { mgmtHostKeyTrustNotice, type SiteProfile } from '../config/site.js';
import type { DoctorResult } from '../doctor/report.js';
import { runRunbook } from '../engine/engine.js';
import { type Checkpoint, RunInterrupted, type RunOutcome } from '../engine/outcome.js';
import { publicSite, type Vars } from '../engine/scope.js';
import { asCodedError, RunFencedError } from '../errors.js';
import { type AuditLog, NO_AUDIT } from '../ops/audit.js';
import type { Metrics } from '../ops/metrics.js';
import { runObserver } from '../ops/run-observer.js';
import {
  DOCTOR_JOB_NAME,
  DoctorJobSchema,
  PICK_JOB_NAME,
  PickJobSchema,
  type PickResult,
  type RunJob,
  RunJobSchema,
} from '../queue/job.js';
import { cancelChannel, readOnlyQueue } from '../queue/queues.js';
import { connectRedis, dedicatedConnection } from '../queue/redis.js';
import { copyOfRunbook, restoreRunbook } from '../runbook/copy.js';
import type { RunbookSet } from '../runbook/load.js';
import type { Runbook } from '../runbook/model.js';
import { validateParams } from '../runbook/params.js';
import { ApprovalStore } from '../runs/approvals.js';
import { AttemptJournal } from '../runs/attempts.js';
import { type Fence, RunFences } from '../runs/fence.js';
import type { DecisionJudge } from '../runs/judge.js';
import { heldSiteMessage, TargetLock, targetKey } from '../runs/lock.js';
import { RedisWriteConfirm } from '../runs/redis-durability.js';
import { isFinalStatus, type RunRecord, RunRegistry } from '../runs/registry.js';
import { RunTimeline } from '../runs/timeline.js';
import { connectSsh } from '../ssh/executor.js';
import type { JumphostTarget } from '../ssh/types.js';
import { validationMessage } from '../validation.js';
import { RedisApprovalPort } from './approval-port.js';
import { RedisAttemptPort } from './attempt-port.js';
import { CheckpointStore } from './checkpoints.js';
import { runDoctorJob } from './doctor.js';
import { OrphanWatch } from './orphans.js';
import { runPick } from './pick.js';
import { RunRetention } from './retention.js';
import { leasedExecutor, RunLease } from './run-lease.js';
import { timelineSink } from './timeline-sink.js';
import { holdFor, openAttempts, unreadOutcome } from './unresolved.js';

export interface AgentOptions {
  readonly redis: RedisTarget;
  readonly prefix: string;
  /** The sites this agent can reach; it serves every queue they name. */
  readonly sites: ReadonlyMap<string, SiteProfile>;
  /** JUMPHOST_* from the environment; each site profile's jumphost block wins field by field. */
  readonly jumphostEnv: Partial<JumphostTarget>;
  readonly runbooks: RunbookSet;
  readonly approvalTimeoutMs: number;
  /**
   * How this agent judges a decision before it acts on it: its own policy (approvers, self-approval, groups)
   * and the keys signed decisions must verify with. Never taken from the request or the decision.
   */
  readonly decisions: DecisionJudge;
  readonly logger: Logger;
  /** Runs handled at once; a run waiting for approval does not count. Default 2. */
  readonly concurrency?: number;
  /**
   * How long a killed agent's run stays locked before another agent may take it (BullMQ lockDuration; renewed
   * every half of it while the run lives). Default 10 s.
   */
  readonly lockDurationMs?: number;
  /** How often this agent looks for runs a dead agent left behind (BullMQ stalledInterval). Default 5 s. */
  readonly stalledIntervalMs?: number;
  /**
   * A run not finished whose job is gone (completed, failed, removed) for this long, its record unchanged, is
   * ended by the agents' watch over idle runs (never left "running" with no owner). Default 30 s.
   */
  readonly orphanGraceMs?: number;
  /** On shutdown, how long the running step may take to finish before it is interrupted. */
  readonly shutdownGraceMs?: number;
  /**
   * The site lock's TTL; it is renewed every third of it while the run lives (running, parked at an
   * approval, queued or handed over), so it lapses only when no agent is left. Default 60 s.
   */
  readonly siteLockTtlMs?: number;
  /** Read-only runs (diagnose) handled at once, on their own worker: they never delay a recovery. Default 2. */
  readonly readOnlyConcurrency?: number;
  readonly metrics?: Metrics;
  /** Approvals asked, destructive commands sent and their exit, expiries, runs finished. */
  readonly audit?: AuditLog;
  /** A finished run's keys expire this long after it finished (RUN_RETENTION). Default 30 days. */
  readonly retentionMs?: number;
  /** How often the runs index is swept of expired runs. Default 10 minutes. */
  readonly retentionSweepMs?: number;
  /** Bytes of output stored per run (RUN_MAX_OUTPUT_BYTES). */
  readonly maxOutputBytesPerRun?: number;
  /** Bytes kept of one output line, in memory and in the timeline (RUN_MAX_LINE_BYTES). */
  readonly maxLineBytes?: number;
  /** How long confirming a destructive attempt's record (WAITAOF, WAIT) may take. Default 5 s. */
  readonly waitReplicasTimeoutMs?: number;
}

export interface Agent {
  readonly queueNames: readonly string[];
  /** The queues whose worker is not running (closed, or stopped by an error); empty when all run. */
  stoppedWorkers(): string[];
  /** Repeat-safe: the second call returns the first call's promise. */
  close(): Promise<void>;
}

/**
 * A SIGKILLed agent's run is taken over within lockDuration + stalledInterval (plus the new agent's SSH
 * connect): its job lock lapses at most 10 s after the agent's last renewal, and the next stalled-job check
 * (every 5 s, one per queue whatever the number of agents) moves it back to the queue. See README
 * "Processes and durable runs" for what each costs in Redis traffic.
 */
export const DEFAULT_LOCK_DURATION_MS = 10_000;
export const DEFAULT_STALLED_INTERVAL_MS = 5_000;
const DEFAULT_ORPHAN_GRACE_MS = 30_000;
const DEFAULT_SITE_LOCK_TTL_MS = 60_000;
const DEFAULT_RETENTION_MS = 30 * 86_400_000;
const DEFAULT_RETENTION_SWEEP_MS = 10 * 60_000;

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
  const registry = new RunRegistry(store, opts.prefix);
  const timeline = new RunTimeline(store, opts.prefix, {
    ...(opts.maxOutputBytesPerRun !== undefined ? { maxOutputBytesPerRun: opts.maxOutputBytesPerRun } : {}),
  });
  const approvals = new ApprovalStore(store, opts.prefix);
  const attempts = new AttemptJournal(store, opts.prefix);
  const fences = new RunFences(store, opts.prefix);
  const lock = new TargetLock(store, opts.prefix);
  const checkpoints = new CheckpointStore(store, opts.prefix);
  const retention = new RunRetention({
    redis: store,
    prefix: opts.prefix,
    retentionMs: opts.retentionMs ?? DEFAULT_RETENTION_MS,
    registry,
    timeline,
    approvals,
    attempts,
    fences,
    checkpoints,
  });
  // On the store connection, which made the writes to confirm.
  const writes = new RedisWriteConfirm(store, {
    replicas: opts.redis.waitReplicas,
    timeoutMs: opts.waitReplicasTimeoutMs ?? 5_000,
  });
  /** The runs this process is running, by job id: aborted on shutdown or when BullMQ loses their lock. */
  const running = new Map<string, AbortController>();
  /** Each running run's "read the record for a cancel now", for the cancels published on pub/sub. */
  const cancelChecks = new Map<string, () => void>();
  // A cancel reaches a running job at once through Redis pub/sub (RunService publishes it after recording it
  // in the run record); nothing polls. Pub/sub loses only what is published while the subscriber is away, so
  // after a reconnect, once subscribed again, every running run reads its record once; a run that starts
  // reads it once after it is registered here.
  // Named for CLIENT LIST, like the timeline followers.
  const cancels = dedicatedConnection(store, `${opts.prefix}:cancels`);
  cancels.on('message', (_channel: string, runId: string) => cancelChecks.get(runId)?.());
  cancels.on('ready', () => {
    cancels.subscribe(cancelChannel(opts.prefix)).then(
      () => {
        for (const check of cancelChecks.values()) check();
      },
      (err: unknown) => logger.warn({ err: asCodedError(err).message }, 'cannot subscribe to cancels'),
    );
  });
  await cancels.subscribe(cancelChannel(opts.prefix));
  let stopping = false;

  /**
   * The bookkeeping of a finished run, done before its run.finished event becomes visible. A run that ends with
   * a destructive attempt nobody saw return leaves its site held (audited) before its lock is released, so the
   * site is never free in between; otherwise whoever sees the end also finds the site free. From here on its
   * keys expire after the retention (the sweep catches a run whose agent died before the expiry was set).
   */
  const finishRecord = async (
    run: { readonly runId: string; readonly site: string },
    fence: Fence,
    status: RunRecord['status'],
    message: string,
  ) => {
    await registry.update(run.runId, { status, message }, fence);
    const target = targetKey(run.site);
    const [open] = await openAttempts(attempts, run.runId);
    if (open !== undefined) {
      await lock.hold(target, holdFor(open, message), fence);
      audit.record({
        event: 'destructive.outcome_unknown',
        runId: run.runId,
        site: run.site,
        step: open.slot ?? open.stepId,
        attemptId: open.attemptId,
        command: open.command,
        message,
      });
    }
    // A no-op for a run that does not hold the lock (a read-only one takes none).
    await lock.release(target, run.runId, fence);
    await checkpoints.delete(run.runId, fence);
    await retention.expireRun(run.runId, fence);
  };

  /**
   * How long the run waited for people: from each approval request to its decision (or to the request that
   * replaced it; one still open counts until now). A run's requests follow one another, so the sum is true.
   */
  const waitingMs = async (runId: string): Promise<number> => {
    const now = Date.now();
    let total = 0;
    for (const a of await approvals.allForRun(runId)) {
      const end = a.decision?.at ?? a.superseded?.at;
      total += Math.max(0, (end === undefined ? now : Date.parse(end)) - Date.parse(a.requestedAt));
    }
    return total;
  };

  /** run.finished's times for a run the engine did not end: from its request, waits for people apart. */
  const finalTimes = async (runId: string, requestedAt: string) => ({
    durationMs: Math.max(0, Date.now() - Date.parse(requestedAt)),
    waitingMs: await waitingMs(runId),
  });

  /**
   * Ends a run that the engine does not end (refused, cancelled while parked, jumphost unreachable, nobody
   * holds it any more). A destructive attempt of it that nobody saw return makes the end OUTCOME UNKNOWN:
   * the message says which command may have landed and what to check (the step's check_by_hand, rendered
   * with what `known` holds), and the site stays held.
   */
  const endWithoutEngine = async (
    run: { readonly runId: string; readonly site: string; readonly runbook: string },
    fence: Fence,
    status: 'failed' | 'cancelled',
    why: string,
    requestedAt: string,
    known: { readonly runbook?: Runbook; readonly scope: Vars } = { scope: {} },
  ) => {
    const [open] = await openAttempts(attempts, run.runId);
    const message = open === undefined ? why : `${why}. ${unreadOutcome(open, known)}`;
    await finishRecord(run, fence, status, message);
    const event = {
      type: 'run.finished',
      status,
      message,
      ...(await finalTimes(run.runId, requestedAt)),
    } as const;
    if ((await timeline.append(run.runId, event, 'run.finished', fence)) !== null) {
      observe(run)(event);
    }
  };

  /** Metrics and audit lines from the events a run stores. */
  const observe = (run: { readonly runId: string; readonly runbook: string }) =>
    runObserver({
      runId: run.runId,
      runbook: run.runbook,
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      audit,
      requestedAt: async (approvalId) => {
        const a = await approvals.get(approvalId);
        return a ? Date.parse(a.requestedAt) : undefined;
      },
      onError: (err) =>
        logger.debug({ err: asCodedError(err).message }, 'cannot read an approval for metrics'),
    });

  const processor = async (
    job: Job,
    token?: string,
  ): Promise<RunOutcome | PickResult | DoctorResult | undefined> => {
    if (job.name === DOCTOR_JOB_NAME) {
      const doctor = DoctorJobSchema.safeParse(job.data);
      if (!doctor.success)
        throw new UnrecoverableError(`job ${job.id} is not a doctor job: ${validationMessage(doctor.error)}`);
      return runDoctorJob(
        { sites: opts.sites, runbooks: opts.runbooks, jumphostEnv: opts.jumphostEnv, redis: store },
        doctor.data,
      );
    }
    if (job.name === PICK_JOB_NAME) {
      const pick = PickJobSchema.safeParse(job.data);
      if (!pick.success)
        throw new UnrecoverableError(`job ${job.id} is not a pick: ${validationMessage(pick.error)}`);
      return runPick(
        {
          sites: opts.sites,
          runbooks: opts.runbooks,
          jumphostEnv: opts.jumphostEnv,
          logger,
          ...(opts.metrics ? { metrics: opts.metrics } : {}),
        },
        pick.data,
        String(job.id),
      );
    }
    const parsed = RunJobSchema.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(`job ${job.id} is not a run: ${validationMessage(parsed.error)}`);
    }
    const data = parsed.data;
    const log = logger.child({ runId: data.runId, runbook: data.runbook });
    // Whoever runs the job now is the run's owner: every earlier owner's token is stale from here on.
    const fence = await fences.take(data.runId);
    try {
      return await runJob(job, data, fence, token, log);
    } catch (err) {
      if (!(err instanceof RunFencedError)) throw err;
      log.warn({ fence: fence.token, why: err.message }, 'run taken over by another agent; stopped here');
      return undefined;
    }
  };

  /**
   * A parked run woken while its approval is still open: the job was delayed to the expiry known when the run
   * parked, and the expiry moved on since (it runs from when Slack showed the request). Parks the job again
   * until the new expiry, without resuming anything; false when there is nothing to wait for (decided,
   * expired now, superseded), so the run resumes as usual.
   */
  const parkAgain = async (
    job: Job,
    runId: string,
    token: string | undefined,
    log: Logger,
  ): Promise<boolean> => {
    for (const open of await approvals.pendingForRun(runId)) {
      const due = await approvals.expireIfDue(open.approvalId);
      if (due.outcome !== 'pending') continue;
      await job.moveToDelayed(Date.parse(due.approval.expiresAt), token);
      // A decision or cancel that landed meanwhile found nothing to wake.
      const again = await approvals.get(open.approvalId);
      const record = await registry.get(runId);
      if (again?.decision !== undefined || record?.cancelRequestedBy !== undefined) await job.promote();
      log.info(
        { approvalId: open.approvalId, expiresAt: due.approval.expiresAt },
        'approval still open (its expiry moved on): run waits again',
      );
      return true;
    }
    return false;
  };

  /**
   * An agent that died between finishing the record and appending run.finished: append it now (deduplicated,
   * so a run.finished that did land is not repeated).
   */
  const appendMissingFinish = async (record: RunRecord, fence: Fence) => {
    const status = record.status as 'succeeded' | 'failed' | 'denied' | 'cancelled';
    const message = record.message ?? status;
    const times = await finalTimes(record.runId, record.createdAt);
    const event = { type: 'run.finished', status, message, ...times } as const;
    if ((await timeline.append(record.runId, event, 'run.finished', fence)) !== null) observe(record)(event);
  };

  /**
   * The runbook the run started with, compiled from the copy stored at submit; never what is on disk now. A
   * run an older front submitted (no copy) takes today's runbook only if nothing of it has happened yet.
   * Otherwise `refused` says why it cannot resume.
   */
  const runbookOf = async (
    data: RunJob,
    record: RunRecord,
    fence: Fence,
  ): Promise<{ readonly runbook: Runbook } | { readonly refused: string }> => {
    const stored = await registry.storedRunbook(data.runId);
    if (stored === null) {
      const onDisk = opts.runbooks.runbooks.get(data.runbook);
      const untouched =
        record.status === 'queued' &&
        (await checkpoints.exists(data.runId)) === false &&
        (await attempts.list(data.runId)).length === 0 &&
        (await approvals.allForRun(data.runId)).length === 0;
      if (onDisk !== undefined && untouched) {
        await registry.adoptRunbook(data.runId, copyOfRunbook(opts.runbooks, onDisk), fence);
        return { runbook: onDisk };
      }
      return {
        refused:
          onDisk === undefined
            ? `it has no stored runbook and this agent has no runbook named ${data.runbook}`
            : 'it has no stored copy of the runbook it started with (an older version submitted it) and it has begun: going on with the runbook on disk now could skip or repeat steps',
      };
    }
    try {
      const runbook = restoreRunbook(stored);
      if (runbook.name !== data.runbook) {
        return { refused: `its stored runbook is ${runbook.name}, not the ${data.runbook} it was asked for` };
      }
      return { runbook };
    } catch (err) {
      return { refused: asCodedError(err).message };
    }
  };

  /** Why a run cannot take its site, in words an operator can act on. */
  const siteBusy = async (site: string, held: { heldBy: string; hold: boolean }): Promise<string> =>
    held.hold
      ? heldSiteMessage(site, await lock.holds(targetKey(site)))
      : `site ${site} is locked by run ${held.heldBy}`;

  const runJob = async (
    job: Job,
    data: RunJob,
    fence: Fence,
    token: string | undefined,
    log: Logger,
  ): Promise<RunOutcome | undefined> => {
    const record = await registry.get(data.runId);
    if (!record) throw new UnrecoverableError(`run ${data.runId} has no record: nothing to run`);
    if (isFinalStatus(record.status)) {
      await appendMissingFinish(record, fence);
      return undefined;
    }

    if (record.cancelRequestedBy !== undefined && record.status !== 'running') {
      await endWithoutEngine(
        data,
        fence,
        'cancelled',
        `cancelled by ${record.cancelRequestedBy} before it ran again`,
        record.createdAt,
      );
      return undefined;
    }
    if (record.status === 'waiting_approval' && (await parkAgain(job, data.runId, token, log))) {
      throw new DelayedError();
    }
    const site = opts.sites.get(data.site);
    if (!site) {
      await endWithoutEngine(
        data,
        fence,
        'failed',
        `this agent has no site profile named ${data.site}`,
        record.createdAt,
      );
      return undefined;
    }
    const known = (checkpoint?: Checkpoint) => ({
      scope: { site: publicSite(site), params: { ...record.params }, ...(checkpoint?.captured ?? {}) },
    });
    const refuse = (why: string, runbook?: Runbook, checkpoint?: Checkpoint) =>
      endWithoutEngine(
        data,
        fence,
        'failed',
        `run ${data.runId} cannot resume: ${why}; nothing more was run`,
        record.createdAt,
        { ...known(checkpoint), ...(runbook ? { runbook } : {}) },
      );
    const ofRun = await runbookOf(data, record, fence);
    if ('refused' in ofRun) {
      await refuse(ofRun.refused);
      return undefined;
    }
    const { runbook } = ofRun;
    const target = targetKey(data.site);
    if (runbook.exclusive) {
      const held = await lock.acquire(target, data.runId, lockTtlMs, fence);
      if (!held.acquired) {
        await endWithoutEngine(data, fence, 'failed', await siteBusy(data.site, held), record.createdAt, {
          ...known(),
          runbook,
        });
        return undefined;
      }
    }

    let checkpoint: Checkpoint | undefined;
    try {
      checkpoint = await checkpoints.load(data.runId);
    } catch (err) {
      await refuse(`its checkpoint cannot be read (${asCodedError(err).message})`, runbook);
      return undefined;
    }
    if (checkpoint === undefined) {
      // Step 0 again would read every list again: an attempt made for one item could be matched to another.
      const made = await attempts.list(data.runId);
      if (made.length > 0) {
        await refuse(
          `its checkpoint is gone while ${made.length} destructive attempt(s) of it are on record (${made.map((a) => a.slot ?? a.stepId).join(', ')}); it never restarts from the first step once something was sent. Read its timeline, check the site, and start a new run`,
          runbook,
        );
        return undefined;
      }
    }
    const resume = checkpoint && {
      checkpoint,
      reason:
        record.status === 'waiting_approval'
          ? 'an approval was decided (or expired)'
          : `an agent took over this run ${record.status === 'interrupted' && record.message ? `(${record.message})` : 'after its previous agent stopped'}; the step it was on runs again, and a destructive step already attempted is read back, never sent again`,
    };
    await registry.update(data.runId, { status: 'running' }, fence);

    let ssh: Awaited<ReturnType<typeof connectSsh>>;
    try {
      ssh = await connectSsh({
        target: resolveJumphost(site, opts.jumphostEnv),
        jumphostRetentionMs: opts.retentionMs ?? DEFAULT_RETENTION_MS,
        ...(opts.maxLineBytes !== undefined ? { maxLineBytes: opts.maxLineBytes } : {}),
      });
      opts.metrics?.sshConnects.inc({ result: 'ok' });
    } catch (err) {
      opts.metrics?.sshConnects.inc({ result: 'error' });
      await endWithoutEngine(
        data,
        fence,
        'failed',
        `cannot reach the jumphost: ${asCodedError(err).message}`,
        record.createdAt,
        { ...known(checkpoint), runbook },
      );
      return undefined;
    }
    const abort = new AbortController();
    running.set(data.runId, abort);
    const lease = new RunLease({
      fence,
      fences,
      ...(runbook.exclusive ? { siteLock: { lock, target } } : {}),
      ttlMs: lockTtlMs,
      onLost: (err) => {
        log.warn({ why: err.message }, 'lease lost: stopping the run before its next command');
        abort.abort(err);
      },
    });
    lease.start();
    const checkCancel = () =>
      registry.get(data.runId).then(
        (r) => {
          if (r?.cancelRequestedBy !== undefined && !abort.signal.aborted) abort.abort(r.cancelRequestedBy);
        },
        (err: unknown) => log.warn({ err: asCodedError(err).message }, 'cannot read the run record'),
      );
    cancelChecks.set(data.runId, checkCancel);
    // A cancel published before this run was registered above found nothing to tell.
    void checkCancel();

    const sink = timelineSink(fence, {
      redis: store,
      timeline,
      registry,
      checkpoints,
      onFinished: (e) => finishRecord(data, fence, e.status, e.message),
      onStored: observe(data),
    });
    let outcome: RunOutcome;
    try {
      outcome = await runRunbook({
        runId: data.runId,
        runbook,
        params: validateParams(runbook, data.args),
        site,
        requestedBy: record.requestedBy,
        executor: leasedExecutor(ssh, fence, lease),
        approvals: new RedisApprovalPort(approvals, opts.approvalTimeoutMs, fence, opts.decisions),
        attempts: new RedisAttemptPort(attempts, fence, opts.approvalTimeoutMs, audit, writes),
        emit: sink.emit,
        signal: abort.signal,
        ...(resume ? { resume } : {}),
        onCheckpoint: sink.checkpoint,
        pauseRequested: () => stopping,
        requestedAt: record.createdAt,
        waitingMs: () => waitingMs(data.runId),
      });
    } finally {
      cancelChecks.delete(data.runId);
      lease.stop();
      running.delete(data.runId);
      await ssh.close();
    }

    if (outcome.status === 'fenced') return handOverLostRun(job, data, fence, token, outcome.why, log);
    if (outcome.status === 'suspended' || outcome.status === 'interrupted') {
      await checkpoints.save(data.runId, outcome.checkpoint, fence);
      if (outcome.status === 'suspended') {
        await registry.update(data.runId, { status: 'waiting_approval' }, fence);
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
        await registry.update(
          data.runId,
          { status: 'interrupted', message: 'its agent shut down and handed it over' },
          fence,
        );
        await job.moveToDelayed(Date.now(), token);
        log.info('run interrupted by shutdown; another agent resumes it');
      }
      throw new DelayedError();
    }
    log.info({ status: outcome.status }, 'run finished');
    return outcome;
  };

  /**
   * The run stopped because this agent's hold on it ended (its site lock or job lock lost, ownership not
   * confirmed while Redis was away, or another agent took it). Whoever owns the run now ends it, never this
   * agent otherwise: if another agent took it (a newer fence), that agent resumes it and this one writes
   * nothing. If this agent is still the owner, it hands the run over at once instead of leaving it "running":
   * the next agent (maybe this one) takes the site lock again and resumes at the step it was on, where a
   * destructive command in flight is read back, never sent again: it went on, or the run ends OUTCOME UNKNOWN
   * with the site held. Every write here is fenced, so a take-over racing it wins.
   */
  const handOverLostRun = async (
    job: Job,
    data: RunJob,
    fence: Fence,
    token: string | undefined,
    why: string,
    log: Logger,
  ): Promise<undefined> => {
    try {
      await fences.check(fence);
    } catch (err) {
      if (err instanceof RunFencedError) throw new RunFencedError(data.runId, why);
      throw err;
    }
    const [open] = await openAttempts(attempts, data.runId);
    const inFlight = open
      ? `, while \`${open.command.split('\n').at(-1) ?? open.command}\` (attempt ${open.attemptId}) was in flight and was stopped`
      : '';
    const message = `its agent lost its hold on the run (${why})${inFlight}`;
    await registry.update(data.runId, { status: 'interrupted', message }, fence);
    log.warn({ why, attemptId: open?.attemptId }, 'lost the hold on a run: handed it over to be resumed');
    await job.moveToDelayed(Date.now(), token);
    throw new DelayedError();
  };

  /**
   * Ends a run that nobody holds (see orphans.ts), as its owner from now on: a new fence first, so an agent
   * that still believed it held the run writes nothing more. Its destructive attempt that nobody saw return
   * makes it OUTCOME UNKNOWN, with the site held.
   */
  const endOrphan = async (seen: RunRecord, state: string) => {
    const fence = await fences.take(seen.runId);
    const record = await registry.get(seen.runId);
    if (!record) return;
    if (isFinalStatus(record.status)) {
      await appendMissingFinish(record, fence);
      return;
    }
    const stored = await registry.storedRunbook(record.runId);
    let runbook: Runbook | undefined;
    let captured: Record<string, unknown> = {};
    try {
      runbook = stored === null ? undefined : restoreRunbook(stored);
      captured = { ...(await checkpoints.load(record.runId))?.captured };
    } catch {
      // What cannot be read only makes the check-by-hand text less specific.
    }
    const site = opts.sites.get(record.site);
    const scope = { ...(site ? { site: publicSite(site) } : {}), params: { ...record.params }, ...captured };
    const job = state === 'unknown' ? 'gone' : state;
    await endWithoutEngine(
      record,
      fence,
      'failed',
      `no agent holds run ${record.runId} any more: its job is ${job} while the run was ${record.status}`,
      record.createdAt,
      { scope, ...(runbook ? { runbook } : {}) },
    );
    logger.warn({ runId: record.runId, job, status: record.status }, 'ended a run that no agent held');
  };

  /** Reads job states (the workers only take jobs). */
  const stateQueues = new Map(
    siteQueues
      .flatMap((name) => [name, readOnlyQueue(name)])
      .map((name) => [name, new Queue(name, { connection: store, prefix: opts.prefix })] as const),
  );
  for (const [name, q] of stateQueues) {
    q.on('error', (err) => logger.warn({ queue: name, err: err.message }, 'queue error'));
  }
  const orphans = new OrphanWatch({
    graceMs: opts.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS,
    jobState: async (r) => (await stateQueues.get(r.queue)?.getJobState(r.runId)) ?? 'active',
    end: endOrphan,
  });

  /**
   * Keeps the site locks of runs that no agent is running right now (queued, parked at an approval,
   * handed over at shutdown) for as long as some agent of their site is alive (the script renews only a
   * lock the run holds), and ends the runs nobody holds any more.
   */
  const watchIdleRuns = async () => {
    try {
      const active = (await registry.list({ active: true, limit: 1000 })).filter((r) =>
        stateQueues.has(r.queue),
      );
      for (const r of active) {
        if (r.status === 'running') continue;
        await lock.refreshIdle(targetKey(r.site), r.runId, registry.recordKey(r.runId), lockTtlMs);
      }
      await orphans.look(active);
    } catch (err) {
      logger.warn({ err: asCodedError(err).message }, 'cannot look after the idle runs');
    }
  };
  let watching: Promise<void> | undefined;
  const idleKeeper = setInterval(
    () => {
      watching ??= watchIdleRuns().finally(() => {
        watching = undefined;
      });
    },
    Math.max(50, Math.floor(lockTtlMs / 3)),
  );
  const stopSweeping = retention.startSweeping(opts.retentionSweepMs ?? DEFAULT_RETENTION_SWEEP_MS, logger);

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
      worker.on('error', (err) => logger.error({ queue, err: err.message }, 'worker error'));
      worker.on('failed', (job, err) => logger.error({ runId: job?.id, err: err.message }, 'run job failed'));
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
      clearInterval(idleKeeper);
      stopSweeping();
      const grace = setTimeout(() => {
        for (const a of running.values()) a.abort(new RunInterrupted('the agent is shutting down'));
      }, opts.shutdownGraceMs ?? 10_000);
      for (const worker of workers) {
        try {
          await worker.close();
        } catch (err) {
          logger.warn({ err: asCodedError(err).message }, 'closing a worker failed');
        }
      }
      clearTimeout(grace);
      countWorkers();
      await watching;
      for (const q of stateQueues.values()) {
        try {
          await q.close();
        } catch (err) {
          logger.warn({ err: asCodedError(err).message }, 'closing a queue failed');
        }
      }
      for (const conn of [workerConnection, cancels, store]) {
        try {
          await conn.quit();
        } catch (err) {
          logger.warn({ err: asCodedError(err).message }, 'closing a redis connection failed');
        }
      }
    })();
    return closing;
  };
  return { queueNames: workers.map((w) => w.name), stoppedWorkers, close };
}
