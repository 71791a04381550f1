import { createHash } from 'node:crypto';
import { Job, Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { SiteProfile } from '../config/site.js';
import { type DoctorReport, type DoctorResult, DoctorResultSchema } from '../doctor/report.js';
import { CapiError, ErrorCode } from '../errors.js';
import { type AuditLog, NO_AUDIT } from '../ops/audit.js';
import type { Metrics } from '../ops/metrics.js';
import {
  DOCTOR_JOB_NAME,
  DoctorJobSchema,
  PICK_JOB_NAME,
  PickJobSchema,
  type PickResult,
  PickResultSchema,
  RUN_JOB_NAME,
  type RunJob,
  RunJobSchema,
} from '../queue/job.js';
import { cancelChannel, readOnlyQueue } from '../queue/queues.js';
import type { RedisClient } from '../redis/connection.js';
import { newRunId } from '../run-id.js';
import { copyOfRunbook } from '../runbook/copy.js';
import type { RunbookSet } from '../runbook/load.js';
import type { Runbook } from '../runbook/model.js';
import { validateParams } from '../runbook/params.js';
import { ApprovalStore, type DecideResult, type StoredApproval } from '../runs/approvals.js';
import { type Attempt, AttemptJournal } from '../runs/attempts.js';
import { decisionReasonSchema } from '../runs/decision-reason.js';
import { DoctorReports } from '../runs/doctor-reports.js';
import { heldSiteMessage, type SiteHold, TargetLock, targetKey } from '../runs/lock.js';
import { type Approver, mayDecide, type Refusal } from '../runs/policy.js';
import {
  type Claim,
  DEFAULT_READONLY_LIMITS,
  inWords,
  type LimitHit,
  type ReadOnlyLimits,
  ReadOnlyRuns,
} from '../runs/readonly-runs.js';
import { RedisWriteConfirm, type WriteConfirm } from '../runs/redis-durability.js';
import { isFinalStatus, type RunRecord, RunRegistry } from '../runs/registry.js';
import { RunTimeline, type TimelineEntry } from '../runs/timeline.js';
import { type DecisionSigner, statementText } from '../signing/statement.js';

export { decisionReasonSchema, REASON_MAX_CHARS } from '../runs/decision-reason.js';
// What the fronts see of runs: the door's own vocabulary, so no front imports src/runs or src/queue internals.
export type {
  Approver,
  Attempt,
  DoctorReport,
  DoctorResult,
  PickResult,
  Refusal,
  RunRecord,
  SiteHold,
  StoredApproval,
  TimelineEntry,
};

/** Everything stored about one run: what a postmortem export writes before RUN_RETENTION ends. */
export interface RunArchive {
  readonly record: RunRecord;
  /** Every approval request of the run with its decision, oldest first. */
  readonly approvals: StoredApproval[];
  /** Every destructive attempt on record. */
  readonly attempts: Attempt[];
  readonly timeline: TimelineEntry[];
  /** Milliseconds until the run expires from Redis; null while it is kept (not finished). */
  readonly expiresInMs: number | null;
}

export interface RunRequest {
  readonly runbook: string;
  readonly args: readonly string[];
  readonly site: string;
  readonly requestedBy: string;
  /** Where it was asked from when not Slack (`terminal as alice`): kept on the record and audited. */
  readonly via?: string;
  readonly channel?: string;
}

export interface RunServiceOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly runbooks: RunbookSet;
  readonly sites: ReadonlyMap<string, SiteProfile>;
  readonly approvalTimeoutMs: number;
  readonly approvers: readonly string[];
  readonly allowSelfApproval: boolean;
  /** Whether user groups in `approvers` grant the right (CAPI_TRUST_SLACK_GROUPS); default false. */
  readonly trustSlackGroups?: boolean;
  /**
   * Signs every decision this front records (serve: its own key). A terminal has none and passes the
   * operator's SSH signer with each decision instead. No signer: decide() records nothing.
   */
  readonly decisionSigner?: DecisionSigner;
  readonly logger: Logger;
  /** Run requests, decisions, refusals and cancels are audited here, where a human makes them. */
  readonly audit?: AuditLog;
  readonly metrics?: Metrics;
  /**
   * How long BullMQ keeps a finished job (its id, data and return value); the run's own record and timeline
   * are kept for RUN_RETENTION by the agent. Default: 7 days, and at most 1000 jobs per queue.
   */
  readonly jobRetention?: { readonly ageSeconds: number; readonly count: number };
  /** How long a front waits for an agent's doctor checks. Default 5 min (a dozen checks, each bounded to 60 s). */
  readonly doctorTimeoutMs?: number;
  /** REDIS_WAIT_REPLICAS: decisions and cancels are confirmed on that many replicas (WAIT). Default 0. */
  readonly waitReplicas?: number;
  /** How long confirming a decision or a cancel (WAITAOF, WAIT) may take. Default 2 s: a Slack dialog waits for it and must be answered within 3 s. */
  readonly confirmTimeoutMs?: number;
  /** Read-only runs started per person and per site in a window (CAPI_READONLY_*). */
  readonly readOnlyLimits?: ReadOnlyLimits;
}

