/**
 * One run job, top to bottom. Each phase either hands the next one what it needs or has already ended or
 * parked the run (then the job returns, or throws BullMQ's DelayedError to wait in the delayed set):
 *
 *   claim      the run is this agent's now (a new fence); a run already ended, cancelled while parked, or
 *              still waiting for an approval goes no further
 *   preflight  this agent has the site, the runbook the run started with, and (for a run that can change
 *              the cloud) the site lock
 *   resume     where the run starts again: its checkpoint, never step 0 once something was sent
 *   connect    the run is running from here on; the jumphost's SSH session
 *   run        the engine, under the run's lease (fence, site lock) and its cancel watch
 *   park       a run waiting for an approval, handed over at shutdown, or whose hold was lost
 *   finish     the engine ended the run; its bookkeeping was done as run.finished was stored (run-ends.ts)
 *
 * Every write is fenced: once another agent takes the run, whatever this one still tries to write fails with
 * RunFencedError and the job stops here without touching the run again.
 */
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import { resolveJumphost } from '../config/jumphost.js';
import type { SiteProfile } from '../config/site.js';
import { runRunbook } from '../engine/engine.js';
import type { Checkpoint, RunOptions, RunOutcome } from '../engine/outcome.js';
import { publicSite } from '../engine/scope.js';
import { asCodedError, RunFencedError } from '../errors.js';
import type { AuditLog } from '../ops/audit.js';
import type { RunJob } from '../queue/job.js';
import { copyOfRunbook, restoreRunbook } from '../runbook/copy.js';
import type { Runbook } from '../runbook/model.js';
import { validateParams } from '../runbook/params.js';
import type { Fence } from '../runs/fence.js';
import { heldSiteMessage, targetKey } from '../runs/lock.js';
import { isFinalStatus, type RunRecord } from '../runs/registry.js';
import { connectSsh } from '../ssh/executor.js';
import { RedisApprovalPort } from './approval-port.js';
import { RedisAttemptPort } from './attempt-port.js';
import type { CancelSubscription } from './cancels.js';
import { type AgentOptions, DEFAULT_RETENTION_MS } from './options.js';
import type { RunEnds } from './run-ends.js';
import { leasedExecutor, RunLease } from './run-lease.js';
import type { RunStores } from './stores.js';
import { timelineSink } from './timeline-sink.js';
import { openAttempts } from './unresolved.js';

/** What every run job of one agent shares. */
export interface RunJobDeps {
  readonly opts: AgentOptions;
  readonly stores: RunStores;
  readonly ends: RunEnds;
  readonly audit: AuditLog;
  readonly cancels: CancelSubscription;
  /** The runs this process is running, by job id: aborted on shutdown or when BullMQ loses their lock. */
  readonly running: Map<string, AbortController>;
  readonly lockTtlMs: number;
  /** True once the agent shuts down: the engine then stops the run before its next step, to be handed over. */
  readonly stopping: () => boolean;
}

/** A run that passed preflight: what it runs, where. */
interface Ready {
  readonly record: RunRecord;
  readonly site: SiteProfile;
  readonly runbook: Runbook;
  /** The site lock's key. */
  readonly target: string;
}

type Resume = NonNullable<RunOptions['resume']>;
type Ssh = Awaited<ReturnType<typeof connectSsh>>;

/**
 * Runs a run job as the run's owner. Undefined when the run ended without the engine (or another agent took
 * it over); DelayedError when it was parked.
 */
export async function runJob(
  deps: RunJobDeps,
  job: Job,
  data: RunJob,
  token: string | undefined,
  log: Logger,
): Promise<RunOutcome | undefined> {
  // Whoever runs the job now is the run's owner: every earlier owner's token is stale from here on.
  const fence = await deps.stores.fences.take(data.runId);
  try {
    return await new JobRun(deps, job, data, fence, token, log).run();
  } catch (err) {
    if (!(err instanceof RunFencedError)) throw err;
    log.warn({ fence: fence.token, why: err.message }, 'run taken over by another agent; stopped here');
    return undefined;
  }
}

