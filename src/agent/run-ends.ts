/**
 * How a run ends, whoever ends it: the engine (through the timeline sink), a job that cannot go on (refused,
 * cancelled while parked, jumphost unreachable), or the watch over runs nobody holds. One place, so every end
 * does the same bookkeeping in the same order: record, site hold for an attempt nobody saw return, lock,
 * checkpoint, expiry, and only then run.finished.
 */
import type { Logger } from 'pino';
import type { Vars } from '../engine/scope.js';
import type { AuditLog } from '../ops/audit.js';
import type { Metrics } from '../ops/metrics.js';
import { runObserver } from '../ops/run-observer.js';
import type { Runbook } from '../runbook/model.js';
import type { Fence } from '../runs/fence.js';
import { targetKey } from '../runs/lock.js';
import type { RunRecord } from '../runs/registry.js';
import type { RunStores } from './stores.js';
import { holdFor, openAttempts, unreadOutcome } from './unresolved.js';

/** What the run ends name a run by. */
export interface RunRef {
  readonly runId: string;
  readonly site: string;
  readonly runbook: string;
}

export class RunEnds {
  constructor(
    private readonly deps: {
      readonly stores: RunStores;
      readonly audit: AuditLog;
      readonly metrics?: Metrics;
      readonly logger: Logger;
    },
  ) {}

  /**
   * The bookkeeping of a finished run, done before its run.finished event becomes visible. A run that ends with
   * a destructive attempt nobody saw return leaves its site held (audited) before its lock is released, so the
   * site is never free in between; otherwise whoever sees the end also finds the site free. From here on its
   * keys expire after the retention (the sweep catches a run whose agent died before the expiry was set).
   */
  async finishRecord(
    run: { readonly runId: string; readonly site: string },
    fence: Fence,
    status: RunRecord['status'],
    message: string,
  ): Promise<void> {
    const { registry, attempts, lock, checkpoints, retention } = this.deps.stores;
    await registry.update(run.runId, { status, message }, fence);
    const target = targetKey(run.site);
    const [open] = await openAttempts(attempts, run.runId);
    if (open !== undefined) {
      await lock.hold(target, holdFor(open, message), fence);
      this.deps.audit.record({
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
  }

  /**
   * How long the run waited for people: from each approval request to its decision (or to the request that
   * replaced it; one still open counts until now). A run's requests follow one another, so the sum is true.
   */
  async waitingMs(runId: string): Promise<number> {
    const now = Date.now();
    let total = 0;
    for (const a of await this.deps.stores.approvals.allForRun(runId)) {
      const end = a.decision?.at ?? a.superseded?.at;
      total += Math.max(0, (end === undefined ? now : Date.parse(end)) - Date.parse(a.requestedAt));
    }
    return total;
  }

  /**
   * Ends a run that the engine does not end (refused, cancelled while parked, jumphost unreachable, nobody
   * holds it any more). A destructive attempt of it that nobody saw return makes the end OUTCOME UNKNOWN:
   * the message says which command may have landed and what to check (the step's check_by_hand, rendered
   * with what `known` holds), and the site stays held.
   */
  async endWithoutEngine(
    run: RunRef,
    fence: Fence,
    status: 'failed' | 'cancelled',
    why: string,
    requestedAt: string,
    known: { readonly runbook?: Runbook; readonly scope: Vars } = { scope: {} },
  ): Promise<void> {
    const [open] = await openAttempts(this.deps.stores.attempts, run.runId);
    const message = open === undefined ? why : `${why}. ${unreadOutcome(open, known)}`;
    await this.finishRecord(run, fence, status, message);
    const event = {
      type: 'run.finished',
      status,
      message,
      ...(await this.finalTimes(run.runId, requestedAt)),
    } as const;
    if ((await this.deps.stores.timeline.append(run.runId, event, 'run.finished', fence)) !== null) {
      this.observe(run)(event);
    }
  }

  /**
   * An agent that died between finishing the record and appending run.finished: append it now (deduplicated,
   * so a run.finished that did land is not repeated).
   */
  async appendMissingFinish(record: RunRecord, fence: Fence): Promise<void> {
    const status = record.status as 'succeeded' | 'failed' | 'denied' | 'cancelled';
    const message = record.message ?? status;
    const times = await this.finalTimes(record.runId, record.createdAt);
    const event = { type: 'run.finished', status, message, ...times } as const;
    if ((await this.deps.stores.timeline.append(record.runId, event, 'run.finished', fence)) !== null) {
      this.observe(record)(event);
    }
  }

  /** Metrics and audit lines from the events a run stores. */
  observe(run: { readonly runId: string; readonly runbook: string }) {
    return runObserver({
      runId: run.runId,
      runbook: run.runbook,
      ...(this.deps.metrics ? { metrics: this.deps.metrics } : {}),
      audit: this.deps.audit,
      requestedAt: async (approvalId) => {
        const a = await this.deps.stores.approvals.get(approvalId);
        return a ? Date.parse(a.requestedAt) : undefined;
      },
      onError: (err) => this.deps.logger.debug({ err }, 'cannot read an approval for metrics'),
    });
  }

  /** run.finished's times for a run the engine did not end: from its request, waits for people apart. */
  private async finalTimes(runId: string, requestedAt: string) {
    return {
      durationMs: Math.max(0, Date.now() - Date.parse(requestedAt)),
      waitingMs: await this.waitingMs(runId),
    };
  }
}