/**
 * What asking for a run did: started one, or joined the identical read-only run already queued or running
 * (`firstJoin`: this asker's join was new, and its thread shows it).
 */
export type RunStart =
  | { readonly kind: 'started'; readonly record: RunRecord }
  | { readonly kind: 'joined'; readonly record: RunRecord; readonly firstJoin: boolean };

/** Automation asking for a read-only run (an alert group): no person's limit, and the joins say what asked. */
export interface AutomatedAsk {
  /** What asked, shown in the joined run's thread: an alert group's name and labels. */
  readonly note: string;
}

/** A claim this young whose run record is not written yet is a run being created by another front. */
const CLAIM_GRACE_MS = 10_000;

const NO_AGENT = 'no agent answered in time (is an agent serving this site running?)';

export const DEFAULT_JOB_RETENTION = { ageSeconds: 7 * 86_400, count: 1000 } as const;

/** A site name as typed (release, holds): the job payload's own rule, checked before any key is built. */
function siteName(site: string): string {
  const parsed = RunJobSchema.shape.site.safeParse(site);
  if (!parsed.success) {
    throw new CapiError(
      ErrorCode.ParamInvalid,
      `'${site.slice(0, 64)}' is not a site name (a site profile's name)`,
    );
  }
  return parsed.data;
}

/** The lock outlives any approval wait; the agent shortens it again while it works. */
export function lockTtlMs(approvalTimeoutMs: number): number {
  return approvalTimeoutMs + 60 * 60_000;
}

/**
 * `unconfirmed`: the write is made, but Redis could not confirm it is durable (WAITAOF, WAIT fell short), so
 * a Redis crash or failover in the next moments may lose it; the front tells the person so, plainly.
 */
export type Confirmed<T> = T & { readonly unconfirmed?: string };

export type DecisionOutcome = Confirmed<DecideResult | { outcome: 'refused'; refusal: Refusal }>;

/**
 * What every front (Slack, terminal) does with runs: start one, cancel one, decide an approval, look
 * at them. Fronts hold no run state of their own; everything lives in Redis, where agents read it.
 * The stores stay behind these verbs: a front never reads or writes a run's Redis keys itself.
 */
