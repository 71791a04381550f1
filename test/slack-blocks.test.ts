import { describe, expect, it } from 'vitest';
import { checkBlockKit } from '../dev/slack/block-kit.js';
import type { ApprovalRequest, RunEvent } from '../src/engine/events.js';
import { REDACTED } from '../src/redact.js';
import type { StoredApproval } from '../src/runs/approvals.js';
import { approvalStory } from '../src/slack/approval-story.js';
import {
  APPROVE_ACTION_ID,
  approvalMessage,
  catchUpMessage,
  DENY_ACTION_ID,
  escapeSlack,
  rootMessage,
  type SlackMessage,
  stepContext,
  threadMessage,
  threadPost,
} from '../src/slack/blocks.js';
import { BLOCK_KIT_LIMITS } from '../src/slack/limits.js';
import { foldRunView, type RunView } from '../src/slack/run-view.js';
import {
  approvalRequest,
  atSecond,
  entries,
  entryAt,
  recoverStarted,
  ref,
  stepFinished,
  stepOutput,
  stepStarted,
  T0,
} from './support/events.js';
import { slackBot } from './support/secrets.js';

const at = atSecond;
const epoch = (s: number) => Math.floor(T0 / 1000) + s;
const entry = (event: RunEvent, s = 0) => entryAt(event, s);

type Block = { type: string; text?: { type: string; text: string }; elements?: Record<string, unknown>[] };
const blocksOf = (m: SlackMessage) => m.blocks as Block[];
/** Every mrkdwn/plain text of the message, in order, as one string. */
const allText = (m: SlackMessage) =>
  blocksOf(m)
    .flatMap((b) => [
      b.text?.text ?? '',
      ...(b.elements ?? []).map((e) => (e as { text?: string }).text ?? ''),
    ])
    .join('\n');
const sectionTexts = (m: SlackMessage) =>
  blocksOf(m).flatMap((b) => (b.type === 'section' && b.text ? [b.text.text] : []));
/** The checklist lines of a root message: every section after the divider. */
const checklist = (m: SlackMessage) => {
  const blocks = blocksOf(m);
  const divider = blocks.findIndex((b) => b.type === 'divider');
  return blocks
    .slice(divider + 1)
    .filter((b) => b.type === 'section')
    .flatMap((b) => b.text?.text.split('\n') ?? []);
};

function expectWithinLimits(m: SlackMessage): void {
  expect(checkBlockKit(m)).toEqual([]);
  expect(m.text.length).toBeGreaterThan(0);
  expect(m.text.length).toBeLessThanOrEqual(BLOCK_KIT_LIMITS.messageText);
}

const started = recoverStarted;
const inspect = ref('inspect', 1);
const wait = ref('wait-ready', 2);
const loop = ref('delete-lbs', 3);
const inner1 = ref('delete-lbs/delete-lb', 3, 4, { n: 1, of: 2, label: 'lb-1' });

const polling: RunEvent[] = [
  started,
  { ...inspect, type: 'step.started', kind: 'run', title: 'Inspect prod-k8s', destructive: false },
  { ...inspect, type: 'step.finished', status: 'ok', exitCode: 0, signal: null, durationMs: 2300 },
  { ...wait, type: 'step.started', kind: 'poll', title: 'Wait for the control plane', destructive: false },
  { ...wait, type: 'poll.attempt', attempt: 3, of: 30, summary: '2/3 control plane nodes ready' },
];

function view(events: readonly RunEvent[]): RunView {
  const v = foldRunView(entries(events));
  if (!v) throw new Error('no run.started');
  return v;
}

const request = (over: Partial<ApprovalRequest> = {}): ApprovalRequest =>
  approvalRequest(inner1, {
    summary: 'Delete the stale load balancer that blocks the cluster delete',
    commands: ['openstack loadbalancer delete --cascade 6a1c0e2e-0d7b-4b8e-9a51-4f4f1d9c2b10'],
    targets: ['lb-1 (6a1c0e2e-0d7b-4b8e-9a51-4f4f1d9c2b10)'],
    evidence: ['provisioning_status=ERROR for 3 days', 'no listeners'],
    ...over,
  });

const approval = (over: Partial<StoredApproval> = {}): StoredApproval => ({
  approvalId: 'approval~r-recover-1~delete-lbs%2Fdelete-lb~0',
  runId: 'r-recover-1',
  stepId: 'delete-lbs/delete-lb',
  request: request(),
  requestedAt: at(0),
  expiresAt: at(900),
  ...over,
});

// ---------------------------------------------------------------------------------------------------------

