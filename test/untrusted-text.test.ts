import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ApprovalRequest, RunEvent } from '../src/engine/events.js';
import { renderMarkdown } from '../src/fronts/postmortem.js';
import { revealInvisible, terminalText } from '../src/fronts/sanitize.js';
import { createTerminalTimeline, formatEvent } from '../src/fronts/terminal.js';
import type { RunRecord, StoredApproval } from '../src/service/run-service.js';
import { approvalMessage, threadMessage } from '../src/slack/blocks.js';
import { capiCommands } from '../src/slack/command.js';
import type { CapiContext } from '../src/slack/context.js';
import { escapeSlack, slackName } from '../src/slack/escape.js';
import { statusCommand } from '../src/slack/listeners/commands/status.js';
import { stepLogFile } from '../src/slack/log-file.js';
import { recordedRun, scriptedApprovals, testRunbook } from './support/engine.js';
import {
  approvalRequest,
  atSecond,
  entries,
  ref,
  runStarted,
  stepFinished,
  stepOutput,
} from './support/events.js';
import { ScriptedExecutor } from './support/scripted-executor.js';

/** Names a hostile cloud (or a careless operator) could give a server, an LB or a cluster. */
const RLO = '\u202E';
const ZWSP = '\u200B';
const spoofed = `capi-test-1${RLO}2-tset-ipac`;
const lookalike = `capi${ZWSP}-mgmt-v2`;
const markup = '*prod* _all_ ~gone~ `rm -rf` https://evil.example/login @here <!channel> <@U0BOSS>';

const inner = ref('sweep/delete', 2, 3, { n: 1, of: 1, label: lookalike });
const request = (over: Partial<ApprovalRequest> = {}): ApprovalRequest =>
  approvalRequest(inner, {
    summary: 'Delete the orphaned amphora',
    commands: ['openstack server delete "$SERVER_ID"'],
    targets: [spoofed, lookalike, markup],
    evidence: ['not in octavia amphora list'],
    ...over,
  });
const stored = (r: ApprovalRequest): StoredApproval => ({
  approvalId: 'approval~r1~sweep%2Fdelete~1',
  runId: 'r1',
  stepId: 'sweep/delete',
  request: r,
  requestedAt: atSecond(0),
  expiresAt: atSecond(900),
});

/** The text a reader of the Block Kit message sees, every block concatenated. */
const textOf = (blocks: unknown): string => JSON.stringify(blocks);

describe('Slack: untrusted names', () => {
  const text = textOf(approvalMessage(stored(request()), new Date(Date.parse(atSecond(1)))).blocks);

  it('should show bidi and zero-width characters as [U+XXXX] when a target holds them', () => {
    expect(text).not.toContain(RLO);
    expect(text).not.toContain(ZWSP);
    expect(text).toContain('`capi-test-1[U+202E]2-tset-ipac`');
    expect(text).toContain('`capi[U+200B]-mgmt-v2`');
  });

  it('should put each target in a code span so it cannot format, link or mention', () => {
    expect(text).toContain(
      '• `*prod* _all_ ~gone~ [U+0060]rm -rf[U+0060] https://evil.example/login @here &lt;!channel&gt; &lt;@U0BOSS&gt;`',
    );
    expect(text).not.toMatch(/<!channel>|<@U0BOSS>/);
  });

  it('should make two targets that differ by an invisible character look different', () => {
    expect(slackName(lookalike, 80)).not.toBe(slackName('capi-mgmt-v2', 80));
  });

  it('should show the loop item as a name when a thread post names it', () => {
    const post = threadMessage(
      {
        id: '1-0',
        at: atSecond(1),
        event: {
          ...inner,
          type: 'step.finished',
          status: 'skipped',
          exitCode: null,
          signal: null,
          durationMs: 5,
          message: 'already gone',
        },
      },
      {},
    );
    expect(textOf(post?.blocks)).toContain('item 1 of 1: `capi[U+200B]-mgmt-v2`');
  });

  it('should escape control characters and keep Slack entities when escapeSlack sees them', () => {
    expect(escapeSlack(`a\rb\u0007<!here>${RLO}`)).toBe('a^Mb^G&lt;!here&gt;[U+202E]');
  });
});

