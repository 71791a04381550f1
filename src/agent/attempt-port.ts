import type { AttemptPort, AttemptRecord, BeginAttempt, StepRef } from '../engine/events.js';
import { stepSlot } from '../engine/slot.js';
import { CapiError, ErrorCode } from '../errors.js';
import { type AuditLog, NO_AUDIT } from '../ops/audit.js';
import type { Attempt, AttemptJournal } from '../runs/attempts.js';
import type { Fence } from '../runs/fence.js';

/**
 * Redis replication is asynchronous: a failover right after the attempt was recorded could lose the record,
 * and the run, resumed on the new master, would send the command again. With `replicas` > 0 the command is
 * sent only once that many replicas hold the record (WAIT).
 */
export interface ReplicaWait {
  readonly replicas: number;
  readonly timeoutMs: number;
  wait(replicas: number, timeoutMs: number): Promise<number>;
}

/** The engine's attempt journal on Redis, every write under the owner's fence; each attempt is audited. */
export class RedisAttemptPort implements AttemptPort {
  constructor(
    private readonly journal: AttemptJournal,
    private readonly fence: Fence,
    /** An approval decided longer ago than this is asked again instead of being used. */
    private readonly maxDecisionAgeMs: number,
    private readonly audit: AuditLog = NO_AUDIT,
    private readonly replicaWait?: ReplicaWait,
  ) {}

  async find(step: StepRef): Promise<AttemptRecord | undefined> {
    const a = await this.journal.get(this.fence.runId, stepSlot(step));
    return a && record(a);
  }

  async begin(
    step: StepRef,
    approval: { readonly approvalId: string; readonly digest: string },
    command: string,
  ): Promise<BeginAttempt> {
    const r = await this.journal.begin(
      {
        runId: this.fence.runId,
        stepId: step.stepId,
        slot: stepSlot(step),
        ...(step.iteration ? { iteration: step.iteration.n } : {}),
        approvalId: approval.approvalId,
        digest: approval.digest,
        command,
      },
      { fence: this.fence, maxDecisionAgeMs: this.maxDecisionAgeMs },
    );
    if (r.outcome === 'refused') return r;
    if (r.outcome === 'recorded') {
      await this.replicated(step, r.attempt);
      this.audit.record({
        event: 'destructive.sent',
        runId: this.fence.runId,
        step: stepName(step),
        attemptId: r.attempt.attemptId,
        approvalId: r.attempt.approvalId,
        digest: r.attempt.digest,
        command: r.attempt.command,
      });
    }
    return { outcome: r.outcome, attempt: record(r.attempt) };
  }

  /** Throws before anything is sent when the record did not reach enough replicas in time. */
  private async replicated(step: StepRef, attempt: Attempt): Promise<void> {
    const w = this.replicaWait;
    if (w === undefined || w.replicas <= 0) return;
    const acked = await w.wait(w.replicas, w.timeoutMs);
    if (acked >= w.replicas) return;
    throw new CapiError(
      ErrorCode.NotReplicated,
      `${stepName(step)}: the attempt record reached ${acked} of ${w.replicas} Redis replica(s) within ${w.timeoutMs} ms, ` +
        'so a failover could lose it and the command could be sent twice; the command was NOT sent. ' +
        `Check the replicas (INFO replication), then start a new run (attempt ${attempt.attemptId} stays on record)`,
    );
  }

  async finish(step: StepRef, outcome: NonNullable<AttemptRecord['outcome']>): Promise<void> {
    await this.journal.finish(this.fence, stepSlot(step), {
      ...outcome,
      finishedAt: new Date().toISOString(),
    });
    const attempt = await this.journal.get(this.fence.runId, stepSlot(step));
    if (attempt) {
      this.audit.record({
        event: 'destructive.finished',
        runId: this.fence.runId,
        step: stepName(step),
        attemptId: attempt.attemptId,
        digest: attempt.digest,
        exitCode: outcome.exitCode,
        signal: outcome.signal,
        timedOut: outcome.timedOut,
      });
    }
  }

  async verified(step: StepRef): Promise<void> {
    await this.journal.markVerified(this.fence, stepSlot(step));
  }
}

function stepName(step: StepRef): string {
  return step.iteration ? `${step.stepId}#${step.iteration.n}` : step.stepId;
}

function record(a: Attempt): AttemptRecord {
  return {
    attemptId: a.attemptId,
    approvalId: a.approvalId,
    command: a.command,
    startedAt: a.startedAt,
    ...(a.outcome
      ? { outcome: { exitCode: a.outcome.exitCode, signal: a.outcome.signal, timedOut: a.outcome.timedOut } }
      : {}),
  };
}
