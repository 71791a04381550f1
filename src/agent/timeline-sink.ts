import type { EventSink, RunEvent } from '../engine/events.js';
import type { Fence } from '../runs/fence.js';
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
    case 'approval.superseded':
      return `${e.type}:${e.approvalId}`;
    case 'attempt.started':
    case 'attempt.verified':
      return `${e.type}:${e.attemptId}`;
    default:
      return undefined;
  }
}

/**
 * Engine -> Redis: every event appended in order (one write at a time) under the owner's fence, the
 * record kept current. A stale owner's first write fails (RunFencedError) and so does every later one.
 */
export function timelineSink(
  fence: Fence,
  stores: {
    timeline: RunTimeline;
    registry: RunRegistry;
    /** Runs before run.finished is appended: whoever sees the end also finds the site free. */
    onFinished: (event: Extract<RunEvent, { type: 'run.finished' }>) => Promise<void>;
    /** Sees each event stored for the first time (not a resumed run's repeat): metrics and audit. */
    onStored?: (event: RunEvent) => void;
  },
): EventSink {
  const { timeline, registry } = stores;
  const runId = fence.runId;
  let chain: Promise<void> = Promise.resolve();
  return (event) => {
    chain = chain.then(async () => {
      if (event.type === 'run.finished') await stores.onFinished(event);
      const id = await timeline.append(runId, event, dedupeKey(event), fence);
      if (id !== null) stores.onStored?.(event);
      if (event.type === 'step.started') await registry.update(runId, { currentStep: event.stepId }, fence);
    });
    return chain;
  };
}