describe('approval summaries: names from the cloud', () => {
  // A load balancer whose name is a link, a mention and formatting, read from the cloud and named in the approval.
  const runbook = testRunbook(`
steps:
  - id: read
    title: Read the load balancer
    run: lb-show
    parse: json
    capture:
      lb: out
  - id: failover
    title: Fail over the load balancer
    destructive: true
    guard:
      - run: lb-show
        skip_when: "false"
        say: never
    approval:
      summary: "Fail over load balancer {lb.name} ({lb.id})"
      targets: ["load balancer {lb.id}"]
      evidence: ["{lb.name} is provisioning={lb.status}"]
    verify:
      run: lb-show
      took_effect: "true"
      say: done
      check_by_hand: lb-show
    run: lb-failover
`);
  const name = 'https://evil.example/sso *now* <!here>';
  const lb = { id: 'lb-1', name, status: 'ERROR' };

  it('should put every name the cloud chose in a code span, so no summary or evidence can link or format', async () => {
    const executor = new ScriptedExecutor([['lb-show', { stdout: JSON.stringify(lb) }]]);
    const approvals = scriptedApprovals(['deny']);
    const { outcome } = recordedRun(runbook, executor, { approvals });
    expect((await outcome).status).toBe('denied');
    const [asked] = approvals.requests;
    expect(asked?.summary).toBe(`Fail over load balancer \`${name}\` (\`lb-1\`)`);
    expect(asked?.evidence).toEqual([`\`${name}\` is provisioning=\`ERROR\``]);

    const sections = approvalMessage(stored(asked as ApprovalRequest), new Date())
      .blocks.flatMap((b) => ((b as { type?: string }).type === 'section' ? [JSON.stringify(b)] : []))
      .join('\n');
    // Outside the code spans, Slack would make a link of the URL: none is left there.
    const outsideSpans = sections.replace(/`[^`]*`/g, '');
    expect(outsideSpans).not.toContain('https://');
    expect(outsideSpans).not.toContain('*now*');
    expect(sections).toContain('`https://evil.example/sso *now* &lt;!here&gt;`');
  });

  it('should keep a backtick in a name from closing its span', async () => {
    const executor = new ScriptedExecutor([
      ['lb-show', { stdout: JSON.stringify({ ...lb, name: 'a` https://x' }) }],
    ]);
    const approvals = scriptedApprovals(['deny']);
    await recordedRun(runbook, executor, { approvals }).outcome;
    expect(approvals.requests[0]?.summary).toBe('Fail over load balancer `a[U+0060] https://x` (`lb-1`)');
  });
});

describe('Slack: ephemeral replies escape like thread messages', () => {
  const record: RunRecord = {
    runId: 'r1',
    runbook: 'sweep',
    site: 'site-a',
    status: 'failed',
    currentStep: `delete${RLO}`,
    requestedBy: 'U0OPERATOR',
    message: `server ${markup} not found; OS_PASSWORD=hunter2`,
  } as RunRecord;

  async function statusReply(runId?: string): Promise<string> {
    const replies: string[] = [];
    const ctx = {
      userId: 'U0OPERATOR',
      channelId: 'C0INCIDENT',
      service: {
        getRun: async (id: string) => (id === 'r1' ? record : undefined),
        pendingApprovals: async () => [stored(request({ summary: `Delete ${spoofed} <!here>` }))],
        listRuns: async () => [record],
      },
      reply: async (t: string) => {
        replies.push(t);
      },
      refuse: async (t: string) => {
        replies.push(t);
      },
      // A lone site serving every channel: the run is this channel's to see.
      siteFor: () => ({ site: { name: 'site-a' } }),
    } as unknown as CapiContext;
    await statusCommand(ctx, runId);
    return replies.join('\n');
  }

  it('should redact, escape and reveal when /capi status shows a run', async () => {
    const reply = await statusReply('r1');
    expect(reply).not.toContain('hunter2');
    expect(reply).not.toMatch(/<!channel>|<!here>|<@U0BOSS>/);
    expect(reply).not.toContain(RLO);
    expect(reply).toContain('`delete[U+202E]`');
    expect(reply).toContain('capi-test-1[U+202E]2-tset-ipac');
  });

  it('should quote an unknown subcommand or run id as a name when /capi gets one', async () => {
    const commands = capiCommands([]);
    const bad = commands.parse('<!channel>`*x*');
    expect(bad).toEqual({
      kind: 'invalid',
      problem: '`&lt;!channel&gt;[U+0060]*x*` is not a /capi subcommand',
    });
    const badRun = commands.parse(`status r1${RLO}`);
    expect(badRun.kind === 'invalid' && badRun.problem).toContain('`r1[U+202E]` is not a run id');
  });
});

