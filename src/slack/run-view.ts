/**
 * The state of one run as a Slack root message shows it, folded from the run's timeline. Pure: the same
 * entries always give the same view, so a front that restarts rebuilds the message from Redis alone.
 */
import { RUN_STATUSES, type RunStatus, type StepRef, type StepStatus } from '../engine/events.js';
import type { TimelineEntry } from '../service/run-service.js';

/** A step not reported finished yet, or how it finished. */
export type StepViewStatus = 'pending' | 'running' | 'waiting_approval' | StepStatus;

export interface StepView {
  readonly id: string;
  title: string;
  destructive: boolean;
  status: StepViewStatus;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  exitCode?: number | null;
  poll?: { attempt: number; of: number; summary: string };
  /** Inside a for_each: which item the loop is on. */
  iteration?: { n: number; of: number; label: string; name?: string };
  /** Inside a for_each: the title of the inner step running now. */
  activity?: string;
  /** The last thing said about the step: a decision, a guard's reason, or why it failed. */
  message?: string;
  /** What the step found, in the runbook's words (its `summary:`): the checklist shows it. */
  summary?: string;
}

export type RunViewStatus = 'running' | 'waiting_approval' | RunStatus;

export interface RunView {
  readonly runId: string;
  readonly runbook: string;
  readonly summary: string;
  readonly site: string;
  readonly requestedBy: string;
  readonly params: Readonly<Record<string, string>>;
  startedAt?: string;
  finishedAt?: string;
  /** From the request to the end (run.finished), every resume included. */
  durationMs?: number;
  /** The part of durationMs spent waiting for approvals (run.finished). */
  waitingMs?: number;
  status: RunViewStatus;
  /** run.finished's message. */
  message?: string;
  failedStep?: string;
  steps: StepView[];
  /** Id of the top-level step running now. */
  currentStep?: string;
  pendingApprovals: number;
  lastEventId?: string;
}

/** Undefined until the timeline holds run.started: without it there is no step list to show. */
export function foldRunView(entries: readonly TimelineEntry[]): RunView | undefined {
  let view: RunView | undefined;
  // Keyed by step and item: a resumed run asks again for the approval it was parked on, which is one request.
  const pending = new Set<string>();

  for (const entry of entries) {
    const e = entry.event;
    if (!view) {
      if (e.type !== 'run.started') continue;
      view = {
        runId: e.runId,
        runbook: e.runbook,
        summary: e.summary,
        site: e.site,
        requestedBy: e.requestedBy,
        params: { ...e.params },
        // The run's time counts from its request (older runs: from when it started).
        startedAt: e.requestedAt ?? entry.at,
        status: 'running',
        steps: e.steps.map((s) => ({
          id: s.id,
          title: s.title,
          destructive: s.destructive,
          status: 'pending',
        })),
        pendingApprovals: 0,
      };
      view.lastEventId = entry.id;
      continue;
    }
    view.lastEventId = entry.id;
    if (isFinal(view.status)) continue;

    switch (e.type) {
      case 'run.started':
      case 'preflight':
      case 'step.output':
        break;
      case 'run.resumed':
        view.status = 'running';
        break;
      case 'step.started': {
        const row = rowFor(view, e);
        if (!row) break;
        view.currentStep = row.id;
        if (isInner(e)) {
          if (row.status !== 'running' && row.status !== 'waiting_approval') restart(row, entry.at);
          row.status = 'running';
          row.activity = e.title;
          if (e.iteration) row.iteration = { ...e.iteration };
          delete row.poll;
          if (e.destructive) row.destructive = true;
        } else {
          // Also a goto back to an earlier step: it runs again from scratch.
          restart(row, entry.at);
          row.status = 'running';
          row.title = e.title;
          row.destructive = row.destructive || e.destructive;
        }
        break;
      }
      case 'poll.attempt': {
        const row = rowFor(view, e);
        if (row) row.poll = { attempt: e.attempt, of: e.of, summary: e.summary };
        break;
      }
      case 'decision':
      case 'guard.skipped': {
        const row = rowFor(view, e);
        if (row) row.message = e.message;
        break;
      }
      case 'approval.requested': {
        pending.add(refKey(e));
        const row = rowFor(view, e);
        if (row) row.status = 'waiting_approval';
        break;
      }
      case 'approval.decided': {
        pending.delete(refKey(e));
        const row = rowFor(view, e);
        // A denial is followed by the step's own step.finished(denied); until then it is still in hand.
        if (row && row.status === 'waiting_approval') row.status = 'running';
        break;
      }
      case 'step.finished': {
        const row = rowFor(view, e);
        if (!row) break;
        pending.delete(refKey(e));
        if (isInner(e)) {
          // An inner step that did not pass ends the loop, which then reports its own step.finished.
          if (e.message !== undefined) row.message = e.message;
          if (row.status === 'waiting_approval') row.status = 'running';
          break;
        }
        row.status = e.status;
        row.finishedAt = entry.at;
        row.durationMs = e.durationMs;
        row.exitCode = e.exitCode;
        if (e.message !== undefined) row.message = e.message;
        if (e.summary !== undefined) row.summary = e.summary;
        delete row.activity;
        if (view.currentStep === row.id) delete view.currentStep;
        break;
      }
      case 'run.finished': {
        view.status = e.status;
        view.finishedAt = entry.at;
        view.durationMs = e.durationMs;
        if (e.waitingMs !== undefined) view.waitingMs = e.waitingMs;
        view.message = e.message;
        if (e.failedStep !== undefined) view.failedStep = e.failedStep;
        delete view.currentStep;
        pending.clear();
        // A step still open when the run ended never reported back (cancelled while parked, agent lost).
        for (const row of view.steps) {
          if (row.status === 'running' || row.status === 'waiting_approval') {
            row.status = e.status === 'cancelled' ? 'cancelled' : 'interrupted';
            row.finishedAt = entry.at;
          }
        }
        break;
      }
    }
    view.pendingApprovals = pending.size;
    if (!isFinal(view.status)) view.status = pending.size > 0 ? 'waiting_approval' : 'running';
  }
  return view;
}

function isFinal(status: RunViewStatus): status is RunStatus {
  return (RUN_STATUSES as readonly string[]).includes(status);
}

/** `loop/inner` ids come from a for_each; a top-level id never holds `/` (runbook ids are `[a-z0-9-]`). */
function isInner(ref: StepRef): boolean {
  return ref.stepId.includes('/');
}

function rowFor(view: RunView, ref: StepRef): StepView | undefined {
  const exact = view.steps.find((s) => s.id === ref.stepId);
  if (exact) return exact;
  const top = ref.stepId.split('/', 1)[0];
  return view.steps.find((s) => s.id === top);
}

function refKey(ref: StepRef): string {
  return `${ref.stepId}#${ref.iteration?.n ?? 0}`;
}

function restart(row: StepView, at: string): void {
  row.startedAt = at;
  delete row.finishedAt;
  delete row.durationMs;
  delete row.exitCode;
  delete row.poll;
  delete row.iteration;
  delete row.activity;
  delete row.message;
  delete row.summary;
}
