import { describe, expect, it } from 'vitest';
import type { RunEvent, StepRef } from '../src/engine/events.js';
import { foldRunView } from '../src/slack/run-view.js';
import {
  approvalRequest,
  atSecond,
  entries,
  recoverStarted,
  ref,
  stepFinished,
  stepStarted,
  T0,
} from './support/events.js';

const inspect = ref('inspect', 1);
const wait = ref('wait-ready', 2);
const loop = ref('delete-lbs', 3);
const inner1 = ref('delete-lbs/delete-lb', 3, 4, { n: 1, of: 2, label: 'lb-1' });
const inner2 = ref('delete-lbs/delete-lb', 3, 4, { n: 2, of: 2, label: 'lb-2' });
const report = ref('report', 4);

/** The recover-like run up to the loop: inspect passes, then the poll is on its third attempt. */
const untilPolling: RunEvent[] = [
  recoverStarted,
  { type: 'preflight', home: '/home/ops', tools: ['openstack', 'kubectl'] },
  stepStarted(inspect, 'Inspect prod-k8s'),
  { ...inspect, type: 'step.output', stream: 'stdout', line: 'status: CREATE_FAILED' },
  stepFinished(inspect, 'ok', 2300),
  stepStarted(wait, 'Wait for the control plane', 'poll'),
  { ...wait, type: 'poll.attempt', attempt: 1, of: 30, summary: '0/3 control plane nodes ready' },
  { ...wait, type: 'poll.attempt', attempt: 2, of: 30, summary: '1/3 control plane nodes ready' },
  { ...wait, type: 'poll.attempt', attempt: 3, of: 30, summary: '2/3 control plane nodes ready' },
];

const approved = (r: StepRef): RunEvent => ({
  ...r,
  type: 'approval.decided',
  approvalId: 'approval~x',
  decision: { approved: true, by: 'U0BOB0001', at: atSecond(30) },
});

/** Poll done, then the loop over two load balancers, each approved, then the report and success. */
const fullRun: RunEvent[] = [
  ...untilPolling,
  stepFinished(wait, 'ok', 95_000),
  stepStarted(loop, 'Delete stale load balancers', 'for_each', true),
  stepStarted(inner1, 'Delete lb-1', 'run', true),
  { ...inner1, type: 'approval.requested', approvalId: 'approval~x', request: approvalRequest(inner1) },
  approved(inner1),
  stepFinished(inner1, 'ok', 4000),
  stepStarted(inner2, 'Delete lb-2', 'run', true),
  { ...inner2, type: 'guard.skipped', message: 'lb-2 is already gone' },
  stepFinished(inner2, 'skipped', 300, null, 'lb-2 is already gone'),
  stepFinished(loop, 'ok', 9000, null),
  stepStarted(report, 'Report'),
  { ...report, type: 'decision', message: 'prod-k8s is healthy again' },
  stepFinished(report, 'ok', 10, null, '1 finding(s)'),
  {
    type: 'run.finished',
    status: 'succeeded',
    message: 'recover finished: every step passed',
    durationMs: 130_000,
  },
];

