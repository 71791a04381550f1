import { Queue } from 'bullmq';
import type { SiteProfile } from '../config/site.js';
import { CapiError, ErrorCode } from '../errors.js';
import { type AuditLog, NO_AUDIT } from '../ops/audit.js';
import { ApprovalStore } from '../runs/approvals.js';
import { AttemptJournal } from '../runs/attempts.js';
import { DoctorReports } from '../runs/doctor-reports.js';
import { TargetLock } from '../runs/lock.js';
import { DEFAULT_READONLY_LIMITS, ReadOnlyRuns } from '../runs/readonly-runs.js';
import { RedisWriteConfirm, type WriteConfirm } from '../runs/redis-durability.js';
import { RunRegistry } from '../runs/registry.js';
import { RunTimeline } from '../runs/timeline.js';
import type { RunServiceOptions } from './types.js';

/**
 * What every verb of the service shares: its options, the stores behind it, and the BullMQ queues it has
 * opened. One per RunService; the verbs (run-requests, decisions, site-holds, agent-requests) take it.
 */
export class ServiceParts {
  readonly registry: RunRegistry;
  readonly timeline: RunTimeline;
  readonly approvals: ApprovalStore;
  readonly attempts: AttemptJournal;
  readonly lock: TargetLock;
  readonly doctorReports: DoctorReports;
  readonly readOnly: ReadOnlyRuns;
  readonly audit: AuditLog;
  private readonly writes: WriteConfirm;
  private readonly queues = new Map<string, Queue>();

  constructor(readonly opts: RunServiceOptions) {
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
  async unconfirmed(): Promise<string | undefined> {
    const c = await this.writes.confirm();
    return c.kind === 'short' ? c.why : undefined;
  }

  site(name: string): SiteProfile {
    const site = this.opts.sites.get(name);
    if (!site) {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        `no site profile named '${name}'; known sites: ${[...this.opts.sites.keys()].join(', ') || 'none'}`,
      );
    }
    return site;
  }

  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.opts.redis, prefix: this.opts.prefix });
      q.on('error', (err) => this.opts.logger.warn({ err: err.message, queue: name }, 'queue error'));
      this.queues.set(name, q);
    }
    return q;
  }

  /** Closes every queue opened; one that fails to close is logged, the others still close. */
  async closeQueues(): Promise<void> {
    for (const q of this.queues.values()) {
      try {
        await q.close();
      } catch (err) {
        this.opts.logger.warn({ err }, 'closing a queue failed');
      }
    }
  }
}
