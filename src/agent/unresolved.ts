/**
 * A run that ends while one of its destructive commands may have landed must say so, and must leave its site
 * held until someone has checked: this is where an agent finds such an attempt and words it when no engine
 * is running the run (a run that cannot resume, a run nobody holds any more).
 */
import type { Vars } from '../engine/scope.js';
import { checkByHandUnread, unknownOutcome } from '../engine/unknown-outcome.js';
import type { Runbook, RunStep } from '../runbook/model.js';
import { type Attempt, type AttemptJournal, isOpen } from '../runs/attempts.js';
import type { SiteHold } from '../runs/lock.js';

/** The run's attempts whose outcome nobody knows, oldest first. */
export async function openAttempts(journal: AttemptJournal, runId: string): Promise<Attempt[]> {
  return (await journal.list(runId)).filter(isOpen);
}

/** The destructive step an attempt was made for (`loop/step` inside a for_each), in the run's own runbook. */
export function stepOf(runbook: Runbook | undefined, stepId: string): RunStep | undefined {
  for (const s of runbook?.steps ?? []) {
    if (s.kind === 'run' && s.id === stepId) return s;
    if (s.kind === 'for_each' && stepId.startsWith(`${s.id}/`)) {
      const inner = s.steps.find((l) => l.id === stepId.slice(s.id.length + 1));
      return inner?.kind === 'run' ? inner : undefined;
    }
  }
  return undefined;
}

/**
 * OUTCOME UNKNOWN for a run that ends without reading the cloud back (the reason it ends says why nobody
 * could); the step's check_by_hand says what to look at.
 */
export function unreadOutcome(
  attempt: Attempt,
  known: { readonly runbook?: Runbook; readonly scope: Vars },
): string {
  const check = checkByHandUnread(stepOf(known.runbook, attempt.stepId), known.scope, attempt);
  return unknownOutcome(attempt, 'no agent saw it return', check);
}

export function holdFor(attempt: Attempt, message: string): SiteHold {
  return {
    runId: attempt.runId,
    step: attempt.slot ?? attempt.stepId,
    attemptId: attempt.attemptId,
    command: attempt.command,
    sentAt: attempt.startedAt,
    heldAt: new Date().toISOString(),
    message,
  };
}
