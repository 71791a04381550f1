/**
 * What a run of the interpreter is given and what it ends with: the engine's public face, free of how
 * the interpreter works inside.
 */
import type { SiteProfile } from '../config/site.js';
import type { Runbook } from '../runbook/model.js';
import type { RemoteExecutor } from '../ssh/types.js';
import type { ApprovalPort, AttemptPort, EventSink, RunStatus } from './events.js';

/**
 * Where a run is, in a form that survives the process (JSON only): the step about to run, the
 * frozen item list of a for_each in progress, and every value captured so far. A run resumed from
 * a checkpoint re-runs that step from its start; a destructive step first looks in the attempt
 * journal, and an attempt on record is verified, never sent again.
 */
export interface Checkpoint {
  readonly top: number;
  readonly loop?: { readonly items: readonly unknown[]; readonly n: number; readonly inner: number };
  readonly captured: Readonly<Record<string, unknown>>;
}

export interface RunOptions {
  readonly runId: string;
  readonly runbook: Runbook;
  /** Already validated with validateParams. */
  readonly params: Readonly<Record<string, string>>;
  readonly site: SiteProfile;
  readonly requestedBy: string;
  readonly executor: RemoteExecutor;
  readonly approvals: ApprovalPort;
  /** The journal every destructive send is recorded in first. */
  readonly attempts: AttemptPort;
  readonly emit: EventSink;
  /** Aborting cancels the run and kills the running remote command; a string reason names who. */
  readonly signal?: AbortSignal;
  /** Continue a run from where a previous process left it. */
  readonly resume?: { readonly checkpoint: Checkpoint; readonly reason: string };
  /** Called before every step starts, with the position to resume from if the process dies. */
  readonly onCheckpoint?: (checkpoint: Checkpoint) => void | Promise<void>;
  /** Asked before every step: true ends the run as interrupted there, to be resumed elsewhere. */
  readonly pauseRequested?: () => boolean;
  /**
   * ISO time the run was asked for (the run record's createdAt): its duration runs from here to its end,
   * across every resume. Default: when this call started.
   */
  readonly requestedAt?: string;
  /**
   * How long the run has waited for people (approvals), over its whole life, every resume included; asked
   * when it ends. Default: what this call measured while waiting for decisions.
   */
  readonly waitingMs?: () => Promise<number>;
}

export interface FinishedRun {
  readonly status: RunStatus;
  readonly message: string;
  readonly failedStep?: string;
}

/** The run stopped at an approval nobody has decided yet; resume it from `checkpoint` later. */
export interface SuspendedRun {
  readonly status: 'suspended';
  readonly approvalId: string;
  readonly expiresAt: string;
  readonly checkpoint: Checkpoint;
}

/** The process running it is going away; another one resumes it from `checkpoint`. */
export interface InterruptedRun {
  readonly status: 'interrupted';
  readonly checkpoint: Checkpoint;
}

/**
 * This process no longer owns the run (another agent took it over, or the job lock was lost): it stopped
 * at once and wrote nothing more. The new owner finishes the run.
 */
export interface FencedRun {
  readonly status: 'fenced';
  readonly why: string;
}

export type RunOutcome = FinishedRun | SuspendedRun | InterruptedRun | FencedRun;

/**
 * The abort reason an agent uses when it shuts down: unlike a cancel, the run is not over; the step
 * it was on (its remote command killed) runs again when the run resumes elsewhere.
 */
export class RunInterrupted extends Error {
  constructor(readonly why: string) {
    super(`interrupted: ${why}; the step runs again when the run resumes`);
    this.name = 'RunInterrupted';
  }
}