describe('terminal: control sequences from the cloud', () => {
  const hostile = `ok\u001b[2K\r\u001b[32mAPPROVED by U0BOSS\u001b[0m\u001b]0;title\u0007\u001b]8;;https://evil\u001b\\link\u009b31m`;

  it('should strip escape sequences and show CR when a command prints them', () => {
    const line = formatEvent(stepOutput(ref('inspect', 1), hostile));
    for (const control of ['\u001b', '\u009b', '\u0007']) expect(line).not.toContain(control);
    expect(line).not.toContain('\r');
    expect(line).toBe('    | ok^MAPPROVED by U0BOSSlink');
  });

  it('should print the approval with its targets visible and no control sequence before the y/N prompt', () => {
    const out = new PassThrough();
    let printed = '';
    out.on('data', (c: Buffer) => {
      printed += c.toString('utf8');
    });
    const sink = createTerminalTimeline(out);
    const r = request({ targets: [`${spoofed}\u001b[1A\u001b[2K`, `lb\rLOOKS-FINE`], summary: `x\u001b[8m` });
    sink({ ...inner, type: 'approval.requested', approvalId: 'approval~x', request: r });
    expect(printed).not.toContain('\u001b');
    expect(printed).not.toContain('\r');
    expect(printed).toContain(`      - capi-test-1[U+202E]2-tset-ipac\n`);
    expect(printed).toContain('      - lb^MLOOKS-FINE\n');
  });

  it('should redact what the engine hands the terminal before any store has, when a poll prints a secret', () => {
    const line = formatEvent({
      ...ref('wait', 1),
      type: 'poll.attempt',
      attempt: 1,
      of: 3,
      summary: 'OS_PASSWORD=hunter2',
    });
    expect(line).toBe('    ~ attempt 1/3: OS_PASSWORD=[REDACTED]');
  });

  it('should keep newlines and tabs and show other C0 and C1 controls', () => {
    expect(terminalText('a\tb\nc\u0008d\u007fe\u0085f')).toBe('a\tb\nc^Hd^?e\\x85f');
    expect(revealInvisible(`a${ZWSP}b\u2066c`)).toBe('a[U+200B]b[U+2066]c');
  });
});

describe('Markdown postmortem: structure', () => {
  const hostile =
    'done\n# FAKE HEADING\n| injected | row |\n```\n<script>alert(1)</script> [click](https://evil) ![img](x) &#x202E; **bold**';
  const events: RunEvent[] = [
    runStarted({ runId: 'r1', summary: hostile, requestedBy: 'U0A<b>' }),
    {
      ...ref('inspect', 1),
      type: 'step.started',
      title: `Inspect ${hostile}`,
      kind: 'run',
      destructive: false,
    },
    stepOutput(ref('inspect', 1), '```'),
    stepOutput(ref('inspect', 1), '\u001b[31mred\u001b[0m'),
    { ...ref('inspect', 1), type: 'decision', message: hostile },
    {
      type: 'run.finished',
      status: 'failed',
      message: hostile,
      durationMs: 5,
    },
  ];
  const md = renderMarkdown(entries(events));
  const lines = md.split('\n');

  it('should not let cloud text start a heading, a table row or a code fence', () => {
    expect(lines.filter((l) => l.startsWith('#')).map((l) => l.split(' ')[0])).toEqual([
      '#',
      '##',
      '##',
      '###',
    ]);
    expect(lines.some((l) => l.startsWith('# FAKE'))).toBe(false);
    expect(md).not.toContain('| injected | row |');
    // The only fences are the output block's own: one opening and one closing, longer than the output's.
    expect(lines.filter((l) => /^`{3,}$/.test(l))).toEqual(['````', '```', '````']);
  });

  it('should escape HTML, links, images, entities and emphasis when cloud text holds them', () => {
    expect(md).not.toContain('<script>');
    expect(md).not.toContain('<b>');
    expect(md).toContain('\\<script\\>');
    expect(md).toContain('\\[click\\](https://evil)');
    expect(md).toContain('\\&#x202E;');
    expect(md).toContain('\\*\\*bold\\*\\*');
  });

  it('should drop terminal escapes from output lines when the file is read with cat', () => {
    expect(md).not.toContain('\u001b');
    expect(md).toContain('\nred\n');
  });
});

describe('uploaded step log files', () => {
  it('should hold no escape sequence and show bidi characters when the output had them', () => {
    const step = ref('dump', 1, 1);
    const events: RunEvent[] = [
      { ...step, type: 'step.started', title: `Dump ${RLO}`, kind: 'run', destructive: false },
      stepOutput(step, '\u001b]0;owned\u0007\u001b[31mred\u001b[0m'),
      stepOutput(step, `name ${spoofed}`),
      stepFinished(step, 'ok', 5),
    ];
    const file = stepLogFile('r1', entries(events), events.length - 1);
    expect(file?.content).toBe('red\nname capi-test-1[U+202E]2-tset-ipac\n');
    expect(file?.title).toContain('Dump [U+202E]');
  });
});
