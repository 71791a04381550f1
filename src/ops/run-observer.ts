import type { RunEvent } from '../engine/events.js';
import type { AuditLog } from './audit.js';
import type { ApprovalOutcome, Metrics } from './metrics.js';

export interface RunObserverOptions {
  readonly runId: string;
  readonly runbook: string;
  readonly metrics?: Metrics;
  readonly audit: AuditLog;
  /** When the approval was requested (epoch ms), for the wait histogram; undefined when unknown. */
  readonly requestedAt: (approvalId: string) => Promise<number | undefined>;
  readonly onError: (err: unknown) => void;
}

/**
 * Turns the events a run stores into metrics and audit lines. It is fed only events that were stored for the
 * first time (a resumed run re-emitting an approval is deduplicated by the timeline), so a run counts once
 * however many agents it passed through. Decisions, refusals and cancels are audited where a human makes
 * them (RunService), with who and through which front; only the expiry, which no human makes, is here.
 */
export function runObserver(opts: RunObserverOptions): (event: RunEvent) => void {
  const { runbook, metrics, audit, runId } = opts;
  const approval = (outcome: ApprovalOutcome) => metrics?.approvals.inc({ runbook, outcome });
  return (event) => {
    switch (event.type) {
      case 'run.started':
        metrics?.runsStarted.inc({ runbook });
        break;
      case 'run.finished':
        metrics?.runsFinished.inc({ runbook, status: event.status });
        audit.record({ event: 'run.finished', runId, runbook, status: event.status, message: event.message });
        break;
      case 'step.finished':
        metrics?.stepDuration.observe(
          { runbook, step: event.stepId, status: event.status },
          event.durationMs / 1000,
        );
        break;
      case 'approval.requested':
        audit.record({
          event: 'approval.requested',
          runId,
          approvalId: event.approvalId,
          step: event.stepId,
          digest: event.request.digest,
          targets: event.request.targets,
          commands: event.request.commands,
          requestedBy: event.request.requestedBy,
        });
        break;
      case 'approval.decided': {
        const d = event.decision;
        const outcome: ApprovalOutcome = d.approved ? 'approved' : d.reason;
        approval(outcome);
        if (outcome === 'expired')
          audit.record({ event: 'approval.expired', runId, approvalId: event.approvalId });
        opts.requestedAt(event.approvalId).then((at) => {
          if (at !== undefined) {
            metrics?.approvalWait.observe({ runbook, outcome }, Math.max(0, Date.parse(d.at) - at) / 1000);
          }
        }, opts.onError);
        break;
      }
      case 'approval.superseded':
        approval('superseded');
        break;
      case 'approval.rejected':
        // No human made this one: the agent refused what the store held. A SIEM should hear of it.
        approval('rejected');
        audit.record({
          event: 'approval.rejected',
          runId,
          approvalId: event.approvalId,
          step: event.stepId,
          by: event.by,
          reason: event.reason,
        });
        break;
      case 'attempt.started':
        metrics?.destructiveCommands.inc({ runbook, step: event.stepId });
        break;
      default:
        break;
    }
  };
}
