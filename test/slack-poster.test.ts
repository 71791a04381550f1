import { LogLevel, WebClient } from '@slack/web-api';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMessage, type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import type { RunbookSet } from '../src/runbook/load.js';
import { loadRunbooks } from '../src/runbook/load.js';
import { approvalStory } from '../src/slack/approval-story.js';
import {
  approvalMessage,
  catchUpMessage,
  outputPlace,
  stepContext,
  threadPost,
} from '../src/slack/blocks.js';
import { stepLogFile } from '../src/slack/log-file.js';
import { ThreadPoster, type ThreadPosterOptions } from '../src/slack/poster.js';
import {
  approveEverything,
  decideNext,
  type Harness,
  isType,
  quietLogger,
  startHarness,
  waitForEvent,
} from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { checkThread } from './support/thread.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const TOKEN = 'xoxb-poster-test';
const INCIDENT = 'C0INCIDENT';
const OTHER = 'C0OTHER01';
/** Fast enough for the file's time budget, slower than the fake's limit (50/s, burst 3): no 429 by itself. */
const POST_INTERVAL_MS = 30;
const ROOT_INTERVAL_MS = 150;

const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;
let fake: FakeSlack | undefined;
let posters: ThreadPoster[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  await Promise.all(posters.map((p) => p.close()));
  posters = [];
  await h?.stop();
  h = undefined;
  await fake?.close();
  fake = undefined;
});

/**
 * A WebClient whose calls a test can tamper with on the way out, so that the fake Slack refuses them for
 * real (an invalid block) and the poster meets a genuine `ok: false`.
 */
class TamperingClient extends WebClient {
  tamper: ((method: string, options: Record<string, unknown>) => Record<string, unknown>) | undefined;

  override apiCall(method: string, options: Record<string, unknown> = {}) {
    return super.apiCall(method, this.tamper ? this.tamper(method, options) : options);
  }
}

async function setup(scenarios: string[]): Promise<{ hh: Harness; slack: FakeSlack }> {
  fake = await startFakeSlack({ token: TOKEN, channels: [INCIDENT, OTHER], postRatePerChannelPerS: 50 });
  h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios });
  return { hh: h, slack: fake };
}

function slackClient(slack: FakeSlack): TamperingClient {
  // What the poster asks of its caller: no WebClient-level retries, 429s thrown to the poster.
  return new TamperingClient(TOKEN, {
    slackApiUrl: slack.url,
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    logLevel: LogLevel.ERROR,
  });
}

function newPoster(hh: Harness, client: WebClient, more: Partial<ThreadPosterOptions> = {}): ThreadPoster {
  const poster = new ThreadPoster({
    client,
    redis: db.redis,
    prefix: db.prefix,
    service: hh.service,
    logger: quietLogger,
    minPostIntervalMs: POST_INTERVAL_MS,
    rootUpdateIntervalMs: ROOT_INTERVAL_MS,
    // The fake has no per-method limit unless a test sets one: no budget to wait for either.
    updateLimit: { count: 1000, perMs: 1000 },
    ...more,
  });
  posters.push(poster);
  return poster;
}

const submit = (hh: Harness, runbook: string, site = 'site-0', channel = INCIDENT) =>
  hh.submit(runbook, { site, channel });

interface Expected {
  readonly type: string;
  /** The event's index in the stored timeline. */
  readonly index: number;
  readonly text: string;
  /** Thread posts rendered only from the timeline; approval messages change with the clock. */
  readonly blocks?: unknown[];
}

/** What the thread must hold, in order, built from the stored timeline with the same builders. */
async function expectedThread(hh: Harness, runId: string): Promise<Expected[]> {
  const entries = await hh.service.readTimeline(runId);
  const out: Expected[] = [];
  for (const [i, entry] of entries.entries()) {
    const e = entry.event;
    if (e.type === 'run.started') continue;
    if (e.type === 'approval.requested') {
      const stored = await hh.service.getApproval(e.approvalId);
      if (!stored) throw new Error('approval not stored');
      const story = approvalStory(entries, e.approvalId);
      out.push({ type: e.type, index: i, text: approvalMessage(stored, new Date(), { story }).text });
      continue;
    }
    // Only the events with a post of their own: an approval's story edits its message.
    const shown = threadPost(entries, i);
    if (shown?.kind === 'post') {
      out.push({ type: e.type, index: i, text: shown.message.text, blocks: shown.message.blocks });
    }
  }
  return out;
}

