/**
 * The audit trail: one JSON line with `audit: true` for every security-relevant event, on stdout with the
 * other logs and, with AUDIT_LOG_FILE, appended to that file too. This is what to ship to a SIEM: who asked
 * for what where, who approved which exact action (its digest), what was sent and how it ended.
 *
 * Lines are written at level info whatever LOG_LEVEL says (an audit trail that a log level can silence is
 * not one), through the same redaction as every other log line.
 */
import { pino } from 'pino';
import { createLogger } from '../log.js';

export type AuditEvent =
  | {
      readonly event: 'run.requested';
      readonly runId: string;
      readonly runbook: string;
      readonly args: readonly string[];
      readonly site: string;
      readonly requestedBy: string;
      /** Where it was asked from when not Slack (`terminal as alice`). */
      readonly via?: string;
      readonly channel?: string;
    }
  /** Someone asked for a read-only run identical to one queued or running, and joined it. */
  | {
      readonly event: 'run.joined';
      readonly runId: string;
      readonly runbook: string;
      readonly site: string;
      readonly requestedBy: string;
      readonly via?: string;
      /** What asked, for automation: the alert group. */
      readonly note?: string;
    }
  | {
      readonly event: 'run.refused';
      readonly runbook: string;
      readonly site: string;
      readonly requestedBy: string;
      readonly reason: string;
    }
  | {
      readonly event: 'approval.requested';
      readonly runId: string;
      readonly approvalId: string;
      readonly step: string;
      readonly digest: string;
      readonly targets: readonly string[];
      readonly commands: readonly string[];
      readonly requestedBy: string;
    }
  | {
      readonly event: 'approval.decided';
      readonly runId: string;
      readonly approvalId: string;
      readonly digest: string;
      readonly decision: 'approved' | 'denied';
      readonly by: string;
      readonly via: string;
      /** The user group that made `by` an approver, when their own id is not in CAPI_APPROVERS. */
      readonly group?: string;
      /** The decider's reason, when one was given (untrusted text, redacted like every audit line). */
      readonly reason?: string;
      /** Every approver, in order, when the step needed several. */
      readonly approvers?: readonly string[];
    }
  | {
      /** One approval of a step that needs several; approval.decided follows when the last one arrives. */
      readonly event: 'approval.voted';
      readonly runId: string;
      readonly approvalId: string;
      readonly digest: string;
      readonly by: string;
      readonly via: string;
      /** The user group that made `by` an approver, when their own id is not in CAPI_APPROVERS. */
      readonly group?: string;
      readonly count: number;
      readonly quorum: number;
      readonly reason?: string;
    }
  | { readonly event: 'approval.expired'; readonly runId: string; readonly approvalId: string }
  | {
      /** The agent refused a stored decision (unsigned, forged, another action, outside its policy). */
      readonly event: 'approval.rejected';
      readonly runId: string;
      readonly approvalId: string;
      readonly step: string;
      readonly by: string;
      readonly reason: string;
    }
  | {
      readonly event: 'approval.refused';
      readonly runId: string;
      readonly approvalId: string;
      readonly by: string;
      readonly reason: string;
    }
  | {
      readonly event: 'destructive.sent';
      readonly runId: string;
      readonly step: string;
      readonly attemptId: string;
      readonly approvalId: string;
      readonly digest: string;
      readonly command: string;
    }
  | {
      readonly event: 'destructive.finished';
      readonly runId: string;
      readonly step: string;
      readonly attemptId: string;
      readonly digest: string;
      readonly exitCode: number | null;
      readonly signal: string | null;
      readonly timedOut: boolean;
    }
  | ({
      readonly event: 'destructive.refused';
      readonly runId: string;
      readonly step: string;
      readonly attemptId?: string;
      readonly digest?: string;
    } & (
      | {
          /** An earlier send's marker is on the jumphost: when it was sent (the marker's time) and what. */
          readonly reason: 'attempt_on_record';
          readonly marker: string;
          readonly sentAt: string;
          readonly sentDigest?: string;
        }
      | {
          /** The jumphost has seen a newer owner's fencing token (jumphostFence) than this agent's (fence). */
          readonly reason: 'jumphost_fence_ahead';
          readonly fence: number;
          readonly jumphostFence: number;
        }
    ))
  | {
      /**
       * A run ended while this destructive command may have landed (nobody saw it return, nothing could read
       * it back): its site stays held until an operator releases it (site.released).
       */
      readonly event: 'destructive.outcome_unknown';
      readonly runId: string;
      readonly site: string;
      readonly step: string;
      readonly attemptId: string;
      readonly command: string;
      readonly message: string;
    }
  | {
      /** An operator released a site held for unresolved attempts, saying why (checked by hand). */
      readonly event: 'site.released';
      readonly site: string;
      readonly by: string;
      readonly via?: string;
      readonly reason: string;
      /** Each run whose hold was released, with its attempt. */
      readonly holds: readonly {
        readonly runId: string;
        readonly attemptId: string;
        readonly command: string;
      }[];
    }
  | {
      readonly event: 'run.cancel_requested';
      readonly runId: string;
      readonly by: string;
      readonly via?: string;
    }
  | {
      readonly event: 'run.finished';
      readonly runId: string;
      readonly runbook: string;
      readonly status: string;
      readonly message: string;
    };

export interface AuditLog {
  record(event: AuditEvent): void;
}

/** For code paths that run without an audit trail (tests of other behaviour, one-shot CLI commands). */
export const NO_AUDIT: AuditLog = { record: () => undefined };

export interface AuditLogOptions {
  /** Where audit lines go besides the file; stdout by default. */
  readonly destination?: pino.DestinationStream;
  /** AUDIT_LOG_FILE: appended to (created with its directory when missing), one line per event. */
  readonly file?: string;
}

export function createAuditLog(opts: AuditLogOptions = {}): AuditLog {
  const main = opts.destination ?? pino.destination({ dest: 1, sync: false });
  // sync: an audit line is on disk (in the page cache) before the action it records goes on.
  const destination =
    opts.file === undefined
      ? main
      : pino.multistream([
          { stream: main },
          { stream: pino.destination({ dest: opts.file, append: true, mkdir: true, sync: true }) },
        ]);
  const logger = createLogger({ level: 'info', name: 'audit', destination }).child({ audit: true });
  return {
    record(event) {
      logger.info(event, `audit: ${event.event}`);
    },
  };
}
