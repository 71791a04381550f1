/** How every front writes durations and step outcomes for people (terminal, Slack, the postmortem). */
import type { StepStatus } from '../engine/events.js';

/** `850ms`, `4.2s`, `3m 5s`, `1h 2m 3s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h ${m}m ${s}s` : `${m}m ${s}s`;
}

/** A step's outcome in one word; the ones that need a look are in capitals. */
export const STEP_LABEL: Readonly<Record<StepStatus, string>> = {
  ok: 'ok',
  failed: 'FAILED',
  skipped: 'skipped',
  denied: 'DENIED',
  cancelled: 'CANCELLED',
  interrupted: 'INTERRUPTED',
};
