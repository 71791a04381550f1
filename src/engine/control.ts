/**
 * The interpreter's control flow: how a run stops early (Stop), parks (Suspend), pauses for a hand-over
 * (Pause), and what the abort reason says. Internal to the engine.
 */
import { RunFencedError } from '../errors.js';
import type { RunStatus, StepStatus } from './events.js';
import { RunInterrupted } from './outcome.js';

/** Ends the run early; thrown from deep inside a step and caught once at the top. */
export class Stop extends Error {
  constructor(
    readonly status: Exclude<RunStatus, 'succeeded'> | 'finished',
    message: string,
    readonly stepId?: string,
  ) {
    super(message);
  }
}

/** The agent asked the run to stop at this checkpoint; caught once at the top. */
export class Pause extends Error {}

/** The run stops at an undecided approval; caught once at the top, never reported as a failure. */
export class Suspend extends Error {
  constructor(
    readonly approvalId: string,
    readonly expiresAt: string,
  ) {
    super(`suspended at approval ${approvalId}`);
  }
}

export function cancelMessage(signal: AbortSignal): string {
  if (signal.reason instanceof RunInterrupted) return signal.reason.message;
  return typeof signal.reason === 'string' ? `cancelled by ${signal.reason}` : 'cancelled by the operator';
}

export function stepStatusOf(stop: Stop, signal: AbortSignal): StepStatus {
  if (signal.reason instanceof RunInterrupted) return 'interrupted';
  if (stop.status === 'denied') return 'denied';
  if (stop.status === 'cancelled') return 'cancelled';
  return 'failed';
}

/** The fencing error that stopped this run, from a failed write or from the abort the agent sent. */
export function fencedBy(err: unknown, signal: AbortSignal): RunFencedError | undefined {
  if (err instanceof RunFencedError) return err;
  return signal.reason instanceof RunFencedError ? signal.reason : undefined;
}
