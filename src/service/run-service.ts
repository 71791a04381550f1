import type { DoctorReport, DoctorResult } from '../doctor/report.js';
import type { PickResult } from '../queue/job.js';
import type { Runbook } from '../runbook/model.js';
import type { StoredApproval } from '../runs/approvals.js';
import type { Attempt } from '../runs/attempts.js';
import type { SiteHold } from '../runs/lock.js';
import type { Approver, Refusal } from '../runs/policy.js';
import type { RunRecord } from '../runs/registry.js';
import type { TimelineEntry } from '../runs/timeline.js';
import type { DecisionSigner } from '../signing/statement.js';
import * as agentRequests from './agent-requests.js';
import * as decisions from './decisions.js';
import { ServiceParts } from './parts.js';
import * as runRequests from './run-requests.js';
import * as siteHolds from './site-holds.js';
import type {
  AutomatedAsk,
  Confirmed,
  DecisionOutcome,
  RunArchive,
  RunRequest,
  RunServiceOptions,
  RunStart,
} from './types.js';

export { decisionReasonSchema, REASON_MAX_CHARS } from '../runs/decision-reason.js';
export * from './types.js';
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

/**
 * What every front (Slack, terminal) does with runs: start one, cancel one, decide an approval, look
 * at them. Fronts hold no run state of their own; everything lives in Redis, where agents read it.
 * The stores stay behind these verbs: a front never reads or writes a run's Redis keys itself.
 *
 * The door only: each verb lives in the module named for its job (run-requests, decisions, site-holds,
 * agent-requests), the stores and queues they share in ServiceParts.
 */
export class RunService {
  private readonly parts: ServiceParts;
  private closing: Promise<void> | undefined;

  constructor(opts: RunServiceOptions) {
    this.parts = new ServiceParts(opts);
  }

  siteNames(): string[] {
    return [...this.parts.opts.sites.keys()];
  }

  /** The runbooks runs can be started with, in load order: what a front offers. */
  runbooks(): Runbook[] {
    return [...this.parts.opts.runbooks.runbooks.values()];
  }

  /** The run's record; null when there is no such run. */
  getRun(runId: string): Promise<RunRecord | null> {
    return this.parts.registry.get(runId);
  }

  /** Active runs first, then finished ones, each newest first (see RunRegistry.list). */
  listRuns(opts: { readonly active?: boolean; readonly limit?: number } = {}): Promise<RunRecord[]> {
    return this.parts.registry.list(opts);
  }

  /** The run's undecided approval requests, oldest first. */
  pendingApprovals(runId: string): Promise<StoredApproval[]> {
    return this.parts.approvals.pendingForRun(runId);
  }

  /** One approval request with its decision, if any; null when there is no such approval. */
  getApproval(approvalId: string): Promise<StoredApproval | null> {
    return this.parts.approvals.get(approvalId);
  }

  /**
   * A front is showing this approval request to the people who may decide it, now: its expiry runs from
   * here (see ApprovalStore.markShown). Returns the request as it now stands, for the front to render.
   */
  approvalShown(approvalId: string): Promise<StoredApproval | null> {
    return this.parts.approvals.markShown(approvalId);
  }

  /** The run's timeline after `afterId` (from the start when omitted), oldest first, at most `count`. */
  readTimeline(runId: string, afterId?: string, count?: number): Promise<TimelineEntry[]> {
    return this.parts.timeline.read(runId, afterId, count);
  }

  /** The run's timeline after `afterId` (`0` from the start, `$` only new) as it grows, until run.finished. */
  followTimeline(runId: string, afterId: string, signal: AbortSignal): AsyncIterable<TimelineEntry> {
    return this.parts.timeline.follow(runId, afterId, signal);
  }

  /** Everything stored about the run, for a postmortem; null when there is no such run (or it expired). */
  async archiveRun(runId: string): Promise<RunArchive | null> {
    const record = await this.parts.registry.get(runId);
    if (!record) return null;
    return {
      record,
      approvals: await this.parts.approvals.allForRun(runId),
      attempts: await this.parts.attempts.list(runId),
      timeline: await this.parts.timeline.read(runId),
      expiresInMs: await this.parts.registry.expiresInMs(runId),
    };
  }

  /** The run that serves this request: the one started, or the identical read-only run it joined (see start). */
  async submit(request: RunRequest): Promise<RunRecord> {
    return (await this.start(request)).record;
  }

  /** Asks for a run (see run-requests.ts: validation, the site's lock or a join, the limits, the job). */
  start(request: RunRequest, automation?: AutomatedAsk): Promise<RunStart> {
    return runRequests.start(this.parts, request, automation);
  }

  /** Why the site stays locked after its runs ended (see site-holds.ts). */
  holds(site: string): Promise<SiteHold[]> {
    return siteHolds.holds(this.parts, site);
  }

  /** Frees a held site after an operator's check by hand, saying why (see site-holds.ts). */
  release(site: string, by: string, reason: string, via?: string): Promise<SiteHold[]> {
    return siteHolds.release(this.parts, site, by, reason, via);
  }

  /** Automation's read-only run, once per `key` (see run-requests.ts). */
  submitOnce(
    key: string,
    ttlMs: number,
    request: RunRequest,
    automation: AutomatedAsk,
  ): Promise<RunStart | { readonly kind: 'duplicate'; readonly runId: string }> {
    return runRequests.submitOnce(this.parts, key, ttlMs, request, automation);
  }

  /** The next submitOnce(key) starts a run again (the alert resolved). */
  forgetOnce(key: string): Promise<void> {
    return runRequests.forgetOnce(this.parts, key);
  }

  /** The values a runbook offers to pick from, listed by an agent (see agent-requests.ts). */
  pick(runbookName: string, site: string, opts: { readonly pollMs?: number } = {}): Promise<PickResult> {
    return agentRequests.pick(this.parts, runbookName, site, opts);
  }

  /** A site's doctor checks, run by an agent (see agent-requests.ts). */
  doctor(site: string, opts: { readonly pollMs?: number } = {}): Promise<DoctorResult> {
    return agentRequests.doctor(this.parts, site, opts);
  }

  /** Keeps a site's doctor report as its last one (the Home tab shows it). */
  saveDoctorReport(report: DoctorReport): Promise<void> {
    return this.parts.doctorReports.save(report);
  }

  /** The last doctor report of every site that has one. */
  lastDoctorReports(): Promise<Map<string, DoctorReport>> {
    return this.parts.doctorReports.last(this.siteNames());
  }

  /** Records a cancel and tells the run's agent (see decisions.ts). */
  cancel(runId: string, by: string, via?: string): Promise<Confirmed<RunRecord>> {
    return decisions.cancel(this.parts, runId, by, via);
  }

  /** Decides an approval: policy, signed statement, first decision wins, wake the run (see decisions.ts). */
  decide(
    approvalId: string,
    approver: Approver,
    approved: boolean,
    via: string,
    opts: { readonly reason?: string; readonly signer?: DecisionSigner } = {},
  ): Promise<DecisionOutcome> {
    return decisions.decide(this.parts, approvalId, approver, approved, via, opts);
  }

  /** Puts a refused decision on its run's timeline (see decisions.ts). */
  recordRefusal(approvalId: string, by: string, reason: string): Promise<void> {
    return decisions.recordRefusal(this.parts, approvalId, by, reason);
  }

  close(): Promise<void> {
    this.closing ??= this.parts.closeQueues();
    return this.closing;
  }
}