const APPROVAL_POST =
  /^(Approval needed|Approved|Denied|Expired|Superseded|Closed without a decision|Refused by the agent): /;
/**
 * One message whatever state it shows: an approval message is rendered as it is posted, so a try after a
 * decision says "Approved" where the first said "Approval needed"; the rest of its text names the request.
 */
const sameMessage = (text: unknown) => String(text).replace(APPROVAL_POST, '');

/**
 * The thread as the poster's rule says it must look, given where the thread fell behind: an approval request
 * found in the thread ahead of posts that came before it in the timeline is followed by one catch-up post of
 * exactly those posts (catchUpMessage). Anything else out of place does not match.
 */
function withCatchUps(
  expected: readonly Expected[],
  entries: Awaited<ReturnType<Harness['service']['readTimeline']>>,
  posted: readonly string[],
): Expected[] {
  const out: Expected[] = [];
  let i = 0;
  for (let k = 0; k < posted.length && i < expected.length; k++) {
    const want = expected[i] as Expected;
    if (APPROVAL_POST.test(posted[k] ?? '') && want.type !== 'approval.requested') {
      const j = expected.findIndex((x, n) => n > i && x.type === 'approval.requested');
      const approval = expected[j];
      const asked = entries[approval?.index ?? -1]?.event;
      if (approval === undefined || asked?.type !== 'approval.requested') break;
      const catchUp = catchUpMessage(entries, want.index, approval.index, asked);
      if (catchUp === undefined) throw new Error('an approval ahead of nothing');
      out.push(approval, { type: 'catch-up', index: want.index, text: catchUp.text, blocks: catchUp.blocks });
      i = j + 1;
      k += 1;
      continue;
    }
    out.push(want);
    i += 1;
  }
  return [...out, ...expected.slice(i)];
}

interface Thread {
  readonly root: FakeMessage;
  /** Every reply, files included, oldest first. */
  readonly replies: FakeMessage[];
  /** Replies without the log file shares. */
  readonly posts: FakeMessage[];
}

function threadOf(slack: FakeSlack, channel: string): Thread {
  const all = slack.messages(channel);
  const roots = all.filter((m) => m.thread_ts === undefined);
  expect(roots).toHaveLength(1);
  const root = roots[0] as FakeMessage;
  expect(all.every((m) => m.thread_ts === undefined || m.thread_ts === root.ts)).toBe(true);
  const replies = all.filter((m) => m.thread_ts === root.ts);
  return { root, replies, posts: replies.filter((m) => m.files === undefined) };
}

