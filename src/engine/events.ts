/**
 * What the engine tells the world. Fronts (terminal, Slack thread, Redis timeline) render these;
 * the engine knows nothing of them. Every string here has already been redacted.
 */

import type { AttemptOnRecordError, JumphostAheadError } from '../errors.js';

/** How a step ended: the one list, which the stored schema, the run record and the fronts derive from. */
export const STEP_STATUSES = [
  'ok',
  'failed',
  'skipped',
  'denied',
  'cancelled',
  'interrupted',
  /** It calls a tool missing from the jumphost's PATH (or reads only what such a step would have found). */
  'unobservable',
] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];
/** How a run ended: the one list; these are also the run record's final statuses. */
export const RUN_STATUSES = ['succeeded', 'failed', 'denied', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export interface StepRef {
  /** Top-level step id, or `loop-id/step-id` inside a for_each. */
  readonly stepId: string;
  /** 1-based position among the runbook's top-level steps. */
  readonly index: number;
  readonly total: number;
  /**
   * Set inside a for_each: which item (1-based) of how many, for people; `key` is the item's identity (see
   * slot.ts), what its attempt and approval are keyed by. Events stored before keys existed lack it.
   */
  readonly iteration?: {
    readonly n: number;
    readonly of: number;
    readonly label: string;
    /** What a person calls the item (the runbook's `label:`): fronts show it before the ids in `label`. */
    readonly name?: string;
    readonly key?: string;
  };
}

export interface ApprovalRequest {
  readonly runId: string;
  readonly runbook: string;
  readonly step: StepRef;
  readonly title: string;
  readonly summary: string;
  /** The exact commands that will run, values filled in, scope named. */
  readonly commands: readonly string[];
  readonly targets: readonly string[];
  readonly evidence: readonly string[];
  readonly requestedBy: string;
  /** Distinct approvers needed, when more than one (the runbook's, raised by the site profile). */
  readonly quorum?: number;
  /**
   * sha256 over the runbook's content, the step, the item's identity, the exact command after binding, the bound
   * values and the targets: what an approval of this request authorizes, and nothing else.
   */
  readonly digest: string;
}

export type ApprovalDecision =
  | {
      readonly approved: true;
      readonly by: string;
      readonly at: string;
      /** Why, in the approver's words (untrusted text, length-limited where it is taken). */
      readonly note?: string;
      /** Every approver, in the order they approved, when the step needed more than one. */
      readonly approvers?: readonly string[];
    }
  | {
      readonly approved: false;
      readonly by: string;
      readonly at: string;
      readonly reason: 'denied' | 'expired';
      readonly note?: string;
    };

export type RunEvent =
  | {
      readonly type: 'run.started';
      readonly runId: string;
      readonly runbook: string;
      readonly summary: string;
      readonly site: string;
      readonly params: Readonly<Record<string, string>>;
      readonly requestedBy: string;
      /** ISO time the run was asked for: what its duration counts from. */
      readonly requestedAt?: string;
      readonly steps: readonly {
        readonly id: string;
        readonly title: string;
        readonly destructive: boolean;
      }[];
    }
  | {
      readonly type: 'run.resumed';
      /** Why the run was picked up again: an approval was decided, or an agent restarted it. */
      readonly reason: string;
      readonly atStep: string;
    }
  | {
      readonly type: 'preflight';
      readonly home: string;
      readonly tools: readonly string[];
      /** Tools the runbook's steps call that are not on the jumphost's PATH: their steps are not observable. */
      readonly missing?: readonly string[];
    }
  | (StepRef & {
      readonly type: 'step.started';
      readonly kind: 'run' | 'poll' | 'for_each' | 'report';
      readonly title: string;
      readonly destructive: boolean;
      /** Its output is data (`parse: json|yaml|lines`): what it means is in its summary, not in the raw text. */
      readonly parsed?: boolean;
    })
  | (StepRef & { readonly type: 'step.output'; readonly stream: 'stdout' | 'stderr'; readonly line: string })
  | (StepRef & {
      readonly type: 'poll.attempt';
      readonly attempt: number;
      readonly of: number;
      readonly summary: string;
    })
  | (StepRef & { readonly type: 'decision'; readonly message: string })
  | (StepRef & { readonly type: 'guard.skipped'; readonly message: string })
  | (StepRef & {
      readonly type: 'approval.requested';
      readonly approvalId: string;
      readonly request: ApprovalRequest;
    })
  | (StepRef & {
      readonly type: 'approval.decided';
      readonly approvalId: string;
      readonly decision: ApprovalDecision;
    })
  /**
   * The agent refused a stored decision (no valid signature, not this action, a decider its own policy does
   * not allow, too few distinct approvers): nothing ran, and the run stops.
   */
  | (StepRef & {
      readonly type: 'approval.rejected';
      readonly approvalId: string;
      readonly by: string;
      readonly reason: string;
    })
  /** A request nobody may decide any more: the action changed, or its approval went stale before use. */
  | (StepRef & {
      readonly type: 'approval.superseded';
      readonly approvalId: string;
      readonly supersededBy: string;
      readonly why: 'changed' | 'stale';
    })
  /** Recorded durably right before a destructive command is sent; it is never sent again. */
  | (StepRef & {
      readonly type: 'attempt.started';
      readonly attemptId: string;
      readonly approvalId: string;
      readonly command: string;
      readonly at: string;
    })
  /**
   * A resumed run found an attempt on record whose outcome it does not know, and read back the cloud:
   * `tookEffect` false stops the run as "outcome unknown", with what was sent, when, and what to check.
   */
  | (StepRef & {
      readonly type: 'attempt.verified';
      readonly attemptId: string;
      readonly tookEffect: boolean;
      readonly message: string;
    })
  /** One approval of a step that needs several: `count` of `of` distinct approvers so far. */
  | {
      readonly type: 'approval.voted';
      readonly approvalId: string;
      readonly by: string;
      readonly count: number;
      readonly of: number;
      readonly note?: string;
    }
  /** A front refused someone's decision (not an approver, or the requester); nothing changed. */
  | {
      readonly type: 'approval.refused';
      readonly approvalId: string;
      readonly by: string;
      readonly reason: string;
    }
  /**
   * Someone asked for this same read-only run while it went (a person, an alert group) and joined it instead
   * of starting another: written by the application service, not the engine.
   */
  | {
      readonly type: 'run.joined';
      /** A Slack user id, or `alertmanager`. */
      readonly by: string;
      /** Where it was asked from when not Slack (`terminal as alice`, `alertmanager`). */
      readonly via?: string;
      /** What asked, for automation: the alert group (its name and labels). */
      readonly note?: string;
    }
  | (StepRef & {
      readonly type: 'step.finished';
      readonly status: StepStatus;
      readonly exitCode: number | null;
      readonly signal: string | null;
      readonly durationMs: number;
      readonly message?: string;
      /** What the step found, rendered from its runbook `summary:` (e.g. "12 controller pods Running"). */
      readonly summary?: string;
    })
  | {
      readonly type: 'run.finished';
      readonly status: RunStatus;
      readonly message: string;
      /** From the request to the end, every resume included. */
      readonly durationMs: number;
      /** The part of durationMs spent waiting for people to decide approvals. */
      readonly waitingMs?: number;
      readonly failedStep?: string;
    };

export type EventSink = (event: RunEvent) => void | Promise<void>;

export interface OpenedApproval {
  readonly approvalId: string;
  /** The request this one replaced (its action changed, or its approval went stale), and why. */
  readonly superseded?: { readonly approvalId: string; readonly why: 'changed' | 'stale' };
}

/**
 * Where the engine asks a human before every destructive step. `open` records the request, or finds the
 * one already recorded for this exact action (a resumed run); `decision` answers for it, or throws
 * ApprovalPending when the answer will come from another process.
 */
export interface ApprovalPort {
  open(request: ApprovalRequest): Promise<OpenedApproval>;
  decision(approvalId: string, request: ApprovalRequest, signal: AbortSignal): Promise<ApprovalDecision>;
}

/** What the engine records about a destructive attempt. */
export interface AttemptRecord {
  readonly attemptId: string;
  readonly approvalId: string;
  readonly command: string;
  /** ISO time the attempt was recorded, right before the command was sent. */
  readonly startedAt: string;
  /** Absent while the command is in flight, and for ever if its agent died before it returned. */
  readonly outcome?: {
    readonly exitCode: number | null;
    readonly signal: string | null;
    readonly timedOut: boolean;
  };
}

export type BeginAttempt =
  /** `slot` names the step in the journal; the jumphost's attempt marker is named by it too. */
  | { readonly outcome: 'recorded'; readonly attempt: AttemptRecord; readonly slot: string }
  | { readonly outcome: 'exists'; readonly attempt: AttemptRecord }
  /** The approval does not authorize this attempt; `stale` and `superseded` mean: ask again. */
  | { readonly outcome: 'refused'; readonly why: string };

/**
 * The attempt journal: a destructive command is sent only after `begin` recorded it (and consumed its
 * approval), and a step with an attempt on record is never sent again.
 */
export interface AttemptPort {
  find(step: StepRef): Promise<AttemptRecord | undefined>;
  begin(
    step: StepRef,
    approval: { readonly approvalId: string; readonly digest: string },
    command: string,
  ): Promise<BeginAttempt>;
  finish(step: StepRef, outcome: NonNullable<AttemptRecord['outcome']>): Promise<void>;
  /**
   * An attempt whose outcome was unknown was read back and took effect: it is settled, and a run that ends
   * later does not leave its site held for it.
   */
  verified(step: StepRef): Promise<void>;
  /**
   * The jumphost refused the send `begin` just recorded, and nothing of it ran there: an earlier send's
   * marker is on record (the attempt is then verified, never sent), or it has seen a newer owner's token
   * while Redis names this one (the attempt is closed as not sent, and the run ends).
   */
  refused(step: StepRef, why: AttemptOnRecordError | JumphostAheadError): Promise<void>;
}

/**
 * Thrown by an ApprovalPort that cannot answer now (the decision will come from another process):
 * the engine then stops where it is and reports the run as suspended, holding no process open.
 */
export class ApprovalPending extends Error {
  constructor(
    readonly approvalId: string,
    readonly expiresAt: string,
  ) {
    super(`approval ${approvalId} is pending until ${expiresAt}`);
    this.name = 'ApprovalPending';
  }
}

/**
 * Thrown by an ApprovalPort whose stored decision fails the agent's own judgement: the engine shows why and
 * stops the run before anything destructive is sent.
 */
export class ApprovalRejected extends Error {
  constructor(
    readonly approvalId: string,
    /** Who the stored decision says decided. */
    readonly by: string,
    readonly reason: string,
  ) {
    super(`the decision on approval ${approvalId} was refused: ${reason}`);
    this.name = 'ApprovalRejected';
  }
}