describe('rootMessage', () => {
  it('should show the title, the exact run id line, requester, parameters and status when a poll is running', () => {
    const m = rootMessage(view(polling), new Date(T0 + 8000));
    expectWithinLimits(m);
    const [headerBlock, info] = blocksOf(m);
    expect(headerBlock).toEqual({
      type: 'header',
      text: { type: 'plain_text', text: 'recover on site-a', emoji: true },
    });
    expect(info?.text?.text.split('\n')).toEqual([
      'run id: r-recover-1',
      '*Requested by* <@U0ALICE01>',
      '*Parameters* cluster=`prod-k8s`',
      '*Status* :arrows_counterclockwise: *running* for 8.0s',
      '_Bring a cluster back from CREATE_FAILED_',
    ]);
    expect(m.text).toBe('recover on site-a: running (1/4 steps done, run r-recover-1)');
  });

  it('should say a run was requested from the terminal, as which unix user, as /capi status does', () => {
    const m = rootMessage(view(polling), new Date(T0 + 8000), 'terminal as alice');
    expectWithinLimits(m);
    expect(blocksOf(m)[1]?.text?.text.split('\n')[1]).toBe(
      '*Requested by* <@U0ALICE01> via terminal as alice',
    );
    // The unix user name is text from a machine, never a mention or markup.
    const evil = rootMessage(view(polling), new Date(T0 + 8000), 'terminal as <!channel>*x*');
    const line = blocksOf(evil)[1]?.text?.text.split('\n')[1] ?? '';
    expect(line).toMatch(/^\*Requested by\* <@U0ALICE01> via terminal as /);
    expect(line).not.toContain('<!channel>');
  });

  it('should list one checklist line per step with status, step n of m, time and poll attempt when running', () => {
    const m = rootMessage(view(polling), new Date(T0 + 8000));
    expect(checklist(m)).toEqual([
      ':white_check_mark: Inspect prod-k8s · step 1 of 4 · 2.3s',
      ':arrows_counterclockwise: Wait for the control plane · step 2 of 4 · 5.0s · attempt 3 of 30: 2/3 control plane nodes ready',
      ':white_circle: Delete stale load balancers :warning: · step 3 of 4',
      ':white_circle: Report · step 4 of 4',
    ]);
    expect(blocksOf(m).at(-1)).toEqual({
      type: 'context',
      elements: [{ type: 'mrkdwn', text: 'To stop it: /capi cancel r-recover-1' }],
    });
  });

  it('should show the loop item, the inner step and the wait when a for_each item waits for approval', () => {
    const events: RunEvent[] = [
      ...polling,
      { ...wait, type: 'step.finished', status: 'ok', exitCode: 0, signal: null, durationMs: 95_000 },
      {
        ...loop,
        type: 'step.started',
        kind: 'for_each',
        title: 'Delete stale load balancers',
        destructive: true,
      },
      { ...inner1, type: 'step.started', kind: 'run', title: 'Delete lb-1', destructive: true },
      { ...inner1, type: 'approval.requested', approvalId: 'approval~x', request: request() },
    ];
    const m = rootMessage(view(events), new Date(T0 + 60_000));
    expectWithinLimits(m);
    expect(checklist(m)[2]).toBe(
      ':raised_hand: Delete stale load balancers :warning: · step 3 of 4 · 54.0s · item 1 of 2: `lb-1` · Delete lb-1 · *waiting for approval*',
    );
    expect(sectionTexts(m)[0]).toContain(
      '*Status* :raised_hand: *waiting for approval* for 1m 0s · 1 approval(s) pending',
    );
  });

  it('should show the outcome, total time and when it finished when the run has failed', () => {
    const why = 'inspect: exited 2: cluster prod-k8s not found';
    const events: RunEvent[] = [
      started,
      { ...inspect, type: 'step.started', kind: 'run', title: 'Inspect prod-k8s', destructive: false },
      stepFinished(inspect, 'failed', 800, 2, why),
      { type: 'run.finished', status: 'failed', message: why, durationMs: 900, failedStep: 'inspect' },
    ];
    const m = rootMessage(view(events), new Date(T0 + 3_600_000));
    expectWithinLimits(m);
    expect(sectionTexts(m)[0]?.split('\n').slice(3)).toEqual([
      '*Status* :x: *FAILED* after 900ms',
      `> ${why}`,
      '*Failed step* inspect',
      '_Bring a cluster back from CREATE_FAILED_',
    ]);
    expect(checklist(m)[0]).toBe(`:x: Inspect prod-k8s · step 1 of 4 · 800ms · _failed_ · ${why}`);
    expect(blocksOf(m).at(-1)?.elements?.[0]?.text).toBe(
      `Finished <!date^${epoch(3)}^{date_short_pretty} {time}|2024-05-01 10:00 UTC>`,
    );
  });

  it('should escape and redact runbook strings when titles and parameters hold markup and secrets', () => {
    const v = view([
      {
        ...started,
        runbook: 'recover <!channel>',
        summary: 'ping <!here> & <https://evil.example|click>',
        params: { cluster: 'a&b', note: `token=${slackBot}`, os_password: 'hunter2hunter2' },
        steps: [{ id: 'inspect', title: `<@U0EVIL01> uses ${slackBot}`, destructive: false }],
      },
    ]);
    const m = rootMessage(v, new Date(T0));
    expectWithinLimits(m);
    const text = `${m.text}\n${allText(m)}`;
    expect(text).not.toContain(slackBot);
    expect(text).not.toMatch(/<!channel>|<!here>|<@U0EVIL01>|<https:/);
    expect(text).toContain('recover &lt;!channel&gt; on site-a');
    expect(text).toContain('_ping &lt;!here&gt; &amp; &lt;https://evil.example|click&gt;_');
    expect(text).toContain(
      `*Parameters* cluster=\`a&amp;b\`, note=\`token=${REDACTED}\`, os_password=\`${REDACTED}\``,
    );
    expect(text).not.toContain('hunter2');
    expect(checklist(m)[0]).toBe(`:white_circle: &lt;@U0EVIL01&gt; uses ${REDACTED} · step 1 of 1`);
  });

  it('should cut titles with an ellipsis and still list every step when 40 steps have 10 KB titles', () => {
    const steps = Array.from({ length: 40 }, (_, i) => ({
      id: `step-${i + 1}`,
      title: `Step ${i + 1} ${'x'.repeat(10_000)}`,
      destructive: i % 2 === 0,
    }));
    const m = rootMessage(view([{ ...started, steps }]), new Date(T0));
    expectWithinLimits(m);
    const lines = checklist(m);
    expect(lines).toHaveLength(40);
    expect(lines[0]).toMatch(/^:white_circle: Step 1 x+… :warning: · step 1 of 40$/);
    expect(lines[39]).toMatch(/^:white_circle: Step 40 x+… · step 40 of 40$/);
  });

  it('should show a window around the current step and count the rest when 200 steps cannot all fit', () => {
    const steps = Array.from({ length: 200 }, (_, i) => ({
      id: `step-${i + 1}`,
      title: `Step ${i + 1} ${'<&>'.repeat(3000)}`,
      destructive: true,
    }));
    const events: RunEvent[] = [{ ...started, steps }];
    for (let i = 0; i < 120; i++) {
      const r = ref(`step-${i + 1}`, i + 1, 200);
      events.push({
        ...r,
        type: 'step.started',
        kind: 'run',
        title: steps[i]?.title ?? '',
        destructive: true,
      });
      if (i < 119)
        events.push({ ...r, type: 'step.finished', status: 'ok', exitCode: 0, signal: null, durationMs: 10 });
    }
    const m = rootMessage(view(events), new Date(T0 + 300_000));
    expectWithinLimits(m);
    expect(blocksOf(m).length).toBeLessThanOrEqual(BLOCK_KIT_LIMITS.blocks);
    expect(sectionTexts(m)[0]).toContain('run id: r-recover-1');
    const lines = checklist(m);
    const current = lines.find((l) => l.includes('step 120 of 200'));
    expect(current).toMatch(
      /^:arrows_counterclockwise: Step 120 (&lt;|&amp;|&gt;)+… :warning: · step 120 of 200 · /,
    );
    expect(lines[0]).toMatch(/^… steps 1-\d+ not shown: \d+ ok$/);
    expect(lines.at(-1)).toMatch(/^… steps \d+-200 not shown: \d+ pending$/);
    // Every step is either shown or counted, exactly once.
    const counted = [lines[0], lines.at(-1)].map((l) => /steps (\d+)-(\d+)/.exec(l ?? ''));
    const hidden = counted.reduce((n, c) => n + Number(c?.[2]) - Number(c?.[1]) + 1, 0);
    expect(hidden + lines.length - 2).toBe(200);
  });

  it('should say so when a runbook has no steps', () => {
    const m = rootMessage(view([{ ...started, steps: [] }]), new Date(T0));
    expectWithinLimits(m);
    expect(checklist(m)).toEqual(['_This runbook has no steps._']);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('threadMessage', () => {
  it('should post nothing when the event is one the root message shows instead', () => {
    const quiet: RunEvent[] = [
      started,
      { type: 'preflight', home: '/root', tools: [] },
      { ...inspect, type: 'step.output', stream: 'stdout', line: 'x' },
      { ...wait, type: 'poll.attempt', attempt: 1, of: 3, summary: 'not yet' },
      { ...inner1, type: 'approval.requested', approvalId: 'approval~x', request: request() },
    ];
    expect(quiet.map((e) => threadMessage(entry(e)))).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('should post nothing when a step starts, decides or is skipped by its guard: its one post comes when it finishes', () => {
    const quiet: RunEvent[] = [
      { ...inner1, type: 'step.started', kind: 'run', title: 'Delete lb-1', destructive: true },
      { ...wait, type: 'decision', message: 'control plane is up: skipping the rebuild' },
      { ...inner1, type: 'guard.skipped', message: 'lb-1 is already gone' },
    ];
    expect(quiet.map((e) => threadMessage(entry(e)))).toEqual([undefined, undefined, undefined]);
  });

  it('should show outcome, duration and the runbook summary, and no raw output, when a parsed step finishes', () => {
    const pods = Array.from(
      { length: 30 },
      (_, i) => `    { "metadata": { "name": "capi-controller-${i}" } },`,
    );
    const json = ['{', '  "items": [', ...pods, '  ]', '}'];
    const m = threadMessage(
      entry({
        ...inspect,
        type: 'step.finished',
        status: 'ok',
        exitCode: 0,
        signal: null,
        durationMs: 2300,
        summary: '12 controller pods Running',
      }),
      { title: 'Check every CAPI controller pod is Running', output: json },
    ) as SlackMessage;
    expectWithinLimits(m);
    expect(m.text).toBe(
      'Step 1 of 4 ok: Check every CAPI controller pod is Running · 12 controller pods Running',
    );
    expect(sectionTexts(m)).toEqual([
      ':white_check_mark: *Step 1 of 4* ok: Check every CAPI controller pod is Running · 2.3s\n' +
        '• 12 controller pods Running\n' +
        '_Output: 34 lines, in the log file below_',
    ]);
    expect(allText(m)).not.toContain('"items"');
  });

  it("should fold the step's decisions, a poll's last reading and a loop's item count into its one post", () => {
    const tl = entries([
      started,
      {
        ...wait,
        type: 'step.started',
        kind: 'poll',
        title: 'Wait for the control plane',
        destructive: false,
      },
      { ...wait, type: 'step.output', stream: 'stdout', line: 'load 3.1' },
      { ...wait, type: 'poll.attempt', attempt: 7, of: 30, summary: '3/3 control plane nodes ready' },
      { ...wait, type: 'decision', message: 'control plane is up: skipping the rebuild' },
      { ...wait, type: 'step.finished', status: 'ok', exitCode: 0, signal: null, durationMs: 61_000 },
      { ...loop, type: 'step.started', kind: 'for_each', title: 'Delete stale LBs', destructive: true },
      { ...inner1, type: 'step.started', kind: 'run', title: 'Delete lb-1', destructive: true },
      { ...inner1, type: 'guard.skipped', message: 'lb-1 is already gone' },
      {
        ...inner1,
        type: 'step.finished',
        status: 'skipped',
        exitCode: null,
        signal: null,
        durationMs: 800,
        message: 'lb-1 is already gone',
      },
      { ...loop, type: 'step.finished', status: 'ok', exitCode: null, signal: null, durationMs: 900 },
    ]);
    const post = (i: number) => {
      const e = tl[i]?.event;
      if (e?.type !== 'step.finished') throw new Error(`entry ${i} is not a step.finished`);
      return sectionTexts(
        threadMessage(tl[i] as (typeof tl)[number], stepContext(tl.slice(0, i + 1), e)) as SlackMessage,
      );
    };
    expect(post(5)).toEqual([
      ':white_check_mark: *Step 2 of 4* ok: Wait for the control plane · 1m 1s\n' +
        '• control plane is up: skipping the rebuild\n' +
        '• attempt 7 of 30: 3/3 control plane nodes ready',
    ]);
    // The guard's reason is said once, not again as the step's message.
    expect(post(9)).toEqual([
      ':fast_forward: *Step 3 of 4* · item 1 of 2: `lb-1` skipped: Delete lb-1 · 800ms\n• lb-1 is already gone',
    ]);
    expect(post(10)).toEqual([':white_check_mark: *Step 3 of 4* ok: Delete stale LBs · 900ms\n• 2 items']);
  });

  it('should show a short output as the finding of a step that says nothing else, and why a step failed', () => {
    const ok = threadMessage(
      entry({ ...inspect, type: 'step.finished', status: 'ok', exitCode: 0, signal: null, durationMs: 40 }),
      { title: 'Make sure the mgmt kubeconfig exists', output: ['kubeconfig present: /home/ops/capi.kc'] },
    ) as SlackMessage;
    expect(sectionTexts(ok)).toEqual([
      ':white_check_mark: *Step 1 of 4* ok: Make sure the mgmt kubeconfig exists · 40ms',
      '```\nkubeconfig present: /home/ops/capi.kc\n```',
    ]);
    // Parsed output (`-f json`) is data, never a finding of its own: it goes to the log file.
    const parsed = threadMessage(
      entry({ ...inspect, type: 'step.finished', status: 'ok', exitCode: 0, signal: null, durationMs: 40 }),
      { title: 'Read the VM', output: ['{"status": "ACTIVE"}'], parsed: true },
    ) as SlackMessage;
    expect(sectionTexts(parsed)).toEqual([
      ':white_check_mark: *Step 1 of 4* ok: Read the VM · 40ms\n_Output: 1 line, in the log file below_',
    ]);
    const output = Array.from({ length: 100 }, (_, i) => `line ${i + 1}`);
    const failed = threadMessage(
      entry(stepFinished(inspect, 'failed', 61_000, 1, 'inspect: exited 1: line 100')),
      { output },
    ) as SlackMessage;
    expectWithinLimits(failed);
    expect(sectionTexts(failed)).toEqual([
      ':x: *Step 1 of 4* failed: inspect · exit 1 · 1m 1s\n> inspect: exited 1: line 100\n' +
        '_Output: 100 lines, in the log file below_',
    ]);
  });

  it('should neutralise code fences and escape mentions when a short output tries to break out of the code block', () => {
    const m = threadMessage(
      entry({ ...inspect, type: 'step.finished', status: 'ok', exitCode: 0, signal: null, durationMs: 5 }),
      {
        output: ['```', '<!channel> look', '``` *bold* <https://evil.example|x>', `export TOKEN=${slackBot}`],
      },
    ) as SlackMessage;
    const code = sectionTexts(m)[1] ?? '';
    expect(code.match(/```/g)).toHaveLength(2);
    expect(code).not.toMatch(/<!channel>|<https:/);
    expect(code).not.toContain(slackBot);
    expect(code.split('\n').slice(1, 5)).toEqual([
      '`\u200b`\u200b`',
      '&lt;!channel&gt; look',
      '`\u200b`\u200b` *bold* &lt;https://evil.example|x&gt;',
      `export TOKEN=${REDACTED}`,
    ]);
  });

  it('should stay within the limits when the output has 5000 lines of 10 KB each and the findings are huge', () => {
    const output = Array.from({ length: 5000 }, (_, i) => `${i} ${'<&>`'.repeat(2500)}`);
    const m = threadMessage(
      entry({
        ...inspect,
        type: 'step.finished',
        status: 'failed',
        exitCode: 1,
        signal: null,
        durationMs: 1,
        message: 'm'.repeat(10_000),
        summary: 's'.repeat(10_000),
      }),
      { title: 't'.repeat(10_000), output, findings: Array.from({ length: 200 }, () => '<&>'.repeat(3000)) },
    ) as SlackMessage;
    expectWithinLimits(m);
    expect(allText(m)).toContain('_Output: 5000 lines, in the log file below_');
    expect(allText(m)).toMatch(/and \d+ more in `\/capi timeline`/);
  });

  it('should post nothing of its own when an approval is decided or voted, its attempt sent, or the run resumes: the approval message tells it', () => {
    const decisions = [
      { approved: true as const, by: 'U0BOB0001', at: at(30) },
      { approved: false as const, by: 'U0BOB0001', at: at(30), reason: 'denied' as const, note: 'freeze' },
      { approved: false as const, by: 'expiry', at: at(30), reason: 'expired' as const },
    ];
    for (const decision of decisions) {
      expect(
        threadMessage(entry({ ...inner1, type: 'approval.decided', approvalId: 'approval~x', decision })),
      ).toBeUndefined();
    }
    const quiet: RunEvent[] = [
      { type: 'approval.voted', approvalId: 'approval~x', by: 'U0BOB0001', count: 1, of: 2 },
      { ...inner1, type: 'approval.superseded', approvalId: 'a~1', supersededBy: 'a~1~r2', why: 'stale' },
      {
        ...inner1,
        type: 'attempt.started',
        attemptId: 'a1',
        approvalId: 'approval~x',
        command: 'rm',
        at: at(31),
      },
      { type: 'run.resumed', reason: 'approval decided', atStep: 'delete-lbs' },
    ];
    for (const e of quiet) expect(threadMessage(entry(e))).toBeUndefined();
  });

  it('should post the total time from the request, the wait for approval apart, when a run ends', () => {
    const texts = [
      threadMessage(
        entry({
          type: 'run.finished',
          status: 'succeeded',
          message: 'recover finished: every step passed',
          durationMs: 87_000,
          waitingMs: 71_000,
        }),
      ),
      threadMessage(
        entry({
          type: 'run.finished',
          status: 'cancelled',
          message: 'cancelled by U0ALICE01',
          durationMs: 5000,
          failedStep: 'wait-ready',
        }),
      ),
    ].map((m) => sectionTexts(m as SlackMessage).join('\n'));
    expect(texts).toEqual([
      ':white_check_mark: *Run succeeded* after 1m 27s, 1m 11s of it waiting for approval\n> recover finished: every step passed',
      ':no_entry_sign: *Run CANCELLED* after 5.0s\n> cancelled by U0ALICE01\n*Failed step* wait-ready',
    ]);
  });

  it('should gather the title and the output of the latest attempt when stepContext reads the timeline', () => {
    const inner2 = ref('delete-lbs/delete-lb', 3, 4, { n: 2, of: 2, label: 'lb-2' });
    const tl = entries([
      started,
      { ...inner1, type: 'step.started', kind: 'run', title: 'Delete lb-1', destructive: true },
      { ...inner1, type: 'step.output', stream: 'stdout', line: 'deleting lb-1' },
      { ...inner2, type: 'step.started', kind: 'run', title: 'Delete lb-2', destructive: true },
      { ...inner2, type: 'step.output', stream: 'stderr', line: 'lb-2: 409 conflict' },
      { ...inner2, type: 'step.started', kind: 'run', title: 'Delete lb-2 (again)', destructive: true },
      { ...inner2, type: 'step.output', stream: 'stdout', line: 'deleted lb-2' },
    ]);
    expect(stepContext(tl, inner2)).toEqual({ title: 'Delete lb-2 (again)', output: ['deleted lb-2'] });
    expect(stepContext(tl, inner1)).toEqual({ title: 'Delete lb-1', output: ['deleting lb-1'] });
    expect(stepContext(tl, ref('report', 4))).toEqual({ output: [] });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('exactly-once events in the thread', () => {
  it('should say what was sent, when and what to check when the outcome of an attempt is unknown', () => {
    const message =
      'OUTCOME UNKNOWN: `openstack loadbalancer failover lb-1` was sent at 2024-05-01T10:00:05.000Z. Check by hand: openstack loadbalancer show lb-1';
    const m = threadMessage(
      entry({ ...inner1, type: 'attempt.verified', attemptId: 'a1', tookEffect: false, message }),
    ) as SlackMessage;
    expectWithinLimits(m);
    expect(m.text).toBe('Step 3 of 4: OUTCOME UNKNOWN');
    expect(allText(m)).toContain('*Outcome unknown*');
    expect(allText(m)).toContain('was sent at 2024-05-01T10:00:05.000Z');
    expect(allText(m)).toContain('Check by hand: openstack loadbalancer show lb-1');
  });
});

describe('approvalMessage', () => {
  const now = new Date(T0);

  it('should show summary, exact command, targets, evidence, requester, expiry and two buttons when undecided', () => {
    const m = approvalMessage(approval(), now);
    expectWithinLimits(m);
    expect(m.text).toBe('Approval needed: Delete load balancer lb-1 (run r-recover-1)');
    const blocks = blocksOf(m);
    expect(blocks[0]).toEqual({
      type: 'header',
      text: { type: 'plain_text', text: 'Approval needed: Delete load balancer lb-1', emoji: true },
    });
    expect(sectionTexts(m)).toEqual([
      'Delete the stale load balancer that blocks the cluster delete\n' +
        '*Runbook* recover · run id: r-recover-1 · *Step 3 of 4* · item 1 of 2: `lb-1` (delete-lbs/delete-lb)',
      '*Will run:*\n```\nopenstack loadbalancer delete --cascade 6a1c0e2e-0d7b-4b8e-9a51-4f4f1d9c2b10\n```',
      '*Targets (1)*\n• `lb-1 (6a1c0e2e-0d7b-4b8e-9a51-4f4f1d9c2b10)`',
      '*Evidence (2)*\n• provisioning_status=ERROR for 3 days\n• no listeners',
    ]);
    expect(blocks.at(-2)?.elements?.[0]?.text).toBe(
      `Requested by <@U0ALICE01> at <!date^${epoch(0)}^{date_short_pretty} {time}|2024-05-01 10:00 UTC>` +
        ` · expires <!date^${epoch(900)}^{date_short_pretty} {time}|2024-05-01 10:15 UTC> (in 15m 0s)`,
    );
    expect(blocks.at(-1)).toEqual({
      type: 'actions',
      block_id: 'capi_approval',
      elements: [
        {
          type: 'button',
          action_id: APPROVE_ACTION_ID,
          text: { type: 'plain_text', text: 'Approve', emoji: true },
          style: 'danger',
          value: 'approval~r-recover-1~delete-lbs%2Fdelete-lb~0',
          confirm: {
            title: { type: 'plain_text', text: 'Approve this destructive step?', emoji: true },
            text: {
              type: 'mrkdwn',
              text:
                '*Delete load balancer lb-1*\nRuns once, exactly as shown above, on 1 target:\n' +
                '• lb-1 (6a1c0e2e-0d7b-4b8e-9a51-4f4f1d9c2b10)',
            },
            confirm: { type: 'plain_text', text: 'Approve', emoji: true },
            deny: { type: 'plain_text', text: 'Go back', emoji: true },
            style: 'danger',
          },
        },
        {
          type: 'button',
          action_id: 'capi_approve_reason',
          text: { type: 'plain_text', text: 'Approve with reason…', emoji: true },
          value: 'approval~r-recover-1~delete-lbs%2Fdelete-lb~0',
        },
        {
          type: 'button',
          action_id: DENY_ACTION_ID,
          text: { type: 'plain_text', text: 'Deny…', emoji: true },
          value: 'approval~r-recover-1~delete-lbs%2Fdelete-lb~0',
        },
      ],
    });
    expect([APPROVE_ACTION_ID, DENY_ACTION_ID]).toEqual(['capi_approve', 'capi_deny']);
  });

  it('should replace the buttons with who decided and when, keeping the rest, when the approval is decided', () => {
    const undecided = blocksOf(approvalMessage(approval(), now));
    const cases = [
      {
        decision: { approved: true as const, by: 'U0BOB0001', at: at(60) },
        via: 'slack',
        line: `:white_check_mark: *Approved* by <@U0BOB0001> at <!date^${epoch(60)}^{date_short_pretty} {time}|2024-05-01 10:01 UTC> via slack`,
        text: 'Approved: Delete load balancer lb-1 (run r-recover-1)',
      },
      {
        decision: {
          approved: false as const,
          by: 'U0BOB0001',
          at: at(60),
          reason: 'denied' as const,
          note: 'not now',
        },
        via: undefined,
        line: `:no_entry: *Denied* by <@U0BOB0001> at <!date^${epoch(60)}^{date_short_pretty} {time}|2024-05-01 10:01 UTC>: not now`,
        text: 'Denied: Delete load balancer lb-1 (run r-recover-1)',
      },
      {
        decision: { approved: false as const, by: 'expiry', at: at(900), reason: 'expired' as const },
        via: undefined,
        line: `:hourglass: *Expired* unanswered at <!date^${epoch(900)}^{date_short_pretty} {time}|2024-05-01 10:15 UTC>: nothing destructive was run`,
        text: 'Expired: Delete load balancer lb-1 (run r-recover-1)',
      },
    ];
    for (const c of cases) {
      const m = approvalMessage(
        approval({ decision: c.decision, ...(c.via ? { decidedVia: c.via } : {}) }),
        now,
      );
      expectWithinLimits(m);
      const blocks = blocksOf(m);
      expect(m.text).toBe(c.text);
      expect(blocks.some((b) => b.type === 'actions')).toBe(false);
      // The header says where the decision stands; everything else the request said stays as it was.
      expect(blocks[0]).toEqual({
        type: 'header',
        text: { type: 'plain_text', text: `${c.text.split(':')[0]}: Delete load balancer lb-1`, emoji: true },
      });
      expect(blocks.slice(1, -1)).toEqual(undecided.slice(1, -1));
      expect(blocks.at(-1)).toEqual({ type: 'context', elements: [{ type: 'mrkdwn', text: c.line }] });
    }
  });

  it('should drop the buttons and point to the new request when the approval was superseded', () => {
    const m = approvalMessage(approval({ superseded: { at: at(120), why: 'changed' } }), now);
    expectWithinLimits(m);
    expect(m.text).toBe('Superseded: Delete load balancer lb-1 (run r-recover-1)');
    expect(blocksOf(m).some((b) => b.type === 'actions')).toBe(false);
    expect(allText(m)).toContain('*Superseded*');
    expect(allText(m)).toContain('the action changed since it was asked');
  });

  it('should offer no buttons when the approval is past its expiry but not yet recorded as expired', () => {
    const m = approvalMessage(approval(), new Date(T0 + 901_000));
    expect(blocksOf(m).some((b) => b.type === 'actions')).toBe(false);
    expect(blocksOf(m).at(-1)?.elements?.[0]?.text).toBe(
      ':hourglass: *Expired* unanswered: it counts as a denial, nothing destructive will run',
    );
  });

  it('should redact and escape the commands, targets and evidence when they hold secrets and markup', () => {
    const m = approvalMessage(
      approval({
        request: request({
          commands: [`openstack --os-password hunter2hunter2 server delete x && echo '<!channel>'`],
          targets: ['<@U0EVIL01>'],
          evidence: [`token: ${slackBot}`],
        }),
      }),
      now,
    );
    const text = allText(m);
    expect(text).not.toMatch(/hunter2|<!channel>|<@U0EVIL01>/);
    expect(text).not.toContain(slackBot);
    expect(sectionTexts(m).slice(1)).toEqual([
      `*Will run:*\n\`\`\`\nopenstack --os-password ${REDACTED} server delete x &amp;&amp; echo '&lt;!channel&gt;'\n\`\`\``,
      '*Targets (1)*\n• `&lt;@U0EVIL01&gt;`',
      `*Evidence (1)*\n• token: ${REDACTED}`,
    ]);
  });

  it('should stay within the limits and say what is not shown when every field is huge', () => {
    const m = approvalMessage(
      approval({
        request: request({
          title: 'T'.repeat(10_000),
          summary: '<!channel>'.repeat(2000),
          commands: Array.from({ length: 30 }, (_, i) =>
            Array.from({ length: 200 }, (_, j) => `cmd${i} line${j} ${'```<&>'.repeat(50)}`).join('\n'),
          ),
          targets: Array.from({ length: 100 }, (_, i) => `target-${i} ${'x'.repeat(1000)}`),
          evidence: Array.from({ length: 100 }, (_, i) => `evidence ${i}`),
        }),
      }),
      now,
    );
    expectWithinLimits(m);
    const text = allText(m);
    expect(text).toMatch(/:warning: \d+ characters of the command\(s\) are not shown here/);
    expect(text).toContain('*Targets (100)*');
    expect(text).toMatch(/… and \d+ more/);
    expect(text).toContain('*Will run (1 of 30):*');
    expect(blocksOf(m).at(-1)?.type).toBe('actions');
  });

  it('should show a command line cut with an ellipsis and count it when one line is longer than a section', () => {
    const m = approvalMessage(
      approval({ request: request({ commands: [`echo ${'a'.repeat(5000)}`] }) }),
      now,
    );
    expectWithinLimits(m);
    expect(allText(m)).toMatch(/```\necho a+…\n```/);
    expect(allText(m)).toMatch(/:warning: \d+ characters of the command\(s\) are not shown here/);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('Block Kit limits for any input', () => {
  /** Deterministic generator: a failing seed reproduces. */
  function rng(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s * 1_664_525 + 1_013_904_223) >>> 0;
      return s / 2 ** 32;
    };
  }
  const ALPHABET = ['a', 'Z', ' ', '\n', '<', '>', '&', '`', '*', '_', '|', '@', 'é', '😀', '\t', '!'];

  function junk(r: () => number, max: number): string {
    const n = Math.floor(r() ** 3 * max);
    let out = '';
    for (let i = 0; i < n; i++) out += ALPHABET[Math.floor(r() * ALPHABET.length)];
    return out;
  }

  it('should keep every builder within the limits when fed 30 seeds of random adversarial input', () => {
    const statuses = ['ok', 'failed', 'skipped', 'denied', 'cancelled', 'interrupted'] as const;
    for (let seed = 1; seed <= 30; seed++) {
      const r = rng(seed);
      const steps = Array.from({ length: 1 + Math.floor(r() * 200) }, (_, i) => ({
        id: `s${i}`,
        title: junk(r, 5000),
        destructive: r() < 0.3,
      }));
      const events: RunEvent[] = [
        {
          ...started,
          runbook: junk(r, 500),
          summary: junk(r, 5000),
          site: junk(r, 500),
          requestedBy: junk(r, 300),
          params: Object.fromEntries(
            Array.from({ length: Math.floor(r() * 50) }, (_, i) => [`p${i}`, junk(r, 2000)]),
          ),
          steps,
        },
      ];
      const output: string[] = [];
      for (const [i, s] of steps.entries()) {
        if (r() < 0.3) break;
        const sr = ref(s.id, i + 1, steps.length);
        events.push({
          ...sr,
          type: 'step.started',
          kind: 'poll',
          title: junk(r, 5000),
          destructive: s.destructive,
        });
        events.push({ ...sr, type: 'poll.attempt', attempt: 1, of: 30, summary: junk(r, 5000) });
        output.push(junk(r, 20_000));
        events.push({
          ...sr,
          type: 'step.finished',
          status: statuses[Math.floor(r() * statuses.length)] ?? 'ok',
          exitCode: 1,
          signal: null,
          durationMs: 5,
          message: junk(r, 5000),
        });
      }
      events.push({
        type: 'run.finished',
        status: 'failed',
        message: junk(r, 10_000),
        durationMs: 5,
        failedStep: junk(r, 300),
      });
      const v = view(events);
      expectWithinLimits(rootMessage(v, new Date(T0 + 1000)));
      for (const e of entries(events)) {
        const m = threadMessage(e, { title: junk(r, 5000), output });
        if (m) expectWithinLimits(m);
      }
      const catchUp = catchUpMessage(entries(events), 0, events.length, inner1);
      if (catchUp) expectWithinLimits(catchUp);
      const m = approvalMessage(
        approval({
          request: request({
            title: junk(r, 10_000),
            summary: junk(r, 10_000),
            commands: Array.from({ length: Math.floor(r() * 10) }, () => junk(r, 20_000)),
            targets: Array.from({ length: Math.floor(r() * 100) }, () => junk(r, 3000)),
            evidence: Array.from({ length: Math.floor(r() * 100) }, () => junk(r, 3000)),
            requestedBy: junk(r, 300),
          }),
          ...(r() < 0.5
            ? {
                decision: {
                  approved: false,
                  by: junk(r, 300),
                  at: at(1),
                  reason: 'denied',
                  note: junk(r, 5000),
                },
              }
            : {}),
        }),
        new Date(T0),
      );
      expectWithinLimits(m);
    }
  });

  it('should escape exactly the three characters Slack reserves when escapeSlack is applied', () => {
    expect(escapeSlack('a & b < c > d "e" \'f\'')).toBe('a &amp; b &lt; c &gt; d "e" \'f\'');
  });
});

describe("the decision's story on its approval message", () => {
  const id = 'approval~r-recover-1~delete-lbs%2Fdelete-lb~0';
  const now = new Date(T0 + 120_000);
  const approved = { approved: true as const, by: 'U0BOB0001', at: at(30) };
  const asked: RunEvent[] = [
    started,
    stepStarted(loop, 'Delete stale load balancers', 'for_each', true),
    stepStarted(inner1, 'Delete load balancer lb-1', 'run', true),
    { ...inner1, type: 'approval.requested', approvalId: id, request: request() },
    { type: 'run.resumed', reason: 'approval decided', atStep: 'delete-lbs' },
    // A resumed run finds the decision it was parked on: no new request, the round is still this approval's.
    stepStarted(inner1, 'Delete load balancer lb-1', 'run', true),
    { ...inner1, type: 'approval.decided', approvalId: id, decision: approved },
  ];
  const sent: RunEvent = {
    ...inner1,
    type: 'attempt.started',
    attemptId: 'at-1',
    approvalId: id,
    command: 'rm',
    at: at(31),
  };
  const told = (events: readonly RunEvent[], decision: StoredApproval['decision'] = approved) => {
    const tl = entries(events);
    return approvalMessage(approval(decision ? { decision } : {}), now, { story: approvalStory(tl, id) });
  };

  it('should tell asked, decided, sent and done in one message, and give no post of their own', () => {
    const events = [
      ...asked,
      sent,
      stepOutput(inner1, 'deleted'),
      { ...(stepFinished(inner1, 'ok', 1200) as object), summary: 'lb-1 is gone' } as RunEvent,
    ];
    const m = told(events);
    expectWithinLimits(m);
    expect(m.text).toBe('Approved: Delete load balancer lb-1 (run r-recover-1) · done in 1.2s');
    const t = allText(m);
    expect(t).toContain(`:white_check_mark: *Approved* by <@U0BOB0001> at <!date^${epoch(30)}^`);
    expect(t).toContain(`:rocket: *Sent* at <!date^${epoch(31)}^`);
    expect(t).toContain(':white_check_mark: *Done*: exit 0 in 1.2s · lb-1 is gone');
    const tl = entries(events);
    for (const i of [6, 7, 9]) expect(threadPost(tl, i)).toMatchObject({ kind: 'approval', approvalId: id });
  });

  it("should tell what the item's next steps read after the action, there and not in posts of their own", () => {
    const watch = ref('delete-lbs/watch', 3, 4, { n: 1, of: 2, label: 'lb-1' });
    const events: RunEvent[] = [
      ...asked,
      sent,
      stepFinished(inner1, 'ok', 1200),
      stepStarted(watch, 'Watch lb-1 until ACTIVE', 'poll'),
      { ...watch, type: 'poll.attempt', attempt: 3, of: 60, summary: 'prov=ACTIVE op=ONLINE' },
      stepFinished(watch, 'ok', 30_000),
    ];
    const m = told(events);
    expect(allText(m)).toContain(
      ':white_check_mark: *Then* Watch lb-1 until ACTIVE: done in 30.0s · attempt 3 of 60: prov=ACTIVE op=ONLINE',
    );
    expect(threadPost(entries(events), events.length - 1)).toMatchObject({
      kind: 'approval',
      approvalId: id,
    });
    const failed = told([
      ...events.slice(0, -1),
      stepFinished(watch, 'failed', 15_000, null, 'failover of lb-1 FAILED: read octavia-worker.log'),
    ]);
    expect(failed.text).toMatch(/· Watch lb-1 until ACTIVE: failed$/);
    expect(allText(failed)).toContain(
      ':x: *Then* Watch lb-1 until ACTIVE: FAILED in 15.0s · attempt 3 of 60: prov=ACTIVE op=ONLINE · failover of lb-1 FAILED: read octavia-worker.log',
    );
    // The next item is its own story.
    const inner2 = ref('delete-lbs/delete-lb', 3, 4, { n: 2, of: 2, label: 'lb-2' });
    const next = entries([
      ...events,
      stepStarted(inner2, 'Delete lb-2', 'run', true),
      stepFinished(inner2, 'skipped', 5, null, 'gone'),
    ]);
    expect(threadPost(next, next.length - 1)?.kind).toBe('post');
  });

  it('should say FAILED with the exit and why, or that the check right before acting found it unneeded', () => {
    const failed = told([
      ...asked,
      sent,
      stepFinished(inner1, 'failed', 900, 2, 'delete-lbs/delete-lb: exited 2; it is not retried'),
    ]);
    expect(failed.text).toMatch(/· failed$/);
    expect(allText(failed)).toContain(
      ':x: *FAILED*: exit 2 in 900ms · delete-lbs/delete-lb: exited 2; it is not retried',
    );
    const skipped = told([...asked, stepFinished(inner1, 'skipped', 300, null, 'lb-1 is already gone')]);
    expect(allText(skipped)).toContain(
      ':fast_forward: *Not run*: the check right before acting found lb-1 is already gone',
    );
    expect(allText(skipped)).not.toContain('*Sent*');
  });

  it('should say OUTCOME UNKNOWN with how to check when reading back cannot tell, or the run ended before the command returned', () => {
    const message =
      'OUTCOME UNKNOWN: `rm` was sent at 2024-05-01T10:00:31.000Z by an agent that stopped. Check by hand: openstack loadbalancer show lb-1';
    const verified = told([
      ...asked,
      sent,
      { type: 'run.resumed', reason: 'agent restarted', atStep: 'delete-lbs' },
      stepStarted(inner1, 'Delete load balancer lb-1', 'run', true),
      { ...inner1, type: 'attempt.verified', attemptId: 'at-1', tookEffect: false, message },
      stepFinished(inner1, 'failed', 50, null, `delete-lbs/delete-lb: ${message}`),
    ]);
    expect(verified.text).toMatch(/· OUTCOME UNKNOWN$/);
    expect(allText(verified)).toContain(
      `:rotating_light: *OUTCOME UNKNOWN*: ${message.slice('OUTCOME UNKNOWN: '.length)}`,
    );
    // A failure on record before the take-over is known, not unknown: never sent again, and said so.
    const onRecord =
      'openstack loadbalancer failover lb-1 was sent at 10:00:31 and exited 1; it is not retried';
    const known = told([
      ...asked,
      sent,
      stepStarted(inner1, 'Delete load balancer lb-1', 'run', true),
      { ...inner1, type: 'attempt.verified', attemptId: 'at-1', tookEffect: false, message: onRecord },
    ]);
    expect(known.text).toMatch(/· failed$/);
    expect(allText(known)).toContain(`:x: *FAILED* before a take-over: ${onRecord}`);
    expect(allText(known)).not.toContain('OUTCOME UNKNOWN');
    const ended = told([
      ...asked,
      sent,
      { type: 'run.finished', status: 'failed', message: 'agent lost', durationMs: 60_000 },
    ]);
    expect(ended.text).toMatch(/· OUTCOME UNKNOWN$/);
    expect(allText(ended)).toContain(
      ':rotating_light: *OUTCOME UNKNOWN*: the run ended before the command reported back',
    );
  });

  it('should never say Approved by when the agent refused the decision on record, and say why', () => {
    for (const by of ['U0MALLORY1', 'S0APPROVERS']) {
      const m = told(
        [
          ...asked.slice(0, 6),
          { ...inner1, type: 'approval.rejected', approvalId: id, by, reason: 'it carries no signature' },
          stepFinished(inner1, 'failed', 10, null, 'refused by the agent'),
        ],
        { approved: true, by, at: at(30) },
      );
      expectWithinLimits(m);
      expect(m.text).toBe('Refused by the agent: Delete load balancer lb-1 (run r-recover-1)');
      const t = allText(m);
      expect(t).not.toMatch(/Approved|\*Sent\*|\*Done\*|FAILED|subteam/);
      expect(t).toContain('*Decision refused by the agent*');
      expect(t).toContain(`was not accepted (it carries no signature). Nothing destructive was run`);
      expect(t).toContain(
        by === 'U0MALLORY1' ? "recorded as <@U0MALLORY1>'s" : "recorded as `S0APPROVERS`'s",
      );
    }
  });
});

describe('threadPost: a post when something was found or changed', () => {
  const finished = (r: typeof inspect, status: Parameters<typeof stepFinished>[1], more: object = {}) =>
    ({ ...(stepFinished(r, status, 500, status === 'ok' ? 0 : 1) as object), ...more }) as RunEvent;

  it('should leave to the checklist a check that passed with its summary and a wait that converged', () => {
    const tl = entries([
      started,
      stepStarted(inspect, 'Inspect the cluster'),
      finished(inspect, 'ok', { summary: '3 of 3 nodes Ready' }),
      stepStarted(wait, 'Wait for the control plane', 'poll'),
      { ...wait, type: 'poll.attempt', attempt: 2, of: 30, summary: 'ready' },
      finished(wait, 'ok'),
    ]);
    expect(threadPost(tl, 2)).toBeUndefined();
    expect(threadPost(tl, 5)).toBeUndefined();
    const root = checklist(rootMessage(view(tl.map((e) => e.event)), now()));
    expect(root[0]).toMatch(
      /^:white_check_mark: Inspect the cluster · step 1 of 4 · 500ms · 3 of 3 nodes Ready$/,
    );
  });

  it('should post a step that decided something or did not pass', () => {
    const tl = entries([
      started,
      stepStarted(inspect, 'Inspect the cluster'),
      { ...inspect, type: 'decision', message: '2 LBs in ERROR -> repair' },
      finished(inspect, 'ok'),
      stepStarted(wait, 'Wait for the control plane', 'poll'),
      finished(wait, 'failed', { message: 'wait-ready: never Ready' }),
    ]);
    expect(threadPost(tl, 3)).toMatchObject({
      kind: 'post',
      message: { text: expect.stringContaining('2 LBs in ERROR') },
    });
    expect(threadPost(tl, 5)).toMatchObject({
      kind: 'post',
      message: { text: expect.stringContaining('never Ready') },
    });
  });

  it("should not repeat a loop's end that one of its items already told", () => {
    const why = 'delete-lbs/delete-lb: denied by U0BOB0001; nothing destructive was run';
    const tl = entries([
      started,
      stepStarted(loop, 'Delete stale load balancers', 'for_each', true),
      stepStarted(inner1, 'Delete load balancer lb-1', 'run', true),
      stepFinished(inner1, 'failed', 10, 1, why),
      stepFinished(loop, 'failed', 20, null, why),
      stepStarted(loop, 'Delete stale load balancers', 'for_each', true),
      stepStarted(inner1, 'Delete load balancer lb-1', 'run', true),
      stepFinished(inner1, 'ok', 10),
      stepFinished(loop, 'failed', 20, null, 'delete-lbs: for_each `lbs` is not a list'),
    ]);
    expect(threadPost(tl, 3)?.kind).toBe('post');
    expect(threadPost(tl, 4)).toBeUndefined();
    expect(threadPost(tl, 8)?.kind).toBe('post');
  });

  it('should name a loop item as a person knows it, its ids in a code span after it', () => {
    const named = ref('delete-lbs/delete-lb', 3, 4, {
      n: 1,
      of: 2,
      label: 'lb-1-id',
      name: 'kube-api LB, VIP 10.0.0.5',
    });
    const post = threadMessage(
      entry(stepFinished(named, 'skipped', 5, null, 'already gone')),
    ) as SlackMessage;
    expect(allText(post)).toContain('item 1 of 2: kube-api LB, VIP 10.0.0.5 `lb-1-id`');
    expect(
      allText(threadMessage(entry(stepFinished(inner1, 'skipped', 5, null, 'gone'))) as SlackMessage),
    ).toContain('item 1 of 2: `lb-1`');
  });
});

const now = () => new Date(T0 + 60_000);