/** Every event once, in timeline order, rendered as threadMessage/approvalMessage render it. */
async function expectMirrored(hh: Harness, slack: FakeSlack, runId: string, channel = INCIDENT) {
  const thread = threadOf(slack, channel);
  const entries = await hh.service.readTimeline(runId);
  const posted = thread.posts.map((m) => m.text);
  const expected = withCatchUps(await expectedThread(hh, runId), entries, posted);
  expect(posted).toEqual(expected.map((x) => x.text));
  thread.posts.forEach((post, i) => {
    const want = expected[i];
    if (want?.blocks !== undefined) expect(post.blocks).toEqual(want.blocks);
  });
  // The root ends on the final state, checklist done.
  expect(thread.root.text).toMatch(/: succeeded \(/);
  expect(thread.root.updates).toBeGreaterThan(1);
  return { thread, expected };
}

const hasButtons = (m: FakeMessage) =>
  JSON.stringify(m.blocks).includes('"type":"actions"') || JSON.stringify(m.blocks).includes('capi_approve');

describe('ThreadPoster', () => {
  it('should mirror a recover run: one root updated in place, every event in order, decided approvals, log files', async () => {
    const { hh, slack } = await setup(['outage']);
    await hh.startAgent();
    const client = slackClient(slack);
    const poster = newPoster(hh, client);
    const run = await submit(hh, 'recover');
    poster.watch(run.runId);
    poster.watch(run.runId);
    for (let i = 1; i <= 3; i++) {
      // A human sees the buttons, then clicks.
      await expect
        .poll(() => slack.messages(INCIDENT).filter((m) => m.text.startsWith('Approval needed')).length, {
          timeout: 20_000,
        })
        .toBe(1);
      const { approvalId: id } = await decideNext(hh.service, run.runId, true);
      // What the Slack action handler does after a click: the buttons go at once.
      await poster.approvalDecided(id);
      const decided = slack.messages(INCIDENT).filter((m) => m.text.startsWith('Approved:'));
      expect(decided).toHaveLength(i);
      expect(decided.some(hasButtons)).toBe(false);
    }
    expect((await waitForEvent(hh.service, run.runId, isType('run.finished'))).status).toBe('succeeded');
    await poster.settled(run.runId);

    const { thread, expected } = await expectMirrored(hh, slack, run.runId);
    const approvals = thread.posts.filter((m) => /^(Approval needed|Approved|Denied|Expired):/.test(m.text));
    expect(approvals).toHaveLength(3);
    for (const a of approvals) {
      expect(a.text).toMatch(/^Approved: /);
      expect(a.updates).toBeGreaterThanOrEqual(1);
      expect(hasButtons(a)).toBe(false);
      expect(JSON.stringify(a.blocks)).toContain(':white_check_mark: *Approved* by <@U0APPROVER>');
    }
    // Each log file follows the post of its step (or the catch-up post of its steps) and holds the raw output.
    const files = thread.replies.filter((m) => m.files !== undefined);
    expect(files.length).toBeGreaterThanOrEqual(1);
    const entries = await hh.service.readTimeline(run.runId);
    for (const share of files) {
      const before = thread.replies[thread.replies.indexOf(share) - 1] as FakeMessage;
      const n = thread.posts.indexOf(before);
      const want = expected[n];
      const file = slack.files().find((f) => f.id === share.files?.[0]);
      expect(file).toMatchObject({ channel: INCIDENT, thread_ts: thread.root.ts });
      expect(file?.filename).toMatch(new RegExp(`^${run.runId}-[A-Za-z0-9_.-]+\\.log$`));
      // A catch-up post has no file: a file only ever follows its own step's post.
      expect(want?.type).toBe('step.finished');
      const finished = entries[want?.index ?? -1];
      if (finished?.event.type !== 'step.finished') throw new Error('a log file after something else');
      const ctx = stepContext(entries.slice(0, (want?.index ?? 0) + 1), finished.event);
      const output = ctx.output ?? [];
      expect(outputPlace(ctx, finished.event.summary)).toBe('file');
      expect(output.length).toBeGreaterThan(0);
      expect(file?.bytes.toString('utf8')).toBe(`${output.join('\n')}\n`);
      expect(file?.bytes.toString('utf8')).toBe(stepLogFile(run.runId, entries, want?.index ?? -1)?.content);
    }
    // Coalesced: root updates at least ROOT_INTERVAL_MS apart (a little slack for the fake's clock).
    const rootUpdates = slack.calls.filter(
      (c) => c.method === 'chat.update' && c.status === 200 && c.args.ts === thread.root.ts,
    );
    expect(rootUpdates.length).toBe(thread.root.updates);
    for (let i = 1; i < rootUpdates.length; i++) {
      expect((rootUpdates[i]?.at ?? 0) - (rootUpdates[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(
        ROOT_INTERVAL_MS - 20,
      );
    }
    // The cursor says done; the run left the open set.
    expect(await db.redis.hget(`${db.prefix}:slack:${run.runId}`, 'done')).toBe('1');
    expect(await db.redis.smembers(`${db.prefix}:slack:runs:open`)).toEqual([]);
  });

  it('should lose, reorder and duplicate nothing through a 429 storm', async () => {
    const { hh, slack } = await setup(['outage']);
    await hh.startAgent();
    const poster = newPoster(hh, slackClient(slack));
    const run = await submit(hh, 'recover');
    poster.watch(run.runId);
    await decideNext(hh.service, run.runId, true);
    slack.failNext('chat.postMessage', { status: 429, retryAfterS: 1 }, 3);
    await decideNext(hh.service, run.runId, true);
    await decideNext(hh.service, run.runId, true);
    await poster.settled(run.runId);

    const limited = slack.calls.filter((c) => c.method === 'chat.postMessage' && c.status === 429);
    expect(limited).toHaveLength(3);
    // The same message was sent again after each refusal, and waited Retry-After first.
    const posts = slack.calls.filter((c) => c.method === 'chat.postMessage');
    const firstRefused = posts.indexOf(limited[0] as (typeof posts)[number]);
    const retried = posts[firstRefused + 3];
    expect(retried?.status).toBe(200);
    expect(sameMessage(retried?.args.text)).toBe(sameMessage(limited[0]?.args.text));
    expect((retried?.at ?? 0) - (limited[0]?.at ?? 0)).toBeGreaterThanOrEqual(2900);
    await expectMirrored(hh, slack, run.runId);
  });

  it('should continue the same thread after a restart without posting anything twice', async () => {
    const { hh, slack } = await setup(['outage']);
    await hh.startAgent();
    const client = slackClient(slack);
    const first = newPoster(hh, client);
    const run = await submit(hh, 'recover');
    first.watch(run.runId);
    await decideNext(hh.service, run.runId, true);
    // Let the first poster post part of the run, then stop it mid-run.
    await waitForEvent(hh.service, run.runId, isType('approval.requested', 'sweep/delete-orphan'));
    await expect.poll(() => slack.messages(INCIDENT).length, { timeout: 20_000 }).toBeGreaterThan(5);
    await first.close();
    await first.close();
    await expect(first.settled(run.runId)).rejects.toThrow(/closed/);
    const before = threadOf(slack, INCIDENT);

    await decideNext(hh.service, run.runId, true);
    await decideNext(hh.service, run.runId, true);
    await waitForEvent(hh.service, run.runId, isType('run.finished'));
    // Started only after the run ended: resumeAll finds it through the open set.
    const second = newPoster(hh, client);
    await second.resumeAll();
    await second.settled(run.runId);

    const { thread } = await expectMirrored(hh, slack, run.runId);
    // The first poster stopped mid-run; the second one posted the rest in the same thread.
    expect(before.posts.length).toBeGreaterThan(3);
    expect(thread.posts.length).toBeGreaterThan(before.posts.length);
    expect(thread.root.ts).toBe(before.root.ts);
    expect(thread.root.updates).toBeGreaterThan(before.root.updates);
    expect(thread.posts.slice(0, before.posts.length).map((m) => m.ts)).toEqual(
      before.posts.map((m) => m.ts),
    );
    const approvals = thread.posts.filter((m) => /^(Approval needed|Approved):/.test(m.text));
    expect(approvals.map((m) => m.text.split(':')[0])).toEqual(['Approved', 'Approved', 'Approved']);
    expect(approvals.some(hasButtons)).toBe(false);
  });

  it('should post every join made while the run was queued after a restart right after its root', async () => {
    const { hh, slack } = await setup(['healthy']);
    const client = slackClient(slack);
    const first = newPoster(hh, client);
    const ask = (requestedBy: string) =>
      hh.service.start({ runbook: 'diagnose', args: [], site: 'site-0', requestedBy, channel: INCIDENT });
    const run = (await ask('U_REQUESTER')).record;
    // Two more people ask for the same diagnosis while it is queued: they join it.
    expect((await ask('U0LEAD0001')).kind).toBe('joined');
    expect((await ask('U0LEAD0002')).kind).toBe('joined');
    first.watch(run.runId);
    // The poster stops the moment Slack took the root, before the joins' posts.
    const off = slack.onCall((c) => {
      if (c.method === 'chat.postMessage' && c.status === 200 && c.args.thread_ts === undefined) {
        void first.close();
      }
    });
    await hh.startAgent();
    await expect(first.settled(run.runId)).rejects.toThrow(/closed/);
    off();
    expect(threadOf(slack, INCIDENT).posts).toEqual([]);

    await waitForEvent(hh.service, run.runId, isType('run.finished'));
    const second = newPoster(hh, client);
    await second.resumeAll();
    await second.settled(run.runId);
    const thread = threadOf(slack, INCIDENT);
    const entries = await hh.service.readTimeline(run.runId);
    const check = checkThread(
      run.runId,
      entries,
      thread.posts.map((m) => m.text),
    );
    expect({ missing: check.missing, extra: check.extra, inOrder: check.inOrder }).toEqual({
      missing: [],
      extra: [],
      inOrder: true,
    });
    const joins = thread.posts.filter((m) => m.text.includes('asked for this run again'));
    expect(joins.map((m) => JSON.stringify(m.blocks).match(/<@(U\w+)>/)?.[1])).toEqual([
      'U0LEAD0001',
      'U0LEAD0002',
    ]);
    // Right after the root, before anything the run posted.
    expect(thread.posts.slice(0, 2)).toEqual(joins);
  });

  it('should resume an active run mid-way when the poster restarts while it runs', async () => {
    const { hh, slack } = await setup(['healthy']);
    await hh.startAgent();
    const client = slackClient(slack);
    const first = newPoster(hh, client);
    const run = await submit(hh, 'park');
    first.watch(run.runId);
    await waitForEvent(hh.service, run.runId, isType('approval.requested'));
    await expect
      .poll(() => slack.messages(INCIDENT).some((m) => m.text.startsWith('Approval needed')), {
        timeout: 10_000,
      })
      .toBe(true);
    await first.close();

    const second = newPoster(hh, client);
    await second.resumeAll();
    await decideNext(hh.service, run.runId, true);
    await second.settled(run.runId);
    const { thread } = await expectMirrored(hh, slack, run.runId);
    const approval = thread.posts.find((m) => m.text.startsWith('Approved:'));
    expect(approval && hasButtons(approval)).toBe(false);
  });

  it('should keep two concurrent runs in their own channels and threads, paced per channel', async () => {
    const { hh, slack } = await setup(['outage', 'healthy']);
    await hh.startAgent({ concurrency: 2 });
    const pacing = 100;
    const poster = newPoster(hh, slackClient(slack), { minPostIntervalMs: pacing });
    const a = await submit(hh, 'diagnose', 'site-0', INCIDENT);
    const b = await submit(hh, 'park', 'site-1', OTHER);
    poster.watch(a.runId);
    poster.watch(b.runId);
    const abort = new AbortController();
    const approving = approveEverything(hh.service, b.runId, abort.signal);
    await Promise.all([poster.settled(a.runId), poster.settled(b.runId)]);
    abort.abort();
    await approving;

    const ta = (await expectMirrored(hh, slack, a.runId, INCIDENT)).thread;
    const tb = (await expectMirrored(hh, slack, b.runId, OTHER)).thread;
    expect(ta.root.text).toContain(a.runId);
    expect(tb.root.text).toContain(b.runId);
    expect(ta.replies.some((m) => m.text.includes(b.runId))).toBe(false);
    expect(tb.replies.some((m) => m.text.includes(a.runId))).toBe(false);
    for (const channel of [INCIDENT, OTHER]) {
      const at = slack.calls
        .filter((c) => c.method === 'chat.postMessage' && c.args.channel === channel)
        .map((c) => c.at);
      // Measured where the fake receives the posts, so one late arrival shortens the next gap: the span of
      // all of them is what pacing guarantees (only the first and last arrival's jitter counts).
      expect(at.length).toBeGreaterThan(2);
      expect((at.at(-1) ?? 0) - (at[0] ?? 0)).toBeGreaterThanOrEqual((at.length - 1) * pacing - 15);
      // ... and no two posts left together.
      for (let i = 1; i < at.length; i++) expect((at[i] ?? 0) - (at[i - 1] ?? 0)).toBeGreaterThan(pacing / 2);
    }
  });

  it("should keep to Slack's app-wide chat.update limit with runs in several channels, and hold no post for a root refresh", async () => {
    const limit = { count: 4, perMs: 1500 };
    fake = await startFakeSlack({
      token: TOKEN,
      channels: [INCIDENT, OTHER],
      postRatePerChannelPerS: 50,
      methodLimitsPerMinute: { 'chat.update': limit.count },
      methodLimitWindowMs: limit.perMs,
    });
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks,
      scenarios: ['outage', 'healthy'],
    });
    const [hh, slack] = [h, fake];
    await hh.startAgent({ concurrency: 2 });
    const poster = newPoster(hh, slackClient(slack), { rootUpdateIntervalMs: 0, updateLimit: limit });
    const a = await submit(hh, 'diagnose', 'site-0', INCIDENT);
    const b = await submit(hh, 'park', 'site-1', OTHER);
    poster.watch(a.runId);
    poster.watch(b.runId);
    const abort = new AbortController();
    const approving = approveEverything(hh.service, b.runId, abort.signal);
    await Promise.all([poster.settled(a.runId), poster.settled(b.runId)]);
    abort.abort();
    await approving;

    // Every root refresh and approval edit fitted the budget: Slack never had to refuse one.
    expect(slack.calls.filter((c) => c.method === 'chat.update' && c.status === 429)).toEqual([]);
    const updates = slack.calls.filter((c) => c.method === 'chat.update').map((c) => c.at);
    for (let i = limit.count; i < updates.length; i++) {
      expect((updates[i] ?? 0) - (updates[i - limit.count] ?? 0)).toBeGreaterThanOrEqual(limit.perMs - 50);
    }
    // ... and the threads are complete, each root final, the approval shown decided.
    await expectMirrored(hh, slack, a.runId, INCIDENT);
    const tb = (await expectMirrored(hh, slack, b.runId, OTHER)).thread;
    expect(tb.posts.some(hasButtons)).toBe(false);
  });

  it('should retry a 5xx on chat.update and post a plain-text fallback for a refused message', async () => {
    const { hh, slack } = await setup(['healthy']);
    await hh.startAgent();
    const client = slackClient(slack);
    // Every post of a step and the run's end gets a broken block on its way out: the fake answers
    // invalid_blocks.
    const broken = (text: string) => /^(Step \d+ of \d+ [a-z]+|Run [a-z]+ after [^:]+): /.test(text);
    client.tamper = (method, options) =>
      method === 'chat.postMessage' && Array.isArray(options.blocks) && broken(String(options.text))
        ? { ...options, blocks: [...options.blocks, { type: 'header', text: { type: 'mrkdwn', text: 'x' } }] }
        : options;
    slack.failNext('chat.update', { status: 503 }, 2);
    const poster = newPoster(hh, client);
    const run = await submit(hh, 'park');
    poster.watch(run.runId);
    await decideNext(hh.service, run.runId, true);
    await poster.settled(run.runId);

    const updates = slack.calls.filter((c) => c.method === 'chat.update');
    expect(updates.slice(0, 3).map((c) => c.status)).toEqual([503, 503, 200]);
    expect(updates[2]?.args.ts).toBe(updates[0]?.args.ts);

    const refused = slack.calls.filter(
      (c) => c.method === 'chat.postMessage' && (c.response as { error?: string }).error === 'invalid_blocks',
    );
    expect(refused.length).toBeGreaterThanOrEqual(1);
    const thread = threadOf(slack, INCIDENT);
    const expected = withCatchUps(
      await expectedThread(hh, run.runId),
      await hh.service.readTimeline(run.runId),
      thread.posts.map((m) => m.text),
    );
    expect(thread.posts).toHaveLength(expected.length);
    thread.posts.forEach((post, i) => {
      const want = expected[i] as Expected;
      if (broken(want.text)) {
        expect(post.blocks).toEqual([]);
        expect(post.text).toBe(
          `${want.text}\n_(shown as plain text: Slack refused the formatted message with invalid_blocks)_`,
        );
      } else {
        expect(post.text).toBe(want.text);
      }
    });
    expect(refused).toHaveLength(expected.filter((x) => broken(x.text)).length);
    expect(thread.root.text).toMatch(/: succeeded \(/);
  });

  it('should give up on a post after its last try through a 5xx storm and go on with the thread', async () => {
    const { hh, slack } = await setup(['healthy']);
    await hh.startAgent();
    const poster = newPoster(hh, slackClient(slack), { retryDelaysMs: [20, 20, 20, 20] });
    const run = await submit(hh, 'park');
    poster.watch(run.runId);
    await expect.poll(() => slack.messages(INCIDENT).length, { timeout: 10_000 }).toBeGreaterThan(0);
    slack.failNext('chat.postMessage', { status: 503 }, 5);
    await decideNext(hh.service, run.runId, true);
    await poster.settled(run.runId);

    const failed = slack.calls.filter((c) => c.method === 'chat.postMessage' && c.status === 503);
    expect(failed).toHaveLength(5);
    const lost = failed[0]?.args.text;
    expect(failed.every((c) => sameMessage(c.args.text) === sameMessage(lost))).toBe(true);
    // Exactly that one message is missing; everything else is there, in order. An approval message that
    // never made it leaves its story to posts of its own (the step's end), right after where it would be.
    const expected = (await expectedThread(hh, run.runId)).map((x) => x.text);
    const entries = await hh.service.readTimeline(run.runId);
    const fallbacks = APPROVAL_POST.test(String(lost))
      ? entries.flatMap((_, i) => {
          const shown = threadPost(entries, i);
          return shown?.kind === 'approval' && shown.fallback ? [shown.fallback.text] : [];
        })
      : [];
    const at = expected.findIndex(
      (t, i) =>
        t === lost || (String(lost).startsWith('Approval needed: ') && expected[i]?.startsWith('Approved: ')),
    );
    expect(at).toBeGreaterThanOrEqual(0);
    expected.splice(at, 1, ...fallbacks);
    expect(threadOf(slack, INCIDENT).posts.map((m) => m.text)).toEqual(expected);
  });

  it('should take the buttons off an approval that the run ended without (cancelled while parked)', async () => {
    const { hh, slack } = await setup(['healthy']);
    await hh.startAgent();
    const poster = newPoster(hh, slackClient(slack));
    const run = await submit(hh, 'park');
    poster.watch(run.runId);
    await expect
      .poll(() => slack.messages(INCIDENT).some((m) => m.text.startsWith('Approval needed')), {
        timeout: 10_000,
      })
      .toBe(true);
    await hh.service.cancel(run.runId, 'U_CANCELLER');
    await poster.settled(run.runId);

    const thread = threadOf(slack, INCIDENT);
    expect(thread.root.text).toMatch(/: CANCELLED \(/);
    const approval = thread.posts.find((m) => m.text.startsWith('Closed without a decision: '));
    expect(approval && hasButtons(approval)).toBe(false);
    expect(JSON.stringify(approval?.blocks)).toContain('the run ended before a decision');
    const expected = await expectedThread(hh, run.runId);
    expect(
      thread.posts.map((m) => m.text.replace(/^Closed without a decision: /, 'Approval needed: ')),
    ).toEqual(expected.map((x) => x.text));
    expect(thread.posts.at(-1)?.text).toMatch(/^Run cancelled/);
  });

  it('should say in the root message that a run came from the terminal, and as which unix user', async () => {
    const { hh, slack } = await setup(['healthy']);
    await hh.startAgent();
    const poster = newPoster(hh, slackClient(slack));
    const run = await hh.submit('diagnose', { channel: INCIDENT, via: 'terminal as alice' });
    poster.watch(run.runId);
    const root = await eventually('the root message', () =>
      slack.messages(INCIDENT).find((m) => m.thread_ts === undefined),
    );
    expect(JSON.stringify(root.blocks)).toMatch(/\*Requested by\* \S+ via terminal as alice\\n/);
  });

  it('should reject settled() for a run without a channel and make close() repeat-safe', async () => {
    const { hh, slack } = await setup(['healthy']);
    const poster = newPoster(hh, slackClient(slack));
    const run = await hh.submit('diagnose', { requestedBy: 'U_R' });
    poster.watch(run.runId);
    await expect(poster.settled(run.runId)).rejects.toThrow(/has no channel/);
    const closing = poster.close();
    expect(poster.close()).toBe(closing);
    await closing;
    expect(slack.calls).toEqual([]);
  });
});
