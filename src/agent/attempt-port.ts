import type { AttemptPort, AttemptRecord, BeginAttempt, StepRef } from '../engine/events.js';
import { AttemptOnRecordError, CapiError, ErrorCode, type JumphostAheadError } from '../errors.js';
import { type AuditLog, NO_AUDIT } from '../ops/audit.js';
import type { Attempt, AttemptJournal } from '../runs/attempts.js';
import type { Fence } from '../runs/fence.js';
import { NO_CONFIRM, type WriteConfirm } from '../runs/redis-durability.js';
import { FENCE_REFUSED_EXIT } from '../ssh/remote-fence.js';

/** The engine's attempt journal on Redis, every write under the owner's fence; each attempt is audited. */
export class RedisAttemptPort implements AttemptPort {
  constructor(
    private readonly journal: AttemptJournal,
    private readonly fence: Fence,
    /** An approval decided longer ago than this is asked again instead of being used. */
    private readonly maxDecisionAgeMs: number,
    private readonly audit: AuditLog = NO_AUDIT,
    /**
     * Redis answers before the record is on disk or on a replica: a crash or a failover right after it could
     * lose the record (and the approval's consumption), and the resumed run would send again. The command is
     * sent only once the record is confirmed where this Redis can confirm it (WAITAOF, WAIT); where it
     * cannot, the jumphost's attempt marker is the last word.
     */
    private readonly writes: WriteConfirm = NO_CONFIRM,
  ) {}

  async find(step: StepRef): Promise<AttemptRecord | undefined> {
    const a = await this.journal.get(this.fence.runId, step.stepId, step.iteration?.n);
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
        ...(step.iteration ? { iteration: step.iteration.n } : {}),
        approvalId: approval.approvalId,
        digest: approval.digest,
        command,
      },
      { fence: this.fence, maxDecisionAgeMs: this.maxDecisionAgeMs },
    );
    if (r.outcome === 'refused') return r;
    if (r.outcome === 'recorded') {
      await this.confirmed(step, r.attempt);
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
    return r.outcome === 'recorded'
      ? { outcome: r.outcome, attempt: record(r.attempt), slot: r.slot }
      : { outcome: r.outcome, attempt: record(r.attempt) };
  }

  /** Throws before anything is sent when a confirmation was asked of Redis and fell short. */
  private async confirmed(step: StepRef, attempt: Attempt): Promise<void> {
    const c = await this.writes.confirm();
    if (c.kind !== 'short') return;
    throw new CapiError(
      ErrorCode.NotReplicated,
      `${stepName(step)}: the attempt record is not confirmed: ${c.why}, so Redis could still lose it and the ` +
        'command could be sent twice; the command was NOT sent. Check Redis (INFO persistence, INFO ' +
        `replication), then start a new run (attempt ${attempt.attemptId} stays on record)`,
    );
  }

  async finish(step: StepRef, outcome: NonNullable<AttemptRecord['outcome']>): Promise<void> {
    await this.journal.finish(this.fence, step.stepId, step.iteration?.n, {
      ...outcome,
      finishedAt: new Date().toISOString(),
    });
    const attempt = await this.journal.get(this.fence.runId, step.stepId, step.iteration?.n);
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

  /**
   * The audit trail said `destructive.sent` before the send; this says it was not sent after all, and why,
   * so the trail never claims a send the jumphost refused. A send refused for a newer owner's token is
   * closed in the journal with the refused command's exit status: nothing of it ran, nothing may have
   * landed.
   */
  async refused(step: StepRef, why: AttemptOnRecordError | JumphostAheadError): Promise<void> {
    const onRecord = why instanceof AttemptOnRecordError;
    if (!onRecord) {
      await this.journal.finish(this.fence, step.stepId, step.iteration?.n, {
        exitCode: FENCE_REFUSED_EXIT,
        signal: null,
        timedOut: false,
        finishedAt: new Date().toISOString(),
      });
    }
    const attempt = await this.journal.get(this.fence.runId, step.stepId, step.iteration?.n);
    this.audit.record({
      event: 'destructive.refused',
      runId: this.fence.runId,
      step: stepName(step),
      ...(attempt ? { attemptId: attempt.attemptId, digest: attempt.digest } : {}),
      ...(onRecord
        ? {
            reason: 'attempt_on_record',
            marker: why.marker,
            sentAt: why.sentAt ?? 'unknown',
            ...(why.digest !== undefined ? { sentDigest: why.digest } : {}),
          }
        : { reason: 'jumphost_fence_ahead', fence: why.token, jumphostFence: why.seen }),
    });
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
