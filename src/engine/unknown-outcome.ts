/**
 * OUTCOME UNKNOWN in words: a destructive command was sent and nobody saw it return, so it may or may not
 * have landed. Said the same way by the engine (a read-back that cannot show the effect, a cancel that
 * killed the command) and by an agent ending a run it cannot resume: which command, when, and what to check.
 */
import type { RunStep } from '../runbook/model.js';
import type { AttemptRecord } from './events.js';
import { attemptVars, renderOrSource, type Vars } from './scope.js';

type Sent = Pick<AttemptRecord, 'command' | 'startedAt' | 'attemptId'>;

/** "`<the command's last line>` was sent at <time> (attempt <id>)". */
export function sentPhrase(attempt: Sent): string {
  return `\`${attempt.command.split('\n').at(-1) ?? attempt.command}\` was sent at ${attempt.startedAt} (attempt ${attempt.attemptId})`;
}

/**
 * The step's `verify.check_by_hand` when nothing was read back: the output names are empty, and a template
 * that needs more than is known shows as written (its names are the values in the command).
 */
export function checkByHandUnread(step: RunStep | undefined, scope: Vars, attempt: Sent): string {
  const check = step?.verify;
  if (check === undefined) return 'read the state of what the command acts on before anything else';
  return renderOrSource(check.checkByHand, {
    ...scope,
    stdout: '',
    stderr: '',
    exit_code: null,
    known_error: null,
    out: null,
    attempt: attemptVars({ ...attempt, approvalId: '' }),
  });
}

/** The whole sentence, for a command whose outcome nobody saw and nobody could read back. */
export function unknownOutcome(attempt: Sent, why: string, checkByHand: string): string {
  return `OUTCOME UNKNOWN: ${sentPhrase(attempt)} and ${why}. It is NOT sent again. Check by hand: ${checkByHand}`;
}
