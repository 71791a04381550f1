/**
 * What the engine tells the world. Fronts (terminal, Slack thread, Redis timeline) render these;
 * the engine knows nothing of them. Every string here has already been redacted.
 */

export type StepStatus = 'ok' | 'failed' | 'skipped' | 'denied' | 'cancelled' | 'interrupted';
export type RunStatus = 'succeeded' | 'failed' | 'denied' | 'cancelled';

export interface StepRef {
  /** Top-level step id, or `loop-id/step-id` inside a for_each. */
  readonly stepId: string;
  /** 1-based position among the runbook's top-level steps. */
  readonly index: number;
  readonly total: number;
  /** Set inside a for_each: which item (1-based) of how many. */
  readonly iteration?: { readonly n: number; readonly of: number; readonly label: string };
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
}

export type ApprovalDecision =
  | { readonly approved: true; readonly by: string; readonly at: string }
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
  | { readonly type: 'preflight'; readonly home: string; readonly tools: readonly string[] }
  | (StepRef & {
      readonly type: 'step.started';
      readonly kind: 'run' | 'poll' | 'for_each' | 'report';
      readonly title: string;
      readonly destructive: boolean;
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
  | (StepRef & { readonly type: 'approval.requested'; readonly request: ApprovalRequest })
  | (StepRef & { readonly type: 'approval.decided'; readonly decision: ApprovalDecision })
  /** A front refused someone's decision (not an approver, or the requester); nothing changed. */
  | {
      readonly type: 'approval.refused';
      readonly approvalId: string;
      readonly by: string;
      readonly reason: string;
    }
  | (StepRef & {
      readonly type: 'step.finished';
      readonly status: StepStatus;
      readonly exitCode: number | null;
      readonly signal: string | null;
      readonly durationMs: number;
      readonly message?: string;
    })
  | {
      readonly type: 'run.finished';
      readonly status: RunStatus;
      readonly message: string;
      readonly durationMs: number;
      readonly failedStep?: string;
    };

export type EventSink = (event: RunEvent) => void | Promise<void>;

/** Where the engine asks a human before every destructive step. */
export interface ApprovalPort {
  request(request: ApprovalRequest, signal: AbortSignal): Promise<ApprovalDecision>;
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
