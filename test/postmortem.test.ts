import { describe, expect, it } from 'vitest';
import type { RunEvent, StepRef } from '../src/engine/events.js';
import { renderMarkdown } from '../src/fronts/postmortem.js';
import { RunTimeline, type TimelineEntry } from '../src/runs/timeline.js';
import { approvalRequest, ref, runStarted, stepFinished, stepOutput, stepStarted } from './support/events.js';
import { useTestRedis } from './support/redis.js';

const db = useTestRedis();

/** stuck-delete on site-a, three steps, on 2025-03-04: a run that needed an approval and skipped a guard. */
const RUN = 'r1test';
const started = runStarted({
  runId: RUN,
  runbook: 'stuck-delete',
  summary: 'Unstick a cluster stuck in DELETE_IN_PROGRESS',
  requestedBy: 'U0AAAAAAA',
  steps: [
    { id: 'inspect', title: 'Inspect the cluster', destructive: false },
    { id: 'delete-lbs', title: 'Delete stale load balancers', destructive: true },
    { id: 'report', title: 'Report', destructive: false },
  ],
});
const inspect = ref('inspect', 1, 3);
const output = (line: string): RunEvent => stepOutput(inspect, line);

describe('renderMarkdown', () => {
  const at = (hms: string) => `2025-03-04T${hms}.000Z`;
  let seq = 0;
  const entry = (hms: string, event: RunEvent): TimelineEntry => ({
    id: `${Date.parse(at(hms))}-${seq++}`,
    at: at(hms),
    event,
  });
  const loop = (n: number, label: string): StepRef => ref('delete-lbs/delete', 2, 3, { n, of: 2, label });
  const request = approvalRequest(loop(1, 'lb-a'), {
    runId: RUN,
    runbook: 'stuck-delete',
    title: 'Delete load balancer lb-a',
    summary: 'Delete load balancer lb-a (ERROR, no members)',
    commands: ['openstack loadbalancer delete --cascade lb-a'],
    targets: ['lb-a'],
    evidence: ['provisioning_status=ERROR', 'members=0'],
    requestedBy: 'U0AAAAAAA',
  });
  const succeededRun: TimelineEntry[] = [
    entry('10:00:00', started),
    entry('10:00:01', { type: 'preflight', home: '/home/ubuntu', tools: ['openstack', 'kubectl'] }),
    entry('10:00:01', stepStarted(inspect, 'Inspect the cluster', 'run', false)),
    entry('10:00:02', output('NAME       STATUS')),
    entry('10:00:02', output('prod-k8s   DELETE_IN_PROGRESS')),
    entry('10:00:02', stepOutput(inspect, 'warning: slow API', 'stderr')),
    entry('10:00:03', { ...inspect, type: 'decision', message: '2 stale load balancers found' }),
    entry('10:00:03', stepFinished(inspect, 'ok', 2100)),
    entry('10:00:04', stepStarted(ref('delete-lbs', 2, 3), 'Delete stale load balancers', 'run', true)),
    entry('10:00:04', stepStarted(loop(1, 'lb-a'), 'Delete lb-a', 'run', true)),
    entry('10:00:05', { ...loop(1, 'lb-a'), type: 'approval.requested', approvalId: 'approval~x', request }),
    entry('10:02:10', {
      ...loop(1, 'lb-a'),
      type: 'approval.decided',
      approvalId: 'approval~x',
      decision: { approved: true, by: 'U0BBBBBBB', at: at('10:02:10') },
    }),
    entry('10:02:12', stepOutput(loop(1, 'lb-a'), 'lb-a deleted')),
    entry('10:02:12', stepFinished(loop(1, 'lb-a'), 'ok', 128_000)),
    entry('10:02:13', stepStarted(loop(2, 'lb-b'), 'Delete lb-b', 'run', true)),
    entry('10:02:13', { ...loop(2, 'lb-b'), type: 'guard.skipped', message: 'lb-b is already gone' }),
    entry('10:02:13', stepFinished(loop(2, 'lb-b'), 'skipped', 300)),
    entry('10:02:14', stepFinished(ref('delete-lbs', 2, 3), 'ok', 130_000, null)),
    entry('10:02:15', stepStarted(ref('report', 3, 3), 'Report', 'run', false)),
    entry('10:02:20', {
      ...ref('report', 3, 3),
      type: 'poll.attempt',
      attempt: 2,
      of: 10,
      summary: 'still deleting',
    }),
    entry('10:02:30', stepFinished(ref('report', 3, 3), 'ok', 15_000)),
    entry('10:02:31', {
      type: 'run.finished',
      status: 'succeeded',
      message: 'stuck-delete finished: every step passed',
      durationMs: 151_000,
    }),
  ];

  it('should summarise the run in the header when the run finished', () => {
    const lines = renderMarkdown(succeededRun).split('\n');
    expect(lines[0]).toBe('# Run r1test: stuck-delete on site-a');
    expect(lines).toContain('| Runbook | stuck-delete |');
    expect(lines).toContain('| Site | site-a |');
    expect(lines).toContain('| Run id | r1test |');
    expect(lines).toContain('| Requested by | U0AAAAAAA |');
    expect(lines).toContain('| Parameters | cluster=prod-k8s |');
    expect(lines).toContain('| Started | 2025-03-04 10:00:00 UTC |');
    expect(lines).toContain('| Finished | 2025-03-04 10:02:31 UTC |');
    expect(lines).toContain('| Duration | 2m 31s |');
    expect(lines).toContain('| Status | **SUCCEEDED** |');
  });

  it('should list every step with status, exit code and duration when steps ran', () => {
    const lines = renderMarkdown(succeededRun).split('\n');
    expect(lines).toContain('| # | Step | Title | Status | Exit code | Duration |');
    expect(lines).toContain('| 1/3 | inspect | Inspect the cluster | ok | 0 | 2.1s |');
    expect(lines).toContain('| 2/3 | delete-lbs/delete (1/2 lb-a) | Delete lb-a | ok | 0 | 2m 8s |');
    expect(lines).toContain('| 2/3 | delete-lbs/delete (2/2 lb-b) | Delete lb-b | skipped | - | 300ms |');
    expect(lines).toContain('| 2/3 | delete-lbs | Delete stale load balancers | ok | - | 2m 10s |');
    expect(lines).toContain('| 3/3 | report | Report | ok | 0 | 15.0s |');
  });

  it('should show the timeline with times, grouped output, approvals and guard skips in order', () => {
    const md = renderMarkdown(succeededRun);
    const lines = md.split('\n');
    const at = (text: string) => {
      const i = lines.indexOf(text);
      expect(i, text).toBeGreaterThanOrEqual(0);
      return i;
    };
    const order = [
      at('- `10:00:00` run started by U0AAAAAAA: stuck-delete on site-a'),
      at('- `10:00:01` jumphost ready (HOME=/home/ubuntu; openstack, kubectl found)'),
      at('### 1/3 inspect: Inspect the cluster'),
      at('- `10:00:02` stdout:'),
      at('NAME       STATUS'),
      at('- `10:00:02` stderr:'),
      at('warning: slow API'),
      at('- `10:00:03` decision: 2 stale load balancers found'),
      at('- `10:00:03` inspect ok after 2.1s, exit code 0'),
      at('### 2/3 delete-lbs: Delete stale load balancers (destructive)'),
      at('#### 2/3 delete-lbs/delete (1/2 lb-a): Delete lb-a (destructive)'),
      at(
        '- `10:00:05` **approval requested** from the approvers (run requested by U0AAAAAAA): ' +
          'Delete load balancer lb-a (ERROR, no members)',
      ),
      at('  - evidence: provisioning_status=ERROR'),
      at('    openstack loadbalancer delete --cascade lb-a'),
      at('- `10:02:10` **approved** by U0BBBBBBB at 10:02:10'),
      at('lb-a deleted'),
      at('- `10:02:13` guard skipped the step: lb-b is already gone'),
      at('- `10:02:13` delete-lbs/delete (2/2 lb-b) skipped after 300ms'),
      at('- `10:02:14` delete-lbs ok after 2m 10s'),
      at('- `10:02:20` attempt 2/10: still deleting'),
      at('- `10:02:31` **run succeeded** after 2m 31s: stuck-delete finished: every step passed'),
    ];
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    // Both stdout lines of the first step share one fenced block; stderr gets its own.
    const block = lines.indexOf('NAME       STATUS');
    expect(lines[block - 1]).toBe('```');
    expect(lines[block + 1]).toBe('prod-k8s   DELETE_IN_PROGRESS');
    expect(lines[block + 2]).toBe('```');
    expect(lines[lines.indexOf('warning: slow API') - 3]).toBe('- `10:00:02` stderr:');
  });

  it('should show the expiry, the unrun steps and the failed step when a run was denied by expiry', () => {
    const denied: TimelineEntry[] = [
      ...succeededRun.slice(0, 11),
      entry('10:30:05', {
        ...loop(1, 'lb-a'),
        type: 'approval.decided',
        approvalId: 'approval~x',
        decision: { approved: false, by: 'expiry', at: at('10:30:05'), reason: 'expired' },
      }),
      entry('10:30:05', {
        type: 'run.finished',
        status: 'denied',
        message: 'delete-lbs/delete: the approval expired (counts as a denial); nothing destructive was run',
        durationMs: 1_805_000,
        failedStep: 'delete-lbs/delete',
      }),
    ];
    const lines = renderMarkdown(denied).split('\n');
    expect(lines).toContain('| Status | **DENIED** |');
    expect(lines).toContain('| Duration | 30m 5s |');
    expect(lines).toContain('| Failed step | delete-lbs/delete |');
    expect(lines).toContain(
      '- `10:30:05` **approval expired** at 10:30:05 (no decision in time; counts as a denial)',
    );
    expect(lines).toContain('| 2/3 | delete-lbs/delete (1/2 lb-a) | Delete lb-a | unfinished | - | - |');
    expect(lines).toContain('| 3/3 | report | Report | not run | - | - |');
  });

  it('should time the run from its request and show the wait for approval apart when the run waited for people', () => {
    const requested = runStarted({ ...started, requestedAt: at('09:58:30') });
    const md = renderMarkdown([
      entry('10:00:00', requested),
      entry('10:00:01', stepStarted(inspect, 'Inspect the cluster', 'run', false)),
      entry('10:00:03', stepFinished(inspect, 'ok', 2100)),
      entry('10:02:00', {
        type: 'run.finished',
        status: 'succeeded',
        message: 'done',
        durationMs: 210_000,
        waitingMs: 125_000,
      }),
    ]);
    const lines = md.split('\n');
    expect(lines).toContain('| Requested | 2025-03-04 09:58:30 UTC |');
    expect(lines).toContain('| Started | 2025-03-04 10:00:00 UTC |');
    expect(lines).toContain('| Duration | 3m 30s, 2m 5s of it waiting for approval |');
    expect(md).toContain('**run succeeded** after 3m 30s, 2m 5s of it waiting for approval: done');
  });

  it('should say the run is still going when there is no run.finished yet', () => {
    const lines = renderMarkdown(succeededRun.slice(0, 5)).split('\n');
    expect(lines).toContain('| Finished | not finished |');
    expect(lines).toContain('| Status | **RUNNING** (no run.finished event yet) |');
  });

  it('should list who joined the run, a person or an alert group, as they asked', () => {
    const md = renderMarkdown([
      entry('10:00:00', { type: 'run.joined', by: 'U0CCCCCCC' }),
      entry('10:00:00', {
        type: 'run.joined',
        by: 'alertmanager',
        via: 'alertmanager',
        note: 'CapiDown {site="a"}',
      }),
      entry('10:00:01', started),
    ]);
    expect(md).toMatch(/- `10:00:00` U0CCCCCCC asked for the same run and joined this one/);
    expect(md).toMatch(/- `10:00:00` alert .*CapiDown.* asked for the same run and joined this one/);
  });

  it('should fence output that itself contains a code fence when a line has backticks', () => {
    const md = renderMarkdown([entry('10:00:00', started), entry('10:00:01', output('```yaml'))]);
    expect(md).toContain('````\n```yaml\n````');
  });

  it('should render a timeline read back from Redis when events went through append', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    for (const e of succeededRun) await timeline.append(RUN, e.event);
    const md = renderMarkdown(await timeline.read(RUN));
    expect(md).toContain('| Status | **SUCCEEDED** |');
    expect(md).toContain('| 2/3 | delete-lbs/delete (2/2 lb-b) | Delete lb-b | skipped | - | 300ms |');
  });
});
