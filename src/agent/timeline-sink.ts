import type { EventSink, RunEvent } from '../engine/events.js';
import { type ApprovalStore, approvalId } from '../runs/approvals.js';
import type { RunRegistry } from '../runs/registry.js';
import type { RunTimeline } from '../runs/timeline.js';

/**
 * Events that a resumed run emits again for the same moment: stored once, so a front following the
 * stream never shows the same approval twice. Everything else is appended as it happens.
 */
function dedupeKey(e: RunEvent): string | undefined {
  switch (e.type) {
    case 'run.started':
    case 'run.finished':
      return e.type;
    case 'approval.requested':
    case 'approval.decided':
      return `${e.type}:${e.stepId}:${e.iteration?.n ?? 0}`;
    default:
      return undefined;
  }
}

/**
 * Engine -> Redis: every event appended in order (one write at a time), the record kept current.
 * An approval request is stored before its event is appended, so a front that sees the event can
 * always find the request to decide (creating it is idempotent; the approval port does it again).
 */
export function timelineSink(
  runId: string,
  stores: {
    timeline: RunTimeline;
    registry: RunRegistry;
    approvals: ApprovalStore;
    approvalTimeoutMs: number;
    /** Runs before run.finished is appended: whoever sees the end also finds the site free. */
    onFinished: (event: Extract<RunEvent, { type: 'run.finished' }>) => Promise<void>;
  },
): EventSink {
  const { timeline, registry, approvals } = stores;
  let chain: Promise<void> = Promise.resolve();
  return (event) => {
    chain = chain.then(async () => {
      if (event.type === 'run.finished') await stores.onFinished(event);
      if (event.type === 'approval.requested') {
        const id = approvalId(runId, event.stepId, event.iteration?.n);
        await approvals.create(id, event.request, stores.approvalTimeoutMs);
      }
      await timeline.append(runId, event, dedupeKey(event));
      if (event.type === 'step.started') await registry.update(runId, { currentStep: event.stepId });
    });
    return chain;
  };
}