describe('foldRunView', () => {
  it('should count the run from its request, and keep the wait for approval, when run.started and run.finished say them', () => {
    const v = foldRunView(
      entries([
        { ...recoverStarted, requestedAt: '2024-05-01T09:59:00.000Z' },
        { type: 'run.finished', status: 'succeeded', message: 'ok', durationMs: 87_000, waitingMs: 71_000 },
      ]),
    );
    expect(v).toMatchObject({ startedAt: '2024-05-01T09:59:00.000Z', durationMs: 87_000, waitingMs: 71_000 });
  });

  it('should give undefined when the timeline holds no run.started yet', () => {
    expect(foldRunView([])).toBeUndefined();
    expect(foldRunView(entries([{ type: 'preflight', home: '/root', tools: [] }]))).toBeUndefined();
  });

  it('should list every step as pending when only run.started has arrived', () => {
    const view = foldRunView(entries([recoverStarted]));
    const { type: _, steps, ...run } = recoverStarted;
    expect(view).toEqual({
      ...run,
      startedAt: atSecond(0),
      status: 'running',
      steps: steps.map((s) => ({ ...s, status: 'pending' })),
      pendingApprovals: 0,
      lastEventId: `${T0}-0`,
    });
    expect(view?.steps.map((s) => s.id)).toEqual(['inspect', 'wait-ready', 'delete-lbs', 'report']);
  });

  it('should show the finished step and the poll attempt when a poll is under way', () => {
    const view = foldRunView(entries(untilPolling));
    expect(view?.status).toBe('running');
    expect(view?.currentStep).toBe('wait-ready');
    expect(view?.steps[0]).toEqual({
      id: 'inspect',
      title: 'Inspect prod-k8s',
      destructive: false,
      status: 'ok',
      startedAt: atSecond(2),
      finishedAt: atSecond(4),
      durationMs: 2300,
      exitCode: 0,
    });
    expect(view?.steps[1]).toEqual({
      id: 'wait-ready',
      title: 'Wait for the control plane',
      destructive: false,
      status: 'running',
      startedAt: atSecond(5),
      poll: { attempt: 3, of: 30, summary: '2/3 control plane nodes ready' },
    });
    expect(view?.lastEventId).toBe(`${T0 + 8000}-0`);
  });

  it('should show the item and the inner step on the loop row when a for_each is on its first item', () => {
    const i = fullRun.findIndex((e) => e.type === 'step.started' && e.stepId === inner1.stepId);
    const view = foldRunView(entries(fullRun.slice(0, i + 1)));
    const row = view?.steps[2];
    expect(view?.currentStep).toBe('delete-lbs');
    expect(row?.status).toBe('running');
    expect(row?.iteration).toEqual({ n: 1, of: 2, label: 'lb-1' });
    expect(row?.activity).toBe('Delete lb-1');
    expect(view?.steps[1]?.status).toBe('ok');
    expect(view?.steps[1]?.poll).toEqual({ attempt: 3, of: 30, summary: '2/3 control plane nodes ready' });
  });

  it('should wait for approval on the loop row and the run when an inner step asks for one', () => {
    const i = fullRun.findIndex((e) => e.type === 'approval.requested');
    const view = foldRunView(entries(fullRun.slice(0, i + 1)));
    expect(view?.status).toBe('waiting_approval');
    expect(view?.pendingApprovals).toBe(1);
    expect(view?.steps[2]?.status).toBe('waiting_approval');

    const decided = foldRunView(entries(fullRun.slice(0, i + 2)));
    expect(decided?.status).toBe('running');
    expect(decided?.pendingApprovals).toBe(0);
    expect(decided?.steps[2]?.status).toBe('running');
  });

  it('should move the loop row to the second item and keep it running when the first item is done', () => {
    const i = fullRun.findIndex((e) => e.type === 'guard.skipped');
    const view = foldRunView(entries(fullRun.slice(0, i + 2)));
    const row = view?.steps[2];
    expect(row?.status).toBe('running');
    expect(row?.iteration).toEqual({ n: 2, of: 2, label: 'lb-2' });
    expect(row?.activity).toBe('Delete lb-2');
    expect(row?.message).toBe('lb-2 is already gone');
  });

  it('should end with every step ok and the run succeeded when the whole run passes', () => {
    const view = foldRunView(entries(fullRun));
    expect(view?.status).toBe('succeeded');
    expect(view?.message).toBe('recover finished: every step passed');
    expect(view?.durationMs).toBe(130_000);
    expect(view?.finishedAt).toBe(atSecond(fullRun.length - 1));
    expect(view?.currentStep).toBeUndefined();
    expect(view?.pendingApprovals).toBe(0);
    expect(view?.steps.map((s) => [s.id, s.status, s.durationMs])).toEqual([
      ['inspect', 'ok', 2300],
      ['wait-ready', 'ok', 95_000],
      ['delete-lbs', 'ok', 9000],
      ['report', 'ok', 10],
    ]);
    expect(view?.steps[2]?.activity).toBeUndefined();
    expect(view?.steps[3]?.message).toBe('1 finding(s)');
  });

  it('should mark the loop and the run denied when an approver denies an inner step', () => {
    const i = fullRun.findIndex((e) => e.type === 'approval.requested');
    const denial =
      'delete-lbs/delete-lb: denied by U0BOB0001 (not during the freeze); nothing destructive was run';
    const view = foldRunView(
      entries([
        ...fullRun.slice(0, i + 1),
        {
          ...inner1,
          type: 'approval.decided',
          approvalId: 'approval~x',
          decision: {
            approved: false,
            by: 'U0BOB0001',
            at: atSecond(20),
            reason: 'denied',
            note: 'not during the freeze',
          },
        },
        stepFinished(inner1, 'denied', 60_000, null, denial),
        stepFinished(loop, 'denied', 61_000, null, denial),
        {
          type: 'run.finished',
          status: 'denied',
          message: denial,
          durationMs: 170_000,
          failedStep: 'delete-lbs/delete-lb',
        },
      ]),
    );
    expect(view?.status).toBe('denied');
    expect(view?.failedStep).toBe('delete-lbs/delete-lb');
    expect(view?.pendingApprovals).toBe(0);
    expect(view?.steps.map((s) => s.status)).toEqual(['ok', 'ok', 'denied', 'pending']);
    expect(view?.steps[2]?.message).toBe(denial);
  });

  it('should count one pending approval when a resumed run asks again for the approval it was parked on', () => {
    const parked: RunEvent[] = [
      ...untilPolling,
      stepFinished(wait, 'ok', 95_000),
      stepStarted(loop, 'Delete stale load balancers', 'for_each', true),
      stepStarted(inner1, 'Delete lb-1', 'run', true),
      { ...inner1, type: 'approval.requested', approvalId: 'approval~x', request: approvalRequest(inner1) },
    ];
    const resumed: RunEvent[] = [
      ...parked,
      { type: 'run.resumed', reason: 'approval decided', atStep: 'delete-lbs' },
      stepStarted(inner1, 'Delete lb-1', 'run', true),
      { ...inner1, type: 'approval.requested', approvalId: 'approval~x', request: approvalRequest(inner1) },
    ];
    expect(foldRunView(entries(parked))?.status).toBe('waiting_approval');
    const view = foldRunView(entries(resumed));
    expect(view?.status).toBe('waiting_approval');
    expect(view?.pendingApprovals).toBe(1);
    const after = foldRunView(entries([...resumed, approved(inner1)]));
    expect(after?.status).toBe('running');
    expect(after?.pendingApprovals).toBe(0);
    expect(after?.steps[2]?.iteration).toEqual({ n: 1, of: 2, label: 'lb-1' });
  });

  it('should mark an open step cancelled and clear pending approvals when the run is cancelled while parked', () => {
    const view = foldRunView(
      entries([
        ...untilPolling,
        stepFinished(wait, 'ok', 1000),
        stepStarted(loop, 'Delete stale load balancers', 'for_each', true),
        stepStarted(inner1, 'Delete lb-1', 'run', true),
        { ...inner1, type: 'approval.requested', approvalId: 'approval~x', request: approvalRequest(inner1) },
        { type: 'run.finished', status: 'cancelled', message: 'cancelled by U0ALICE01', durationMs: 50_000 },
      ]),
    );
    expect(view?.status).toBe('cancelled');
    expect(view?.pendingApprovals).toBe(0);
    expect(view?.steps.map((s) => s.status)).toEqual(['ok', 'ok', 'cancelled', 'pending']);
  });

  it('should restart a step from scratch when a decision jumps back to it', () => {
    const view = foldRunView(
      entries([
        recoverStarted,
        stepStarted(inspect, 'Inspect prod-k8s'),
        stepFinished(inspect, 'ok', 1000),
        stepStarted(wait, 'Wait for the control plane', 'poll'),
        { ...wait, type: 'poll.attempt', attempt: 1, of: 30, summary: 'not yet' },
        stepFinished(wait, 'ok', 3000),
        stepStarted(inspect, 'Inspect prod-k8s again'),
      ]),
    );
    expect(view?.currentStep).toBe('inspect');
    expect(view?.steps[0]).toEqual({
      id: 'inspect',
      title: 'Inspect prod-k8s again',
      destructive: false,
      status: 'running',
      startedAt: atSecond(6),
    });
  });

  it('should report a failed step with its exit code and message when a command fails', () => {
    const why = 'inspect: exited 2: cluster prod-k8s not found';
    const view = foldRunView(
      entries([
        recoverStarted,
        stepStarted(inspect, 'Inspect prod-k8s'),
        stepFinished(inspect, 'failed', 800, 2, why),
        { type: 'run.finished', status: 'failed', message: why, durationMs: 900, failedStep: 'inspect' },
      ]),
    );
    expect(view?.status).toBe('failed');
    expect(view?.steps[0]).toMatchObject({ status: 'failed', exitCode: 2, durationMs: 800, message: why });
    expect(view?.steps.slice(1).map((s) => s.status)).toEqual(['pending', 'pending', 'pending']);
  });
});

