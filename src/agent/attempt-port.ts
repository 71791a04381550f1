import type { AttemptPort, AttemptRecord, BeginAttempt, StepRef } from '../engine/events.js';
import type { Attempt, AttemptJournal } from '../runs/attempts.js';
import type { Fence } from '../runs/fence.js';

/** The engine's attempt journal on Redis, every write under the owner's fence. */
export class RedisAttemptPort implements AttemptPort {
  constructor(
    private readonly journal: AttemptJournal,
    private readonly fence: Fence,
    /** An approval decided longer ago than this is asked again instead of being used. */
    private readonly maxDecisionAgeMs: number,
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
    return r.outcome === 'refused' ? r : { outcome: r.outcome, attempt: record(r.attempt) };
  }

  async finish(step: StepRef, outcome: NonNullable<AttemptRecord['outcome']>): Promise<void> {
    await this.journal.finish(this.fence, step.stepId, step.iteration?.n, {
      ...outcome,
      finishedAt: new Date().toISOString(),
    });
  }
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