export class RunService {
  private readonly registry: RunRegistry;
  private readonly timeline: RunTimeline;
  private readonly approvals: ApprovalStore;
  private readonly attempts: AttemptJournal;
  private readonly lock: TargetLock;
  private readonly doctorReports: DoctorReports;
  private readonly readOnly: ReadOnlyRuns;
  private readonly audit: AuditLog;
  private readonly writes: WriteConfirm;
  private readonly queues = new Map<string, Queue>();
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: RunServiceOptions) {
    this.registry = new RunRegistry(opts.redis, opts.prefix);
    this.timeline = new RunTimeline(opts.redis, opts.prefix);
    this.approvals = new ApprovalStore(opts.redis, opts.prefix);
    this.attempts = new AttemptJournal(opts.redis, opts.prefix);
    this.lock = new TargetLock(opts.redis, opts.prefix);
    this.doctorReports = new DoctorReports(opts.redis, opts.prefix);
    this.readOnly = new ReadOnlyRuns(opts.redis, opts.prefix, opts.readOnlyLimits ?? DEFAULT_READONLY_LIMITS);
    this.audit = opts.audit ?? NO_AUDIT;
    this.writes = new RedisWriteConfirm(opts.redis, {
      replicas: opts.waitReplicas ?? 0,
      timeoutMs: opts.confirmTimeoutMs ?? 2_000,
    });
  }

  /** Why the writes made so far could not be confirmed durable; undefined when they were (or cannot be). */
  private async unconfirmed(): Promise<string | undefined> {
    const c = await this.writes.confirm();
    return c.kind === 'short' ? c.why : undefined;
  }

  siteNames(): string[] {
    return [...this.opts.sites.keys()];
  }

  /** The runbooks runs can be started with, in load order: what a front offers. */
  runbooks(): Runbook[] {
    return [...this.opts.runbooks.runbooks.values()];
  }

  /** The run's record; null when there is no such run. */
  getRun(runId: string): Promise<RunRecord | null> {
    return this.registry.get(runId);
  }

  /** Active runs first, then finished ones, each newest first (see RunRegistry.list). */
  listRuns(opts: { readonly active?: boolean; readonly limit?: number } = {}): Promise<RunRecord[]> {
    return this.registry.list(opts);
  }

  /** The run's undecided approval requests, oldest first. */
  pendingApprovals(runId: string): Promise<StoredApproval[]> {
    return this.approvals.pendingForRun(runId);
  }

  /** One approval request with its decision, if any; null when there is no such approval. */
  getApproval(approvalId: string): Promise<StoredApproval | null> {
    return this.approvals.get(approvalId);
  }

  /**
   * A front is showing this approval request to the people who may decide it, now: its expiry runs from
   * here (see ApprovalStore.markShown). Returns the request as it now stands, for the front to render.
   */
  approvalShown(approvalId: string): Promise<StoredApproval | null> {
    return this.approvals.markShown(approvalId);
  }

  /** The run's timeline after `afterId` (from the start when omitted), oldest first, at most `count`. */
  readTimeline(runId: string, afterId?: string, count?: number): Promise<TimelineEntry[]> {
    return this.timeline.read(runId, afterId, count);
  }

  /** The run's timeline after `afterId` (`0` from the start, `$` only new) as it grows, until run.finished. */
  followTimeline(runId: string, afterId: string, signal: AbortSignal): AsyncIterable<TimelineEntry> {
    return this.timeline.follow(runId, afterId, signal);
  }

  /** Everything stored about the run, for a postmortem; null when there is no such run (or it expired). */
  async archiveRun(runId: string): Promise<RunArchive | null> {
    const record = await this.registry.get(runId);
    if (!record) return null;
    return {
      record,
      approvals: await this.approvals.allForRun(runId),
      attempts: await this.attempts.list(runId),
      timeline: await this.timeline.read(runId),
      expiresInMs: await this.registry.expiresInMs(runId),
    };
  }

  private site(name: string): SiteProfile {
    const site = this.opts.sites.get(name);
    if (!site) {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        `no site profile named '${name}'; known sites: ${[...this.opts.sites.keys()].join(', ') || 'none'}`,
      );
    }
    return site;
  }

  private queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.opts.redis, prefix: this.opts.prefix });
      q.on('error', (err) => this.opts.logger.warn({ err: err.message, queue: name }, 'queue error'));
      this.queues.set(name, q);
    }
    return q;
  }

  /** The run that serves this request: the one started, or the identical read-only run it joined (see start). */
  async submit(request: RunRequest): Promise<RunRecord> {
    return (await this.start(request)).record;
  }

  /**
   * Validates everything a human typed before anything is stored. A run that can change the cloud takes the
   * site's lock (one run per target); a read-only one joins the identical run already queued or running, or
   * starts within the per-person and per-site limits. Then the run is recorded and enqueued. Refused requests
   * leave nothing behind. `automation`: an alert asked, not a person (no person's limit applies).
   */
  async start(request: RunRequest, automation?: AutomatedAsk): Promise<RunStart> {
    const runbook = this.opts.runbooks.runbooks.get(request.runbook);
    if (!runbook) {
      throw new CapiError(
        ErrorCode.RunbookNotFound,
        `no runbook named '${request.runbook}'; available: ${[...this.opts.runbooks.runbooks.keys()].join(', ')}`,
      );
    }
    const params = validateParams(runbook, request.args);
    this.site(request.site);
    if (runbook.exclusive) return { kind: 'started', record: await this.enqueue(runbook, params, request) };
    return this.startOrJoin(runbook, params, request, automation);
  }

  /**
   * A read-only run: joins the identical one queued or running; else, within the limits, claims the ask (so a
   * second front asking at the same moment joins this one) and starts it.
   */
  private async startOrJoin(
    runbook: Runbook,
    params: Readonly<Record<string, string>>,
    request: RunRequest,
    automation: AutomatedAsk | undefined,
  ): Promise<RunStart> {
    const key = this.readOnly.sameKey(request.site, runbook.name, request.args);
    const ttlMs = lockTtlMs(this.opts.approvalTimeoutMs);
    for (let tries = 0; tries < 5; tries++) {
      const current = await this.readOnly.claimed(key);
      const going = current === undefined ? undefined : await this.runOfClaim(key, current);
      if (going === 'changed') continue;
      if (going !== undefined) return this.join(going, request, automation, ttlMs);
      const runId = newRunId();
      // Claimed before the limits are counted: whoever asks meanwhile joins this run, and no limit refuses them.
      const claim = await this.readOnly.claim(key, current, runId, ttlMs);
      if (claim === undefined) continue; // another front claimed it since: join that run on the next turn
      const person = automation === undefined ? request.requestedBy : undefined;
      const hit = await this.readOnly.take(person, request.site, runId);
      if (hit !== undefined) {
        await this.readOnly.unclaim(key, claim);
        throw this.limitRefusal(hit, runbook.name, request);
      }
      try {
        return { kind: 'started', record: await this.enqueue(runbook, params, request, runId) };
      } catch (err) {
        await this.readOnly.unclaim(key, claim);
        await this.readOnly.untake(person, request.site, runId);
        throw err;
      }
    }
    throw new CapiError(
      ErrorCode.TargetBusy,
      `the same ${runbook.name} kept being started meanwhile; ask again`,
    );
  }

  /**
   * The run a claim names while it is queued or running; undefined when it ended or never started; `changed`
   * when the claim was given up or taken over meanwhile (look again).
   */
  private async runOfClaim(key: string, claim: Claim): Promise<RunRecord | 'changed' | undefined> {
    // A claim just made is a run another front is creating now: its record follows within moments.
    const deadline = Math.min(claim.at + CLAIM_GRACE_MS, Date.now() + CLAIM_GRACE_MS);
    for (;;) {
      const record = await this.registry.get(claim.runId);
      if (record !== null) return isFinalStatus(record.status) ? undefined : record;
      if (Date.now() >= deadline) return undefined;
      if ((await this.readOnly.claimed(key))?.raw !== claim.raw) return 'changed';
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Joins `record`: audited; the run's thread (its timeline) shows each asker once. */
  private async join(
    record: RunRecord,
    request: RunRequest,
    automation: AutomatedAsk | undefined,
    ttlMs: number,
  ): Promise<RunStart> {
    const who = JSON.stringify([request.requestedBy, request.via ?? '', automation?.note ?? '']);
    const firstJoin = await this.readOnly.joined(record.runId, who, ttlMs);
    if (firstJoin) {
      await this.timeline.append(record.runId, {
        type: 'run.joined',
        by: request.requestedBy,
        ...(request.via !== undefined ? { via: request.via } : {}),
        ...(automation !== undefined ? { note: automation.note } : {}),
      });
    }
    this.audit.record({
      event: 'run.joined',
      runId: record.runId,
      runbook: record.runbook,
      site: record.site,
      requestedBy: request.requestedBy,
      ...(request.via !== undefined ? { via: request.via } : {}),
      ...(automation !== undefined ? { note: automation.note } : {}),
    });
    return { kind: 'joined', record, firstJoin };
  }

  /** The refusal of a read-only run past a limit: which limit, and when to ask again. */
  private limitRefusal(hit: LimitHit, runbook: string, request: RunRequest): CapiError {
    const window = inWords(hit.windowMs);
    const why =
      hit.limit === 'person'
        ? `you started ${hit.count} read-only runs in the last ${window} (the CAPI_READONLY_PER_PERSON limit)`
        : `site ${request.site} had ${hit.count} read-only runs started in the last ${window} (the CAPI_READONLY_PER_SITE limit)`;
    this.audit.record({
      event: 'run.refused',
      runbook,
      site: request.site,
      requestedBy: request.requestedBy,
      reason: `read-only limit per ${hit.limit}: ${hit.count} per ${window}`,
    });
    return new CapiError(
      ErrorCode.LimitReached,
      `${why}. Try again in ${inWords(hit.retryInMs)}; \`status\` shows the runs going.`,
    );
  }

  /** Takes the site's lock when the run can change the cloud, records the run and enqueues it. */
  private async enqueue(
    runbook: Runbook,
    params: Readonly<Record<string, string>>,
    request: RunRequest,
    runId: string = newRunId(),
  ): Promise<RunRecord> {
    const job: RunJob = RunJobSchema.parse({
      runId,
      runbook: runbook.name,
      args: [...request.args],
      site: request.site,
      requestedBy: request.requestedBy,
      ...(request.channel !== undefined ? { channel: request.channel } : {}),
    });
    const target = targetKey(job.site);
    // A run that can change the cloud takes the site's exclusive lock; a read-only one (diagnose) takes
    // none and runs on its own queue, so a loop of them can neither refuse nor delay a recovery.
    const lock = runbook.exclusive
      ? await this.lock.acquire(target, job.runId, lockTtlMs(this.opts.approvalTimeoutMs))
      : ({ acquired: true } as const);
    if (!lock.acquired) {
      this.audit.record({
        event: 'run.refused',
        runbook: job.runbook,
        site: job.site,
        requestedBy: job.requestedBy,
        reason: lock.hold
          ? `site held for run ${lock.heldBy}'s unresolved attempt`
          : `site busy with run ${lock.heldBy}`,
      });
      if (lock.hold)
        throw new CapiError(ErrorCode.TargetBusy, heldSiteMessage(job.site, await this.holds(job.site)));
      const running = await this.registry.get(lock.heldBy);
      throw new CapiError(
        ErrorCode.TargetBusy,
        `site ${job.site} already has a run in progress: run id: ${lock.heldBy}` +
          `${running ? ` (${running.runbook}, ${running.status}, requested by ${running.requestedBy})` : ''}. ` +
          `Follow it with status ${lock.heldBy}, or cancel it first.`,
      );
    }
    try {
      const record = await this.registry.create(
        {
          runId: job.runId,
          runbook: job.runbook,
          params,
          site: job.site,
          queue: runbook.exclusive ? this.site(job.site).queue : readOnlyQueue(this.site(job.site).queue),
          requestedBy: job.requestedBy,
          ...(request.via !== undefined ? { requestedVia: request.via } : {}),
          ...(job.channel !== undefined ? { channel: job.channel } : {}),
        },
        // Every resume runs this copy, whatever is deployed by then.
        { runbook: copyOfRunbook(this.opts.runbooks, runbook) },
      );
      const keep = this.opts.jobRetention ?? DEFAULT_JOB_RETENTION;
      const retention = { age: keep.ageSeconds, count: keep.count };
      await this.queue(record.queue).add(RUN_JOB_NAME, job, {
        jobId: job.runId,
        attempts: 1,
        removeOnComplete: retention,
        removeOnFail: retention,
      });
      this.audit.record({
        event: 'run.requested',
        runId: job.runId,
        runbook: job.runbook,
        args: job.args,
        site: job.site,
        requestedBy: job.requestedBy,
        ...(request.via !== undefined ? { via: request.via } : {}),
        ...(job.channel !== undefined ? { channel: job.channel } : {}),
      });
      return record;
    } catch (err) {
      if (runbook.exclusive) await this.lock.release(target, job.runId);
      throw err;
    }
  }

  /**
   * Why the site stays locked after its runs ended: each run that ended while a destructive command of it may
   * have landed (OUTCOME UNKNOWN), oldest first. Empty when nothing holds it.
   */
  holds(site: string): Promise<SiteHold[]> {
    return this.lock.holds(targetKey(siteName(site)));
  }

  /**
   * An operator has checked by hand what the held runs may have done, and frees the site for runs that can
   * change the cloud again, saying why (required: it is the record of the check). Audited with every hold it
   * released. Returns them; empty when the site was not held (nothing changed).
   */
  async release(site: string, by: string, reason: string, via?: string): Promise<SiteHold[]> {
    const name = siteName(site);
    const parsed = decisionReasonSchema.safeParse(reason);
    if (!parsed.success || parsed.data === '') {
      const why = parsed.success
        ? 'say what was checked by hand (it is kept in the audit trail)'
        : parsed.error.issues.map((i) => i.message).join('; ');
      throw new CapiError(ErrorCode.ParamInvalid, `reason: ${why}`);
    }
    const released = await this.lock.releaseHolds(targetKey(name));
    if (released.length > 0) {
      this.audit.record({
        event: 'site.released',
        site: name,
        by,
        ...(via !== undefined ? { via } : {}),
        reason: parsed.data,
        holds: released.map((h) => ({ runId: h.runId, attemptId: h.attemptId, command: h.command })),
      });
    }
    return released;
  }

  /**
   * Starts a read-only run once per `key` until `forgetOnce(key)` or `ttlMs` passes (an alert group firing
   * again and again gets one diagnosis), or joins the identical run already going (many alert groups for one
   * site: one diagnosis, each group shown in its thread). Refuses a runbook that can change anything:
   * automation never starts a destructive run. Resolves with the run started or joined, or the id of the run
   * already started for the key.
   */
  async submitOnce(
    key: string,
    ttlMs: number,
    request: RunRequest,
    automation: AutomatedAsk,
  ): Promise<RunStart | { readonly kind: 'duplicate'; readonly runId: string }> {
    const runbook = this.opts.runbooks.runbooks.get(request.runbook);
    if (!runbook?.readOnly || runbook.exclusive) {
      throw new CapiError(
        ErrorCode.NotAllowed,
        `only a read-only runbook can be started automatically; '${request.runbook}' is not one`,
      );
    }
    const dedup = this.onceKey(key);
    // Claimed first, atomically: two deliveries of one alert group at once start one run.
    const claimed = await this.opts.redis.set(dedup, 'starting', 'PX', ttlMs, 'NX');
    if (claimed === null) {
      return { kind: 'duplicate', runId: (await this.opts.redis.get(dedup)) ?? 'starting' };
    }
    try {
      const result = await this.start(request, automation);
      await this.opts.redis.set(dedup, result.record.runId, 'PX', ttlMs, 'XX');
      return result;
    } catch (err) {
      await this.opts.redis.del(dedup);
      throw err;
    }
  }

  /** The next submitOnce(key) starts a run again (the alert resolved). */
  async forgetOnce(key: string): Promise<void> {
    await this.opts.redis.del(this.onceKey(key));
  }

  private onceKey(key: string): string {
    return `${this.opts.prefix}:once:${createHash('sha256').update(key).digest('hex')}`;
  }

  /**
   * The values a runbook offers to pick from for its parameter (its `pick` listing), read on the site's
   * jumphost by an agent through the site's read-only queue: a front never reaches SSH. Resolves with the
   * candidates, or `{ error }` when the listing failed or no agent answered within the listing's timeout.
   */
  async pick(
    runbookName: string,
    site: string,
    opts: { readonly pollMs?: number } = {},
  ): Promise<PickResult> {
    const runbook = this.opts.runbooks.runbooks.get(runbookName);
    const param = runbook?.params.find((p) => p.pick !== undefined);
    if (!runbook || !param?.pick) return { error: `${runbookName} offers nothing to pick from` };
    const data = PickJobSchema.parse({ runbook: runbook.name, param: param.name, site });
    const queue = this.queue(readOnlyQueue(this.site(site).queue));
    const job = await queue.add(PICK_JOB_NAME, data, {
      attempts: 1,
      removeOnComplete: { age: 3600, count: 100 },
      removeOnFail: { age: 3600, count: 100 },
    });
    // The agent's own timeout bounds the listing.
    const done = await this.jobResult(queue, job, param.pick.timeoutMs + 15_000, opts.pollMs);
    if ('failed' in done) return { error: `the listing failed: ${done.failed}` };
    if ('timedOut' in done) return { error: NO_AGENT };
    const parsed = PickResultSchema.safeParse(done.value);
    return parsed.success ? parsed.data : { error: 'the listing returned something unreadable' };
  }

  /**
   * A site's doctor checks on its jumphost and Redis, run by an agent through the site's read-only queue (a
   * front never reaches SSH): the lines, or `{ error }` when no agent answered in time.
   */
  async doctor(site: string, opts: { readonly pollMs?: number } = {}): Promise<DoctorResult> {
    const data = DoctorJobSchema.parse({ site });
    const queue = this.queue(readOnlyQueue(this.site(site).queue));
    const job = await queue.add(DOCTOR_JOB_NAME, data, {
      attempts: 1,
      removeOnComplete: { age: 3600, count: 100 },
      removeOnFail: { age: 3600, count: 100 },
    });
    const done = await this.jobResult(queue, job, this.opts.doctorTimeoutMs ?? 5 * 60_000, opts.pollMs);
    if ('failed' in done) return { error: `the checks failed: ${done.failed}`.slice(0, 500) };
    if ('timedOut' in done) return { error: NO_AGENT };
    const parsed = DoctorResultSchema.safeParse(done.value);
    return parsed.success ? parsed.data : { error: 'the checks returned something unreadable' };
  }

  /** Keeps a site's doctor report as its last one (the Home tab shows it). */
  saveDoctorReport(report: DoctorReport): Promise<void> {
    return this.doctorReports.save(report);
  }

  /** The last doctor report of every site that has one. */
  lastDoctorReports(): Promise<Map<string, DoctorReport>> {
    return this.doctorReports.last(this.siteNames());
  }

  /** Waits on Redis (the job's state), never on Slack: the job's return value, or why there is none. */
  private async jobResult(
    queue: Queue,
    job: Job,
    timeoutMs: number,
    pollMs = 200,
  ): Promise<{ value: unknown } | { failed: string } | { timedOut: true }> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const state = await job.getState();
      if (state === 'completed' || state === 'failed') {
        const done = await Job.fromId(queue, job.id as string);
        if (state === 'failed' || !done) return { failed: done?.failedReason ?? 'no result' };
        return { value: done.returnvalue };
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    return { timedOut: true };
  }

  /**
   * Records who asked. A running agent sees it between steps and kills the running command; a run
   * parked on an approval is woken so its agent can end it now rather than at the expiry.
   */
  async cancel(runId: string, by: string, via?: string): Promise<Confirmed<RunRecord>> {
    const record = await this.registry.requestCancel(runId, by);
    // Before anyone is told it is done: a cancel Redis loses lets an approved step be sent after all.
    const unconfirmed = await this.unconfirmed();
    this.audit.record({ event: 'run.cancel_requested', runId, by, ...(via !== undefined ? { via } : {}) });
    // The running agent hears it at once (it also reads the record every few seconds, in case it missed it).
    await this.opts.redis.publish(cancelChannel(this.opts.prefix), runId);
    await this.wake(record);
    return unconfirmed === undefined ? record : { ...record, unconfirmed };
  }

  /**
   * Policy first (who may decide), then the decision as a signed statement (the agent acts on nothing else),
   * then the atomic first-decision-wins write, then wake the run. `reason` is the decider's own words
   * (optional): validated here, signed and stored with the decision, audited. `signer` signs this decision
   * instead of the service's own (a terminal: the operator's SSH key).
   */
  async decide(
    approvalId: string,
    approver: Approver,
    approved: boolean,
    via: string,
    opts: { readonly reason?: string; readonly signer?: DecisionSigner } = {},
  ): Promise<DecisionOutcome> {
    const parsedReason = decisionReasonSchema.safeParse(opts.reason ?? '');
    if (!parsedReason.success) {
      const why = parsedReason.error.issues.map((i) => i.message).join('; ');
      throw new CapiError(ErrorCode.ParamInvalid, `reason: ${why}`);
    }
    const reason = parsedReason.data === '' ? undefined : parsedReason.data;
    const stored = await this.approvals.get(approvalId);
    if (!stored) return { outcome: 'not_found' };
    const allowed = mayDecide(approver, stored.request, {
      approvers: this.opts.approvers,
      allowSelfApproval: this.opts.allowSelfApproval,
      trustSlackGroups: this.opts.trustSlackGroups ?? false,
    });
    if (!allowed.allowed) {
      this.audit.record({
        event: 'approval.refused',
        runId: stored.runId,
        approvalId,
        by: approver.userId,
        // The rule that refused (no_approvers, not_an_approver, own_run): each front words it for people.
        reason: allowed.refusal.kind,
      });
      this.opts.metrics?.approvals.inc({ runbook: stored.request.runbook, outcome: 'refused' });
      return { outcome: 'refused', refusal: allowed.refusal };
    }
    const signer = opts.signer ?? this.opts.decisionSigner;
    if (signer === undefined) {
      throw new CapiError(
        ErrorCode.NotAllowed,
        'this front has no key to sign decisions with (serve: CAPI_DECISION_SIGNING_KEY), and the agents act on no unsigned decision; nothing was recorded',
      );
    }
    const group = allowed.group;
    const signed = await signer.sign(
      statementText({
        approvalId,
        digest: stored.request.digest,
        decider: approver.userId,
        verdict: approved ? 'approve' : 'deny',
        at: new Date().toISOString(),
        via,
        ...(group !== undefined ? { group } : {}),
        ...(reason !== undefined ? { note: reason } : {}),
      }),
    );
    const result = await this.approvals.decide(approvalId, {
      approved,
      by: approver.userId,
      via,
      signed,
      ...(reason !== undefined ? { note: reason } : {}),
    });
    // A denial Redis loses would be pending again; confirmed before the decider is told it is done.
    const unconfirmed =
      result.outcome === 'decided' || result.outcome === 'voted' ? await this.unconfirmed() : undefined;
    if (result.outcome === 'decided') {
      const d = result.approval.decision;
      this.audit.record({
        event: 'approval.decided',
        runId: stored.runId,
        approvalId,
        digest: stored.request.digest,
        decision: approved ? 'approved' : 'denied',
        by: approver.userId,
        via,
        ...(group !== undefined ? { group } : {}),
        ...(reason !== undefined ? { reason } : {}),
        ...(d?.approved && d.approvers !== undefined ? { approvers: d.approvers } : {}),
      });
    }
    if (result.outcome === 'voted') {
      const count = result.approval.votes?.length ?? 0;
      const quorum = stored.request.quorum ?? 1;
      this.audit.record({
        event: 'approval.voted',
        runId: stored.runId,
        approvalId,
        digest: stored.request.digest,
        by: approver.userId,
        via,
        ...(group !== undefined ? { group } : {}),
        count,
        quorum,
        ...(reason !== undefined ? { reason } : {}),
      });
      // The thread and the postmortem show each approval as it comes; the run itself waits for the last.
      await this.timeline.append(stored.runId, {
        type: 'approval.voted',
        approvalId,
        by: approver.userId,
        count,
        of: quorum,
        ...(reason !== undefined ? { note: reason } : {}),
      });
    }
    if (result.outcome === 'decided' || result.outcome === 'expired') {
      const record = await this.registry.get(stored.runId);
      if (record) await this.wake(record);
    }
    return unconfirmed === undefined ? result : { ...result, unconfirmed };
  }

  /**
   * Puts a refused decision on its run's timeline (who, and why in words), so the thread and the
   * postmortem show it; nothing else changes. Quietly nothing when the approval is unknown.
   */
  async recordRefusal(approvalId: string, by: string, reason: string): Promise<void> {
    const stored = await this.approvals.get(approvalId);
    if (stored)
      await this.timeline.append(stored.runId, { type: 'approval.refused', approvalId, by, reason });
  }

  /** Moves a run's delayed job (waiting on an approval) back to the queue at once. */
  private async wake(record: RunRecord): Promise<void> {
    const job = await Job.fromId(this.queue(record.queue), record.runId);
    if (!job || !(await job.isDelayed())) return;
    try {
      await job.promote();
    } catch (err) {
      // Two fronts waking the same job: the second finds it no longer delayed, which is fine.
      this.opts.logger.debug({ runId: record.runId, err }, 'job already woken');
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const q of this.queues.values()) {
        try {
          await q.close();
        } catch (err) {
          this.opts.logger.warn({ err }, 'closing a queue failed');
        }
      }
    })();
    return this.closing;
  }
}