class JobRun {
  constructor(
    private readonly deps: RunJobDeps,
    private readonly job: Job,
    private readonly data: RunJob,
    private readonly fence: Fence,
    private readonly token: string | undefined,
    private readonly log: Logger,
  ) {}

  /** The phases in order; each undefined means the run was ended (or parked) where it stopped. */
  async run(): Promise<RunOutcome | undefined> {
    const record = await this.claim();
    if (record === undefined) return undefined;
    const ready = await this.preflight(record);
    if (ready === undefined) return undefined;
    const start = await this.resume(ready);
    if (start === undefined) return undefined;
    const ssh = await this.connect(ready, start.resume);
    if (ssh === undefined) return undefined;
    const outcome = await this.runEngine(ready, start.resume, ssh);
    if (outcome.status === 'fenced') return this.handOverLostRun(outcome.why);
    if (outcome.status === 'suspended' || outcome.status === 'interrupted') return this.park(outcome);
    return this.finish(outcome);
  }

  /** The run's record, unless the run is already over, was cancelled while parked, or still waits. */
  private async claim(): Promise<RunRecord | undefined> {
    const { registry } = this.deps.stores;
    const { data, fence } = this;
    const record = await registry.get(data.runId);
    if (!record) throw new UnrecoverableError(`run ${data.runId} has no record: nothing to run`);
    if (isFinalStatus(record.status)) {
      await this.deps.ends.appendMissingFinish(record, fence);
      return undefined;
    }

    if (record.cancelRequestedBy !== undefined && record.status !== 'running') {
      await this.deps.ends.endWithoutEngine(
        data,
        fence,
        'cancelled',
        `cancelled by ${record.cancelRequestedBy} before it ran again`,
        record.createdAt,
      );
      return undefined;
    }
    if (record.status === 'waiting_approval' && (await this.parkAgain())) {
      throw new DelayedError();
    }
    return record;
  }

  /**
   * The site profile, the run's own runbook and, for an exclusive runbook, the site lock; a run that lacks
   * one of them ends failed, saying why.
   */
  private async preflight(record: RunRecord): Promise<Ready | undefined> {
    const { data, fence } = this;
    const { ends, lockTtlMs } = this.deps;
    const site = this.deps.opts.sites.get(data.site);
    if (!site) {
      await ends.endWithoutEngine(
        data,
        fence,
        'failed',
        `this agent has no site profile named ${data.site}`,
        record.createdAt,
      );
      return undefined;
    }
    const ofRun = await this.runbookOf(record);
    if ('refused' in ofRun) {
      await this.refuse(record, site, ofRun.refused);
      return undefined;
    }
    const { runbook } = ofRun;
    const target = targetKey(data.site);
    if (runbook.exclusive) {
      const held = await this.deps.stores.lock.acquire(target, data.runId, lockTtlMs, fence);
      if (!held.acquired) {
        await ends.endWithoutEngine(data, fence, 'failed', await this.siteBusy(held), record.createdAt, {
          ...known(record, site),
          runbook,
        });
        return undefined;
      }
    }
    return { record, site, runbook, target };
  }

