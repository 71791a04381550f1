import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App } from '@slack/bolt';
import { WebClient } from '@slack/web-api';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMessage, type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { formatRunDuration } from '../src/fronts/format.js';
import { renderMarkdown } from '../src/fronts/postmortem.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { createSlackApp } from '../src/slack/app.js';
import { stepContext, threadPost } from '../src/slack/blocks.js';
import { threadApprovalPlaces } from '../src/slack/click-place.js';
import { ThreadPoster, type ThreadPosterOptions } from '../src/slack/poster.js';
import { ThreadCursors } from '../src/slack/thread-cursors.js';
import {
  decideNext,
  type Harness,
  isType,
  quietLogger,
  startHarness,
  waitForEvent,
} from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { buttonClickBody, postToBolt, signedHeaders } from './support/slack-requests.js';

/**
 * Issue 11: a thread people can read in an incident, and approvals that are urgent. Through the real poster,
 * the real agent and the simulated cloud, against the strict fake Slack Web API; clicks are signed requests
 * to Bolt.
 */

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const TOKEN = ['xoxb', '7777777777', '8888888888888', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const SECRET = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const CHANNEL = 'C0INCIDENT';
const LEAD = 'U0LEAD0001';
const APPROVER = 'U0APPROVER';

const db = useTestRedis();
let runbooks: RunbookSet;
const stops: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

interface World {
  readonly h: Harness;
  readonly fake: FakeSlack;
  readonly poster: ThreadPoster;
  readonly base: string;
}

async function world(opts: {
  readonly postRatePerChannelPerS: number;
  readonly poster: Partial<ThreadPosterOptions>;
  readonly approvalTimeoutMs?: number;
}): Promise<World> {
  const fake = await startFakeSlack({
    token: TOKEN,
    channels: [CHANNEL],
    users: { [LEAD]: { groups: [] }, [APPROVER]: { groups: [] } },
    postRatePerChannelPerS: opts.postRatePerChannelPerS,
  });
  stops.push(() => fake.close());
  const h = await startHarness({
    redis: db.redis,
    prefix: db.prefix,
    runbooks,
    scenarios: ['outage'],
    approvers: [APPROVER],
    ...(opts.approvalTimeoutMs !== undefined ? { approvalTimeoutMs: opts.approvalTimeoutMs } : {}),
  });
  stops.push(() => h.stop());
  await h.startAgent();
  const poster = new ThreadPoster({
    client: new WebClient(TOKEN, {
      slackApiUrl: fake.url,
      rejectRateLimitedCalls: true,
      retryConfig: { retries: 0 },
    }),
    redis: db.redis,
    prefix: db.prefix,
    service: h.service,
    logger: quietLogger,
    updateLimit: { count: 1000, perMs: 1000 },
    ...opts.poster,
  });
  stops.push(() => poster.close());
  const app: App = createSlackApp({
    slack: { botToken: TOKEN, signingSecret: SECRET, apiUrl: fake.url, port: 0 },
    approvers: [APPROVER],
    operators: [LEAD],
    service: h.service,
    sites: h.sites,
    logger: quietLogger,
    threads: poster,
    approvalPlaces: threadApprovalPlaces(new ThreadCursors(db.redis, db.prefix)),
    webApiRetries: 0,
  });
  const server = (await app.start(0)) as Server;
  stops.push(() => app.stop());
  return { h, fake, poster, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function click(w: World, user: string, actionId: string, value: string): Promise<void> {
  // Clicked where a person clicks it: on the approval message that carries this button.
  const message = w.fake
    .messages(CHANNEL)
    .find((m) => JSON.stringify(m.blocks).includes(`"value":"${value}"`));
  const body = buttonClickBody({
    user,
    channel: CHANNEL,
    actionId,
    value,
    ...(message ? { messageTs: message.ts } : {}),
  });
  expect((await postToBolt(w.base, body, signedHeaders(body, SECRET))).status).toBe(200);
}

/** Every text a message shows: its fallback and each text of its blocks, as written (not JSON-escaped). */
const text = (m: FakeMessage): string => {
  const texts: string[] = [m.text];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'text' && typeof x === 'string') texts.push(x);
        else walk(x);
      }
    }
  };
  walk(m.blocks);
  return texts.join('\n');
};
const isApproval = (m: FakeMessage) =>
  /^(Approval needed|Approved|Denied|Expired|Superseded|Closed without a decision): /.test(m.text);
