/** How every front writes durations and step outcomes for people (terminal, Slack, the postmortem). */
import type { StepStatus } from '../engine/events.js';
import type { Refusal } from '../service/run-service.js';

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

/**
 * A run's duration, from its request to its end, with the time it spent waiting for people apart:
 * `1m 27s, 1m 11s of it waiting for approval`.
 */
export function formatRunDuration(durationMs: number, waitingMs?: number): string {
  const total = formatDuration(durationMs);
  return waitingMs !== undefined && waitingMs > 0
    ? `${total}, ${formatDuration(Math.min(waitingMs, durationMs))} of it waiting for approval`
    : total;
}

/** A loop's item as a person knows it (its runbook `label:`), then its ids; the ids alone without one. */
export function itemText(iteration: { readonly label: string; readonly name?: string }): string {
  return iteration.name === undefined ? iteration.label : `${iteration.name} [${iteration.label}]`;
}

/** A step's outcome in one word; the ones that need a look are in capitals. */
export const STEP_LABEL: Readonly<Record<StepStatus, string>> = {
  ok: 'ok',
  failed: 'FAILED',
  skipped: 'skipped',
  denied: 'DENIED',
  cancelled: 'CANCELLED',
  interrupted: 'INTERRUPTED',
  unobservable: 'NOT OBSERVABLE',
};

/** Beyond this many, a refusal lists a few approvers and counts the rest: it must stay readable. */
const MAX_NAMED = 5;

/**
 * Why a decision was refused, addressed to the person who tried. `name` writes an approver's id for the
 * reader (a Slack mention in Slack; the id itself in the terminal and the timeline).
 */
export function describeRefusal(refusal: Refusal, name: (id: string) => string = (id) => id): string {
  switch (refusal.kind) {
    case 'no_approvers':
      return 'nobody is in CAPI_APPROVERS, so nobody can approve this step; ask the bot admin to set CAPI_APPROVERS';
    case 'not_an_approver': {
      const named = refusal.approvers.slice(0, MAX_NAMED).map(name).join(', ');
      const more = refusal.approvers.length - MAX_NAMED;
      return `you are not in CAPI_APPROVERS; ask one of ${named}${more > 0 ? ` (or ${more} more)` : ''}`;
    }
    case 'own_run':
      return 'you asked for this run; another approver must decide (CAPI_ALLOW_SELF_APPROVAL is off)';
    case 'own_run_quorum':
      return `you asked for this run; this step needs ${refusal.quorum} approvers other than you`;
  }
}

/**
 * Said to the person whose cancel or decision Redis could not confirm durable: it is recorded, and it
 * holds unless Redis fails in the next moments, in which case it may be gone and has to be made again.
 */
export function unconfirmedNotice(what: 'cancel' | 'approval' | 'denial', why: string): string {
  const again = what === 'cancel' ? 'cancel again' : 'decide again';
  return `Your ${what} is recorded, but Redis could not confirm it is safe on disk or on a replica (${why}): if Redis fails in the next moments it may be lost. Check the run's status and ${again} if it does not show.`;
}
