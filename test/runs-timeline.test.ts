import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { ApprovalRequest, RunEvent, StepRef, StepStatus } from '../src/engine/events.js';
import { REDACTED } from '../src/redact.js';
import { RunTimeline, renderMarkdown, type TimelineEntry } from '../src/runs/timeline.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const db = useTestRedis();

/** Resolves once a connection with this name is blocked in XREAD, i.e. follow() is waiting for new entries. */
async function blockedFollower(name: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const clients = (await db.redis.client('LIST')) as string;
    if (clients.split('\n').some((l) => l.includes(`name=${name} `) && /\bcmd=xread\b/.test(l))) return;
    if (Date.now() > deadline) throw new Error(`no blocked XREAD from ${name}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

async function followerGone(name: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (((await db.redis.client('LIST')) as string).includes(`name=${name} `)) {
    if (Date.now() > deadline) throw new Error(`${name} is still connected`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

const RUN = 'r1test';
const ref = (stepId: string, index: number, total = 3): StepRef => ({ stepId, index, total });
const started: RunEvent = {
  type: 'run.started',
  runId: RUN,
  runbook: 'stuck-delete',
  summary: 'Unstick a cluster stuck in DELETE_IN_PROGRESS',
  site: 'site-a',
  params: { cluster: 'prod-k8s' },
  requestedBy: 'U0AAAAAAA',
  steps: [
    { id: 'inspect', title: 'Inspect the cluster', destructive: false },
    { id: 'delete-lbs', title: 'Delete stale load balancers', destructive: true },
    { id: 'report', title: 'Report', destructive: false },
  ],
};
const output = (line: string, stepId = 'inspect'): RunEvent => ({
  ...ref(stepId, 1),
  type: 'step.output',
  stream: 'stdout',
  line,
});
const finished: RunEvent = { type: 'run.finished', status: 'succeeded', message: 'done', durationMs: 1234 };

describe('RunTimeline.append/read', () => {
  it('should read events back in order with server timestamps when they were appended', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const before = Date.now();
    const ids = [
      await timeline.append(RUN, started),
      await timeline.append(RUN, output('hello')),
      await timeline.append(RUN, finished),
    ];
    const entries = await timeline.read(RUN);
    expect(entries.map((e) => e.id)).toEqual(ids);
    expect(entries.map((e) => e.event)).toEqual([started, output('hello'), finished]);
    for (const e of entries) {
      expect(Date.parse(e.at)).toBeGreaterThanOrEqual(before - 1000);
      expect(Date.parse(e.at)).toBeLessThanOrEqual(Date.now() + 1000);
      expect(e.at).toBe(new Date(Number(e.id.split('-')[0])).toISOString());
    }
    expect(await db.redis.type(timeline.streamKey(RUN))).toBe('stream');
  });

  it('should return only later entries, up to count, when afterId and count are given', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const first = await timeline.append(RUN, started);
    for (let i = 0; i < 5; i++) await timeline.append(RUN, output(`line ${i}`));
    const page = await timeline.read(RUN, first ?? undefined, 2);
    expect(page.map((e) => (e.event.type === 'step.output' ? e.event.line : e.event.type))).toEqual([
      'line 0',
      'line 1',
    ]);
    const rest = await timeline.read(RUN, page[1]?.id);
    expect(rest).toHaveLength(3);
    expect(await timeline.read('r-never-ran')).toEqual([]);
  });

  it('should redact secrets in every string when an event is stored', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const request: ApprovalRequest = {
      runId: RUN,
      runbook: 'stuck-delete',
      step: ref('delete-lbs', 2),
      title: 'Delete',
      summary: 'Delete 2 load balancers',
      commands: ['openstack --os-password hunter2hunter2 loadbalancer delete lb-a'],
      targets: ['lb-a'],
      evidence: ['OS_PASSWORD=hunter2hunter2 was in the env'],
      requestedBy: 'U0AAAAAAA',
      digest: 'd1gest',
    };
    await timeline.append(RUN, output('password: hunter2hunter2'));
    await timeline.append(RUN, {
      ...ref('delete-lbs', 2),
      type: 'approval.requested',
      approvalId: 'approval~x',
      request,
    });
    const raw = JSON.stringify(await db.redis.xrange(timeline.streamKey(RUN), '-', '+'));
    expect(raw).not.toContain('hunter2');
    const [out, asked] = await timeline.read(RUN);
    expect(out?.event).toMatchObject({ line: `password: ${REDACTED}` });
    expect(asked?.event.type === 'approval.requested' && asked.event.request.evidence[0]).toBe(
      `OS_PASSWORD=${REDACTED}`,
    );
    expect(asked?.event.type === 'approval.requested' && asked.event.request.commands[0]).toBe(
      `openstack --os-password ${REDACTED} loadbalancer delete lb-a`,
    );
  });

  it('should store an event once when the same dedupeKey is appended 20 times in parallel', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => timeline.append(RUN, output('once'), 'inspect:out:1')),
    );
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(await timeline.read(RUN)).toHaveLength(1);
    // A different key is a different event.
    expect(await timeline.append(RUN, output('once'), 'inspect:out:2')).not.toBeNull();
    expect(await timeline.read(RUN)).toHaveLength(2);
  });

  it('should store an event once when two connections append the same dedupeKey', async () => {
    const other = new Redis(REDIS_URL);
    try {
      const a = new RunTimeline(db.redis, db.prefix);
      const b = new RunTimeline(other, db.prefix);
      const results = await Promise.all([
        ...Array.from({ length: 10 }, () => a.append(RUN, started, 'run.started')),
        ...Array.from({ length: 10 }, () => b.append(RUN, started, 'run.started')),
      ]);
      expect(results.filter((r) => r !== null)).toHaveLength(1);
      expect(await a.read(RUN)).toHaveLength(1);
    } finally {
      await other.quit();
    }
  });

  it('should keep one truncation line and count the rest when output exceeds maxOutputLinesPerRun', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix, { maxOutputLinesPerRun: 3 });
    await timeline.append(RUN, started);
    const ids: (string | null)[] = [];
    for (let i = 1; i <= 10; i++) {
      ids.push(await timeline.append(RUN, output(`line ${i}`)));
      if (i === 6) await timeline.append(RUN, { ...ref('inspect', 1), type: 'decision', message: 'mid' });
    }
    await timeline.append(RUN, finished);

    expect(ids.slice(0, 4).every((id) => id !== null)).toBe(true);
    expect(ids.slice(4)).toEqual([null, null, null, null, null, null]);
    const lines = (await timeline.read(RUN)).map((e) =>
      e.event.type === 'step.output' ? e.event.line : e.event.type,
    );
    expect(lines).toEqual([
      'run.started',
      'line 1',
      'line 2',
      'line 3',
      '[... output truncated: 7 more lines not stored ...]',
      'decision',
      'run.finished',
    ]);
    expect(await db.redis.xlen(timeline.streamKey(RUN))).toBe(7);
  });

  it('should not count a re-emitted output line twice when it carries the same dedupeKey', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix, { maxOutputLinesPerRun: 2 });
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 1; i <= 3; i++) await timeline.append(RUN, output(`line ${i}`), `out:${i}`);
    }
    const lines = (await timeline.read(RUN)).map((e) => (e.event.type === 'step.output' ? e.event.line : ''));
    expect(lines).toEqual(['line 1', 'line 2', '[... output truncated: 1 more lines not stored ...]']);
  });

  it('should skip and report malformed entries when the stream holds foreign data', async () => {
    const reported: string[] = [];
    const timeline = new RunTimeline(db.redis, db.prefix, { onInvalid: (p) => reported.push(p.id) });
    const key = timeline.streamKey(RUN);
    await timeline.append(RUN, started);
    const noEvent = await db.redis.xadd(key, '*', 'x', 'y');
    const notJson = await db.redis.xadd(key, '*', 'e', '{not json');
    const wrongShape = await db.redis.xadd(key, '*', 'e', JSON.stringify({ type: 'step.output', line: 3 }));
    const unknownType = await db.redis.xadd(key, '*', 'e', JSON.stringify({ type: 'run.exploded' }));
    await timeline.append(RUN, finished);

    const entries = await timeline.read(RUN);
    expect(entries.map((e) => e.event.type)).toEqual(['run.started', 'run.finished']);
    expect(reported).toEqual([noEvent, notJson, wrongShape, unknownType]);
  });
});

describe('RunTimeline.follow', () => {
  it('should yield entries appended after it started and end at run.finished', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const startId = await timeline.append(RUN, started);
    const seen: TimelineEntry[] = [];
    const done = (async () => {
      for await (const entry of timeline.follow(RUN, startId ?? '0', new AbortController().signal)) {
        seen.push(entry);
      }
    })();
    await blockedFollower(`${db.prefix}:follow:${RUN}`);
    await timeline.append(RUN, output('one'));
    await timeline.append(RUN, output('two'));
    await timeline.append(RUN, finished);
    await done;
    expect(seen.map((e) => e.event.type)).toEqual(['step.output', 'step.output', 'run.finished']);
    // The follower's own connection is closed once the run is over.
    await followerGone(`${db.prefix}:follow:${RUN}`);
  });

  it('should only yield new entries when afterId is $', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    await timeline.append(RUN, started);
    await timeline.append(RUN, output('old'));
    const iterator = timeline.follow(RUN, '$', new AbortController().signal)[Symbol.asyncIterator]();
    const next = iterator.next();
    await blockedFollower(`${db.prefix}:follow:${RUN}`);
    await timeline.append(RUN, output('new'));
    const first = await next;
    expect(first.done).toBe(false);
    expect(first.value).toMatchObject({ event: { line: 'new' } });
    await iterator.return?.();
  });

  it('should replay the stored entries and end at once when the run already finished', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    await timeline.append(RUN, started);
    await timeline.append(RUN, finished);
    const seen: string[] = [];
    for await (const e of timeline.follow(RUN, '0', new AbortController().signal)) seen.push(e.event.type);
    expect(seen).toEqual(['run.started', 'run.finished']);
  });

  it('should end without error when the signal aborts while it waits', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const controller = new AbortController();
    const seen: TimelineEntry[] = [];
    const done = (async () => {
      for await (const e of timeline.follow(RUN, '0', controller.signal)) seen.push(e);
    })();
    await blockedFollower(`${db.prefix}:follow:${RUN}`);
    controller.abort();
    await expect(done).resolves.toBeUndefined();
    expect(seen).toEqual([]);
    await followerGone(`${db.prefix}:follow:${RUN}`);
    // The shared connection was never blocked.
    expect(await db.redis.ping()).toBe('PONG');
  });
});

describe('renderMarkdown', () => {
  const at = (hms: string) => `2025-03-04T${hms}.000Z`;
  let seq = 0;
  const entry = (hms: string, event: RunEvent): TimelineEntry => ({
    id: `${Date.parse(at(hms))}-${seq++}`,
    at: at(hms),
    event,
  });
  const loop = (n: number, label: string): StepRef => ({
    stepId: 'delete-lbs/delete',
    index: 2,
    total: 3,
    iteration: { n, of: 2, label },
  });
  const stepStarted = (step: StepRef, title: string, destructive: boolean): RunEvent => ({
    ...step,
    type: 'step.started',
    kind: 'run',
    title,
    destructive,
  });
  const stepFinished = (
    step: StepRef,
    status: StepStatus,
    exitCode: number | null,
    durationMs: number,
  ): RunEvent => ({ ...step, type: 'step.finished', status, exitCode, signal: null, durationMs });
  const request: ApprovalRequest = {
    runId: RUN,
    runbook: 'stuck-delete',
    step: loop(1, 'lb-a'),
    title: 'Delete load balancer lb-a',
    summary: 'Delete load balancer lb-a (ERROR, no members)',
    commands: ['openstack loadbalancer delete --cascade lb-a'],
    targets: ['lb-a'],
    evidence: ['provisioning_status=ERROR', 'members=0'],
    requestedBy: 'U0AAAAAAA',
    digest: 'd1gest',
  };
  const succeededRun: TimelineEntry[] = [
    entry('10:00:00', started),
    entry('10:00:01', { type: 'preflight', home: '/home/ubuntu', tools: ['openstack', 'kubectl'] }),
    entry('10:00:01', stepStarted(ref('inspect', 1), 'Inspect the cluster', false)),
    entry('10:00:02', output('NAME       STATUS')),
    entry('10:00:02', output('prod-k8s   DELETE_IN_PROGRESS')),
    entry('10:00:02', {
      ...ref('inspect', 1),
      type: 'step.output',
      stream: 'stderr',
      line: 'warning: slow API',
    }),
    entry('10:00:03', { ...ref('inspect', 1), type: 'decision', message: '2 stale load balancers found' }),
    entry('10:00:03', stepFinished(ref('inspect', 1), 'ok', 0, 2100)),
    entry('10:00:04', stepStarted(ref('delete-lbs', 2), 'Delete stale load balancers', true)),
    entry('10:00:04', stepStarted(loop(1, 'lb-a'), 'Delete lb-a', true)),
    entry('10:00:05', { ...loop(1, 'lb-a'), type: 'approval.requested', approvalId: 'approval~x', request }),
    entry('10:02:10', {
      ...loop(1, 'lb-a'),
      type: 'approval.decided',
      approvalId: 'approval~x',
      decision: { approved: true, by: 'U0BBBBBBB', at: at('10:02:10') },
    }),
    entry('10:02:12', { ...loop(1, 'lb-a'), type: 'step.output', stream: 'stdout', line: 'lb-a deleted' }),
    entry('10:02:12', stepFinished(loop(1, 'lb-a'), 'ok', 0, 128_000)),
    entry('10:02:13', stepStarted(loop(2, 'lb-b'), 'Delete lb-b', true)),
    entry('10:02:13', { ...loop(2, 'lb-b'), type: 'guard.skipped', message: 'lb-b is already gone' }),
    entry('10:02:13', stepFinished(loop(2, 'lb-b'), 'skipped', null, 300)),
    entry('10:02:14', stepFinished(ref('delete-lbs', 2), 'ok', null, 130_000)),
    entry('10:02:15', stepStarted(ref('report', 3), 'Report', false)),
    entry('10:02:20', {
      ...ref('report', 3),
      type: 'poll.attempt',
      attempt: 2,
      of: 10,
      summary: 'still deleting',
    }),
    entry('10:02:30', stepFinished(ref('report', 3), 'ok', 0, 15_000)),
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

  it('should say the run is still going when there is no run.finished yet', () => {
    const lines = renderMarkdown(succeededRun.slice(0, 5)).split('\n');
    expect(lines).toContain('| Finished | not finished |');
    expect(lines).toContain('| Status | **RUNNING** (no run.finished event yet) |');
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