const isStepPost = (m: FakeMessage) => /^Step \d+ of \d+ [a-z]+: /.test(m.text);
const isCatchUp = (m: FakeMessage) => m.text.startsWith('Catching up: ');
/** Step posts folded into a catch-up post: each starts with its status emoji and `*Step n of m*`. */
const stepsIn = (m: FakeMessage) =>
  JSON.stringify(m.blocks).match(/:[a-z_]+: \*Step \d+ of \d+\*/g)?.length ?? 0;
/** What a raw `-o json` or `-f yaml` tail looks like in a post. */
const RAW_OUTPUT = /"(apiVersion|items|metadata|kind)"\s*:|provisioning_status: |^\s*[{[]\s*$/m;

function threadOf(fake: FakeSlack): { root: FakeMessage; replies: FakeMessage[]; posts: FakeMessage[] } {
  const all = fake.messages(CHANNEL);
  const roots = all.filter((m) => m.thread_ts === undefined);
  expect(roots).toHaveLength(1);
  const root = roots[0] as FakeMessage;
  const replies = all.filter((m) => m.thread_ts === root.ts);
  return { root, replies, posts: replies.filter((m) => m.files === undefined) };
}

describe('a thread people can read in an incident', () => {
  it("should post recover's steps that found something once each before its first approval, leave the rest to the checklist, attach long raw output, and time the run from its request", async () => {
    const w = await world({
      postRatePerChannelPerS: 50,
      poster: { minPostIntervalMs: 30, rootUpdateIntervalMs: 150 },
    });
    const run = await w.h.submit('recover', { channel: CHANNEL, requestedBy: LEAD });
    w.poster.watch(run.runId);
    for (let i = 0; i < 3; i++) {
      await eventually('an approval with buttons in the thread', () =>
        w.fake.messages(CHANNEL).some((m) => m.text.startsWith('Approval needed')) ? true : undefined,
      );
      await decideNext(w.h.service, run.runId, true, APPROVER);
      await eventually('the approval shown decided', () =>
        w.fake.messages(CHANNEL).some((m) => m.text.startsWith('Approval needed')) ? undefined : true,
      );
    }
    const finished = await waitForEvent(w.h.service, run.runId, isType('run.finished'), 120_000);
    expect(finished.status).toBe('succeeded');
    await w.poster.settled(run.runId);

    const entries = await w.h.service.readTimeline(run.runId);
    const firstAsk = entries.findIndex((e) => e.event.type === 'approval.requested');
    const stepsBefore = entries.slice(0, firstAsk).filter((e) => e.event.type === 'step.finished').length;
    // recover on the outage: mgmt VM, sshd, k8s, controllers, Machines, LBs, amphorae, orphans... then the sweep.
    expect(stepsBefore).toBeGreaterThanOrEqual(10);
    expect(stepsBefore).toBeLessThanOrEqual(14);

    const { root, replies, posts } = threadOf(w.fake);
    const first = posts.findIndex(isApproval);
    const before = posts.slice(0, first);
    // One post per step that found something before the first approval, and nothing else: no "started", no
    // decision of its own, no post for a step that only confirmed what was expected.
    const telling = entries
      .slice(0, firstAsk)
      .filter((e, n) => e.event.type === 'step.finished' && threadPost(entries, n)?.kind === 'post');
    expect(telling.map((e) => (e.event.type === 'step.finished' ? e.event.stepId : ''))).toEqual([
      'mgmt-vm-state',
      'lb-state',
      'find-orphans',
    ]);
    expect(before.every(isStepPost)).toBe(true);
    const caughtUp = posts[first + 1] !== undefined && isCatchUp(posts[first + 1] as FakeMessage);
    expect(before.length + (caughtUp ? stepsIn(posts[first + 1] as FakeMessage) : 0)).toBe(telling.length);

    // What the steps found, not the raw output: in their posts, or in the root's checklist.
    const all = posts.map(text).join('\n');
    for (const fact of [
      /\d+ LB\(s\): \d+ ACTIVE, \d+ in ERROR/,
      /LB\(s\) provisioning=ERROR/,
      /orphaned amphora server/,
    ]) {
      expect(all).toMatch(fact);
    }
    for (const fact of [/\d+ of \d+ controller pods Running/, /\d+ of \d+ Machines Running/]) {
      expect(all).not.toMatch(fact);
      expect(text(root)).toMatch(fact);
    }
    for (const post of posts) expect(text(post)).not.toMatch(RAW_OUTPUT);

    // The raw output of a step with a post, too long for it, is in the log file after that post.
    const i = entries.findIndex((e) => e.event.type === 'step.finished' && e.event.stepId === 'find-orphans');
    const ev = entries[i]?.event;
    if (ev?.type !== 'step.finished') throw new Error('find-orphans did not finish');
    const output = stepContext(entries.slice(0, i + 1), ev).output ?? [];
    expect(output.join('\n')).toMatch(/Image Name: amphora-haproxy/);
    const file = w.fake.files().find((f) => f.filename === `${run.runId}-find-orphans.log`);
    expect(file?.bytes.toString('utf8')).toBe(`${output.join('\n')}\n`);
    expect(file?.thread_ts).toBe(root.ts);
    const share = replies.findIndex((m) => m.files?.includes(file?.id ?? ''));
    expect(replies[share - 1]?.text).toMatch(/^Step \d+ of \d+ ok: Compare with nova's amphora servers/);

    // The run's time counts from its request, across the three resumes, with the waits for people apart.
    const record = await w.h.service.getRun(run.runId);
    const finishedAt = entries.find((e) => e.event.type === 'run.finished')?.at ?? '';
    const lastResume = entries.filter((e) => e.event.type === 'run.resumed').at(-1)?.at ?? '';
    const span = Date.parse(finishedAt) - Date.parse(record?.createdAt ?? '');
    expect(finished.durationMs).toBeGreaterThanOrEqual(span - 50);
    expect(finished.durationMs).toBeLessThanOrEqual(span + 50);
    expect(finished.durationMs).toBeGreaterThan(Date.parse(finishedAt) - Date.parse(lastResume));
    const archive = await w.h.service.archiveRun(run.runId);
    const waited = (archive?.approvals ?? []).reduce(
      (n, a) => n + Date.parse(a.decision?.at ?? a.requestedAt) - Date.parse(a.requestedAt),
      0,
    );
    expect(finished.waitingMs).toBe(waited);
    expect(waited).toBeGreaterThan(0);
    const took = formatRunDuration(finished.durationMs, finished.waitingMs);
    expect(took).toMatch(/of it waiting for approval$/);
    expect(posts.at(-1)?.text).toContain(`Run succeeded after ${took}`);
    expect(JSON.stringify(root.blocks)).toContain(`after ${took}`);
    expect(renderMarkdown(entries)).toContain(`| Duration | ${took} |`);
  }, 120_000);
});

describe('an approval is urgent', () => {
  it('should post the approval ahead of a thread that is behind, with its expiry from when it was posted, and take a signed click', async () => {
    const timeoutMs = 4000;
    // Slack's pace (per channel, after a burst of 3) and a poster that keeps to it.
    const w = await world({
      postRatePerChannelPerS: 4,
      poster: { minPostIntervalMs: 300, rootUpdateIntervalMs: 300 },
      approvalTimeoutMs: timeoutMs,
    });
    const run = await w.h.submit('recover', { channel: CHANNEL, requestedBy: LEAD });
    // The thread is behind: the run reached its first approval before anything was posted (a dozen posts and
    // their log files wait, several seconds at Slack's pace: longer than the approval's timeout).
    const asked = await waitForEvent(w.h.service, run.runId, isType('approval.requested'));
    w.poster.watch(run.runId);

    const approvalPost = await eventually('the approval with its buttons', () =>
      w.fake.calls.find(
        (c) => c.method === 'chat.postMessage' && String(c.args.text).startsWith('Approval needed'),
      ),
    );
    // Right after the root: ahead of every step post that was waiting.
    const posts = w.fake.calls.filter((c) => c.method === 'chat.postMessage' && c.status === 200);
    expect(posts.indexOf(approvalPost)).toBe(1);
    // Its time to decide runs from when it appeared, and the message says until when.
    const shown = await w.h.service.getApproval(asked.approvalId);
    const shownAt = Date.parse(shown?.shownAt ?? '');
    const expiresAt = Date.parse(shown?.expiresAt ?? '');
    expect(expiresAt - shownAt).toBe(timeoutMs);
    expect(shownAt).toBeGreaterThan(Date.parse(shown?.requestedAt ?? ''));
    expect(approvalPost.at - shownAt).toBeGreaterThanOrEqual(0);
    expect(approvalPost.at - shownAt).toBeLessThan(1000);
    expect(JSON.stringify(approvalPost.args.blocks)).toContain(
      `expires <!date^${Math.floor(expiresAt / 1000)}^`,
    );

    // The buttons work: an approver's signed click decides it.
    await click(w, APPROVER, 'capi_approve', asked.approvalId);
    const decided = await waitForEvent(w.h.service, run.runId, isType('approval.decided'));
    expect(decided.decision).toMatchObject({ approved: true, by: APPROVER });

    // What was waiting and found something follows in one post that says it came before the approval; the
    // steps that only confirmed are in the root's checklist. No file with it.
    const catchUp = await eventually('the catch-up post', () =>
      w.fake.messages(CHANNEL).find((m) => isCatchUp(m)),
    );
    expect(catchUp.text).toMatch(/^Catching up: steps 1-\d+, before the approval$/);
    expect(JSON.stringify(catchUp.blocks)).toContain('before the approval above');
    const entries = await w.h.service.readTimeline(run.runId);
    const until = entries.findIndex((e) => e.event.type === 'approval.requested');
    const telling = entries
      .slice(0, until)
      .filter((e, n) => e.event.type === 'step.finished' && threadPost(entries, n)?.kind === 'post').length;
    expect(telling).toBe(3);
    expect(stepsIn(catchUp)).toBe(telling);

    // The rest of the run: the later approvals, asked with the same short timeout, are decided in time too.
    for (let i = 0; i < 2; i++) await decideNext(w.h.service, run.runId, true, APPROVER);
    const finished = await waitForEvent(w.h.service, run.runId, isType('run.finished'), 60_000);
    expect(finished.status).toBe('succeeded');
    await w.poster.settled(run.runId);
    const { root, posts: thread } = threadOf(w.fake);
    expect(root.text).toMatch(/succeeded/);
    expect(thread.filter(isApproval).map((m) => m.text.split(':')[0])).toEqual([
      'Approved',
      'Approved',
      'Approved',
    ]);
    expect(JSON.stringify(thread.map((m) => m.blocks))).not.toContain('capi_approve');
    const shared = w.fake.messages(CHANNEL).filter((m) => m.files !== undefined);
    const catchUpAt = w.fake.messages(CHANNEL).indexOf(catchUp);
    expect(shared.every((m) => w.fake.messages(CHANNEL).indexOf(m) !== catchUpAt + 1)).toBe(true);
    expect(w.fake.files().filter((f) => /catching up/i.test(f.title))).toEqual([]);
  }, 120_000);

  it('should owe the catch-up across a restart: a second poster posts it once, and the approval not again', async () => {
    const w = await world({
      postRatePerChannelPerS: 50,
      poster: { minPostIntervalMs: 30, rootUpdateIntervalMs: 150, retryDelaysMs: [60_000] },
      approvalTimeoutMs: 60_000,
    });
    const run = await w.h.submit('recover', { channel: CHANNEL, requestedBy: LEAD });
    const asked = await waitForEvent(w.h.service, run.runId, isType('approval.requested'));
    // The moment the approval is posted ahead, Slack fails the next post (the catch-up) and the poster waits
    // a minute to try again: it is stopped there, as by a crash.
    const off = w.fake.onCall((call) => {
      if (call.method === 'chat.postMessage' && String(call.args.text).startsWith('Approval needed')) {
        w.fake.failNext('chat.postMessage', { status: 503 });
        off();
      }
    });
    w.poster.watch(run.runId);
    await eventually('the catch-up post refused once', () =>
      w.fake.calls.find((c) => c.status === 503 && String(c.args.text).startsWith('Catching up: ')),
    );
    await w.poster.close();
    expect(w.fake.messages(CHANNEL).filter(isCatchUp)).toEqual([]);

    const second = new ThreadPoster({
      client: new WebClient(TOKEN, {
        slackApiUrl: w.fake.url,
        rejectRateLimitedCalls: true,
        retryConfig: { retries: 0 },
      }),
      redis: db.redis,
      prefix: db.prefix,
      service: w.h.service,
      logger: quietLogger,
      minPostIntervalMs: 30,
      updateLimit: { count: 1000, perMs: 1000 },
    });
    stops.push(() => second.close());
    await second.resumeAll();
    await eventually('the catch-up post', () => w.fake.messages(CHANNEL).find(isCatchUp));
    for (let i = 0; i < 3; i++) await decideNext(w.h.service, run.runId, true, APPROVER);
    await second.settled(run.runId);

    const { posts } = threadOf(w.fake);
    const approvals = posts.filter(isApproval);
    expect(approvals.map((m) => m.text.split(':')[0])).toEqual(['Approved', 'Approved', 'Approved']);
    expect(approvals.filter((m) => m.text.includes(asked.request.title))).toHaveLength(1);
    // The first approval was posted once, ahead, and its catch-up right after it, once.
    const first = posts.findIndex(isApproval);
    expect(posts[first]?.text).toContain(asked.request.title);
    expect(posts[first + 1] && isCatchUp(posts[first + 1] as FakeMessage)).toBe(true);
    expect(posts.filter((m) => m.text === posts[first + 1]?.text)).toHaveLength(1);
    expect((await w.h.service.getApproval(asked.approvalId))?.decision?.approved).toBe(true);
    expect(posts.at(-1)?.text).toMatch(/^Run succeeded after /);
  }, 120_000);
});
