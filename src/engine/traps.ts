import { CapiError, ErrorCode } from '../errors.js';
import type { Command, KnownError } from '../runbook/model.js';
import type { ExecResult } from '../ssh/types.js';

/**
 * The remote-execution traps of appendix A, applied to every command the engine runs:
 * - L1: a count of zero is an answer, not a failure (`ok_exit: [0, 1]` for `grep -c`);
 * - a known remote error (scopes.yaml `known_errors`, e.g. juju's stale macaroon answering
 *   "cannot get discharge ... EOF") stops the step with its fix and is never retried;
 * (the nginx sed trap, a `sed -i` that matched nothing exiting 0, is the step's `verify` read-back in
 * the engine).
 */

/** An exit code the runbook declared an answer: 0, or one listed in `ok_exit`. */
export function exitAccepted(command: Command, code: number | null): boolean {
  return code !== null && command.okExit.includes(code);
}

/** The first known error whose signature is in the command's stderr, then its stdout. */
export function knownErrorIn(command: Command, result: ExecResult): KnownError | undefined {
  return command.knownErrors.find((k) => k.match.test(result.stderr) || k.match.test(result.stdout));
}

/** What expressions see as `known_error`: the id of the known error in the output, or null. */
export function knownErrorId(command: Command, result: ExecResult): string | null {
  return knownErrorIn(command, result)?.id ?? null;
}

/** Thrown out of the engine's exec: the step fails with the operator's fix, whatever the exit code. */
export class KnownRemoteError extends CapiError {
  constructor(readonly knownError: KnownError) {
    super(ErrorCode.RemoteKnownError, `${knownError.message} (${knownError.id}; ${knownError.source})`);
  }
}

/** Stops the step when the output carries a known error, unless the command only observes them. */
export function stopOnKnownError(command: Command, result: ExecResult): void {
  if (command.onKnownError !== 'stop') return;
  const known = knownErrorIn(command, result);
  if (known) throw new KnownRemoteError(known);
}