describe('what a step found, for the checklist', () => {
  it("should keep a finished step's summary and forget it when the step runs again", () => {
    const found: RunEvent[] = [
      recoverStarted,
      stepStarted(inspect, 'Inspect prod-k8s'),
      { ...(stepFinished(inspect, 'ok', 2300) as object), summary: '3 of 3 nodes Ready' } as RunEvent,
    ];
    expect(foldRunView(entries(found))?.steps[0]).toMatchObject({
      status: 'ok',
      summary: '3 of 3 nodes Ready',
    });
    const again = foldRunView(entries([...found, stepStarted(inspect, 'Inspect prod-k8s')]))?.steps[0];
    expect(again?.status).toBe('running');
    expect(again?.summary).toBeUndefined();
  });

  it("should keep a loop item's name with its ids while the item runs", () => {
    const named = ref('delete-lbs/delete-lb', 3, 4, { n: 1, of: 2, label: 'lb-1-id', name: 'kube-api LB' });
    const v = foldRunView(
      entries([
        recoverStarted,
        stepStarted(loop, 'Delete', 'for_each', true),
        stepStarted(named, 'Delete lb-1'),
      ]),
    );
    expect(v?.steps[2]?.iteration).toEqual({ n: 1, of: 2, label: 'lb-1-id', name: 'kube-api LB' });
  });
});