  /** Where the run starts again (nothing for a first start); a run that cannot resume safely ends failed. */
  private async resume(ready: Ready): Promise<{ readonly resume: Resume | undefined } | undefined> {
    const { record, site, runbook } = ready;
    const { checkpoints, attempts } = this.deps.stores;
    const { data } = this;
    let checkpoint: Checkpoint | undefined;
    try {
      checkpoint = await checkpoints.load(data.runId);
    } catch (err) {
      await this.refuse(
        record,
        site,
        `its checkpoint cannot be read (${asCodedError(err).message})`,
        runbook,
      );
      return undefined;
    }
    if (checkpoint === undefined) {
      // Step 0 again would read every list again: an attempt made for one item could be matched to another.
      const made = await attempts.list(data.runId);
      if (made.length > 0) {
        await this.refuse(
          record,
          site,
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
    return { resume };
  }

  /** Marks the run running and opens its SSH session; a jumphost out of reach ends the run failed. */
  private async connect(ready: Ready, resume: Resume | undefined): Promise<Ssh | undefined> {
    const { record, site, runbook } = ready;
    const { opts } = this.deps;
    const { data, fence } = this;
    await this.deps.stores.registry.update(data.runId, { status: 'running' }, fence);

    try {
      const ssh = await connectSsh({
        target: resolveJumphost(site, opts.jumphostEnv),
        jumphostRetentionMs: opts.retentionMs ?? DEFAULT_RETENTION_MS,
        ...(opts.maxLineBytes !== undefined ? { maxLineBytes: opts.maxLineBytes } : {}),
      });
      opts.metrics?.sshConnects.inc({ result: 'ok' });
      return ssh;
    } catch (err) {
      opts.metrics?.sshConnects.inc({ result: 'error' });
      await this.deps.ends.endWithoutEngine(
        data,
        fence,
        'failed',
        `cannot reach the jumphost: ${asCodedError(err).message}`,
        record.createdAt,
        { ...known(record, site, resume?.checkpoint), runbook },
      );
      return undefined;
    }
  }

  /**
   * The engine runs the run. Its lease confirms the fence and the site lock on a timer and aborts the run
   * when either is lost; a cancel (pub/sub, or the record read once at the start) aborts it too. Whatever
   * happens, the lease, the cancel watch and the SSH session end with it.
   */
  private async runEngine(ready: Ready, resume: Resume | undefined, ssh: Ssh): Promise<RunOutcome> {
    const { record, site, runbook, target } = ready;
    const { opts, stores, running, cancels, ends } = this.deps;
    const { registry, approvals, attempts } = stores;
    const { data, fence, log } = this;
    const abort = new AbortController();
    running.set(data.runId, abort);
    const lease = new RunLease({
      fence,
      fences: stores.fences,
      ...(runbook.exclusive ? { siteLock: { lock: stores.lock, target } } : {}),
      ttlMs: this.deps.lockTtlMs,
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
        (err: unknown) => log.warn({ err }, 'cannot read the run record'),
      );
    cancels.watch(data.runId, checkCancel);
    // A cancel published before this run was watched above found nothing to tell.
    void checkCancel();

    const sink = timelineSink(fence, {
      redis: stores.redis,
      timeline: stores.timeline,
      registry,
      checkpoints: stores.checkpoints,
      onFinished: (e) => ends.finishRecord(data, fence, e.status, e.message),
      onStored: ends.observe(data),
    });
    try {
      return await runRunbook({
        runId: data.runId,
        runbook,
        params: validateParams(runbook, data.args),
        site,
        requestedBy: record.requestedBy,
        executor: leasedExecutor(ssh, fence, lease),
        approvals: new RedisApprovalPort(approvals, opts.approvalTimeoutMs, fence, opts.decisions),
        attempts: new RedisAttemptPort(
          attempts,
          fence,
          opts.approvalTimeoutMs,
          this.deps.audit,
          stores.writes,
        ),
        emit: sink.emit,
        signal: abort.signal,
        ...(resume ? { resume } : {}),
        onCheckpoint: sink.checkpoint,
        pauseRequested: () => this.deps.stopping(),
        requestedAt: record.createdAt,
        waitingMs: () => ends.waitingMs(data.runId),
      });
    } finally {
      cancels.unwatch(data.runId);
      lease.stop();
      running.delete(data.runId);
      await ssh.close();
    }
  }

  /**
   * A run that stopped at an approval nobody decided yet waits in the delayed set until the approval expires
   * (a decision or cancel promotes it); one interrupted by this agent's shutdown is due at once, for the next
   * agent to resume. Both from their checkpoint.
   */
  private async park(outcome: Extract<RunOutcome, { status: 'suspended' | 'interrupted' }>): Promise<never> {
    const { registry, approvals, checkpoints } = this.deps.stores;
    const { job, data, fence, token, log } = this;
    await checkpoints.save(data.runId, outcome.checkpoint, fence);
    if (outcome.status === 'suspended') {
      await registry.update(data.runId, { status: 'waiting_approval' }, fence);
      await job.moveToDelayed(Date.parse(outcome.expiresAt), token);
      // A decision (or cancel) that landed while the job was still active found nothing to wake.
      const now = await approvals.get(outcome.approvalId);
      const again = await registry.get(data.runId);
      if (now?.decision !== undefined || again?.cancelRequestedBy !== undefined) await job.promote();
      log.info({ approvalId: outcome.approvalId, expiresAt: outcome.expiresAt }, 'run waiting for approval');
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

  /** The engine ended the run: its record, site lock and run.finished were written as it ended. */
  private finish(outcome: RunOutcome): RunOutcome {
    this.log.info({ status: outcome.status }, 'run finished');
    return outcome;
  }

  /**
   * The run stopped because this agent's hold on it ended (its site lock or job lock lost, ownership not
   * confirmed while Redis was away, or another agent took it). Whoever owns the run now ends it, never this
   * agent otherwise: if another agent took it (a newer fence), that agent resumes it and this one writes
   * nothing. If this agent is still the owner, it hands the run over at once instead of leaving it "running":
   * the next agent (maybe this one) takes the site lock again and resumes at the step it was on, where a
   * destructive command in flight is read back, never sent again: it went on, or the run ends OUTCOME UNKNOWN
   * with the site held. Every write here is fenced, so a take-over racing it wins.
   */
  private async handOverLostRun(why: string): Promise<never> {
    const { fences, attempts, registry } = this.deps.stores;
    const { job, data, fence, token, log } = this;
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
  }

  /**
   * A parked run woken while its approval is still open: the job was delayed to the expiry known when the run
   * parked, and the expiry moved on since (it runs from when Slack showed the request). Parks the job again
   * until the new expiry, without resuming anything; false when there is nothing to wait for (decided,
   * expired now, superseded), so the run resumes as usual.
   */
  private async parkAgain(): Promise<boolean> {
    const { approvals, registry } = this.deps.stores;
    const { job, token, log } = this;
    const runId = this.data.runId;
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
  }

  /**
   * The runbook the run started with, compiled from the copy stored at submit; never what is on disk now. A
   * run an older front submitted (no copy) takes today's runbook only if nothing of it has happened yet.
   * Otherwise `refused` says why it cannot resume.
   */
  private async runbookOf(
    record: RunRecord,
  ): Promise<{ readonly runbook: Runbook } | { readonly refused: string }> {
    const { registry, checkpoints, attempts, approvals } = this.deps.stores;
    const { runbooks } = this.deps.opts;
    const { data, fence } = this;
    const stored = await registry.storedRunbook(data.runId);
    if (stored === null) {
      const onDisk = runbooks.runbooks.get(data.runbook);
      const untouched =
        record.status === 'queued' &&
        (await checkpoints.exists(data.runId)) === false &&
        (await attempts.list(data.runId)).length === 0 &&
        (await approvals.allForRun(data.runId)).length === 0;
      if (onDisk !== undefined && untouched) {
        await registry.adoptRunbook(data.runId, copyOfRunbook(runbooks, onDisk), fence);
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
  }

  /** Why a run cannot take its site, in words an operator can act on. */
  private async siteBusy(held: { heldBy: string; hold: boolean }): Promise<string> {
    const site = this.data.site;
    return held.hold
      ? heldSiteMessage(site, await this.deps.stores.lock.holds(targetKey(site)))
      : `site ${site} is locked by run ${held.heldBy}`;
  }

  /** Ends a run that cannot resume safely, saying why; its site stays held if an attempt is unresolved. */
  private refuse(record: RunRecord, site: SiteProfile, why: string, runbook?: Runbook): Promise<void> {
    return this.deps.ends.endWithoutEngine(
      this.data,
      this.fence,
      'failed',
      `run ${this.data.runId} cannot resume: ${why}; nothing more was run`,
      record.createdAt,
      { ...known(record, site), ...(runbook ? { runbook } : {}) },
    );
  }
}

/** What a run's check-by-hand text can be rendered with when no engine runs it: site, params, captures. */
function known(record: RunRecord, site: SiteProfile, checkpoint?: Checkpoint) {
  return {
    scope: { site: publicSite(site), params: { ...record.params }, ...(checkpoint?.captured ?? {}) },
  };
}
