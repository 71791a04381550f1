/**
 * Engine events and timeline entries for the tests of the timeline, the postmortem, the run view and the
 * Slack messages: one set of builders, so those tests speak of the same runs.
 */
import type { ApprovalRequest, RunEvent, StepRef, StepStatus } from '../../src/engine/events.js';
import type { TimelineEntry } from '../../src/runs/timeline.js';

export type RunStarted = Extract<RunEvent, { type: 'run.started' }>;
type StepKind = Extract<RunEvent, { type: 'step.started' }>['kind'];

export const T0 = Date.parse('2024-05-01T10:00:00.000Z');

/** ISO time `s` seconds after T0. */
export const atSecond = (s: number): string => new Date(T0 + s * 1000).toISOString();

/** The entry of `event` stored `s` seconds after T0, with a stream id the way Redis makes them. */
export function entryAt(event: RunEvent, s: number): TimelineEntry {
  return { id: `${T0 + s * 1000}-0`, at: atSecond(s), event };
}

/** One entry per second from T0. */
export function entries(events: readonly RunEvent[]): TimelineEntry[] {
  return events.map((event, i) => entryAt(event, i));
}

export const ref = (stepId: string, index: number, total = 4, iteration?: StepRef['iteration']): StepRef => ({
  stepId,
  index,
  total,
  ...(iteration ? { iteration } : {}),
});

/** `recover` on site-a, four steps: the run the view and message tests follow. */
export const recoverStarted: RunStarted = {
  type: 'run.started',
  runId: 'r-recover-1',
  runbook: 'recover',
  summary: 'Bring a cluster back from CREATE_FAILED',
  site: 'site-a',
  params: { cluster: 'prod-k8s' },
  requestedBy: 'U0ALICE01',
  steps: [
    { id: 'inspect', title: 'Inspect the cluster', destructive: false },
    { id: 'wait-ready', title: 'Wait for the control plane', destructive: false },
    { id: 'delete-lbs', title: 'Delete stale load balancers', destructive: true },
    { id: 'report', title: 'Report', destructive: false },
  ],
};

export function runStarted(over: Partial<Omit<RunStarted, 'type'>> = {}): RunStarted {
  return { ...recoverStarted, ...over };
}

export const stepStarted = (
  r: StepRef,
  title: string,
  kind: StepKind = 'run',
  destructive = false,
): RunEvent => ({ ...r, type: 'step.started', kind, title, destructive });

export const stepOutput = (r: StepRef, line: string, stream: 'stdout' | 'stderr' = 'stdout'): RunEvent => ({
  ...r,
  type: 'step.output',
  stream,
  line,
});

export const stepFinished = (
  r: StepRef,
  status: StepStatus,
  durationMs: number,
  exitCode: number | null = status === 'ok' ? 0 : null,
  message?: string,
): RunEvent => ({
  ...r,
  type: 'step.finished',
  status,
  exitCode,
  signal: null,
  durationMs,
  ...(message !== undefined ? { message } : {}),
});

/** The request to delete load balancer lb-1 at `step` of the recover run. */
export const approvalRequest = (step: StepRef, over: Partial<ApprovalRequest> = {}): ApprovalRequest => ({
  runId: recoverStarted.runId,
  runbook: recoverStarted.runbook,
  step,
  title: 'Delete load balancer lb-1',
  summary: 'Delete the stale load balancer',
  commands: ['openstack loadbalancer delete --cascade lb-1'],
  targets: ['lb-1'],
  evidence: ['provisioning_status=ERROR'],
  requestedBy: recoverStarted.requestedBy,
  digest: 'd1gest',
  ...over,
});
