import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WebClient } from '@slack/web-api';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMessage, type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { ThreadPoster } from '../src/slack/poster.js';
import {
  decideNext,
  type Harness,
  isType,
  quietLogger,
  startHarness,
  waitForEvent,
} from './support/agent.js';
import { useTestRedis } from './support/redis.js';
import { FAST_FAKE_SLACK, FAST_POSTER } from './support/slack-pace.js';

/**
 * Issue 22: the incident thread told as an on-call lead would tell it. Through the real agent, the simulated
 * cloud, the real ThreadPoster and the strict fake Slack: each approval message is its decision's whole
 * story, a step that only confirmed what was expected lives in the root's checklist, and items are named.
 */

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const TOKEN = ['xoxb', '2222222222', '3333333333333', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const CHANNEL = 'C0INCIDENT';
const LEAD = 'U0LEAD0001';
const APPROVER = 'U0APPROVER';

/** The outage with a third zombie amphora: recover asks four approvals (three deletions, one failover). */
const THREE_ZOMBIES = `
extends: outage
description: the outage, with a third zombie amphora server
servers:
  5e000000-0000-4000-8000-0000000000e3:
    name: amphora-a0000000-0000-4000-8000-0000000000e3
    project: services
    host: 4e000000-0000-4000-8000-000000000000
    flavor: f1000000-0000-4000-8000-0000000000a0
    image: 1e000000-0000-4000-8000-0000000000a0
    status: ERROR
    role: amphora
    age_s: 7000
`;

const db = useTestRedis();
let runbooks: RunbookSet;
let dir: string;
const stops: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
  dir = await mkdtemp(path.join(os.tmpdir(), 'capi-thread-story-'));
  await writeFile(path.join(dir, 'three-zombies.yaml'), THREE_ZOMBIES);
  return () => rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

interface World {
  readonly h: Harness;
  readonly fake: FakeSlack;
  readonly poster: ThreadPoster;
}

async function world(
  scenario: string,
  more: Partial<Parameters<typeof startHarness>[0]> = {},
): Promise<World> {
  const fake = await startFakeSlack({
    token: TOKEN,
    channels: [CHANNEL],
    users: { [LEAD]: { groups: [] }, [APPROVER]: { groups: [] } },
    ...FAST_FAKE_SLACK,
  });
  stops.push(() => fake.close());
  const h = await startHarness({
    redis: db.redis,
    prefix: db.prefix,
    runbooks,
    scenarios: [scenario],
    approvers: [APPROVER],
    ...more,
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
    ...FAST_POSTER,
  });
  stops.push(() => poster.close());
  return { h, fake, poster };
}

/** Every text a message shows: its fallback and each text of its blocks, as written. */
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

function threadOf(fake: FakeSlack): { root: FakeMessage; replies: FakeMessage[] } {
  const all = fake.messages(CHANNEL);
  const roots = all.filter((m) => m.thread_ts === undefined);
  expect(roots).toHaveLength(1);
  const root = roots[0] as FakeMessage;
  return { root, replies: all.filter((m) => m.thread_ts === root.ts) };
}

/** The first line a reply shows (its notification text), or the file it shares. */
const said = (fake: FakeSlack, m: FakeMessage): string =>
  m.files ? `file ${fake.files().find((f) => f.id === m.files?.[0])?.filename}` : m.text;

/** What a raw `-o json` or `-f yaml` tail looks like in a post. */
const RAW_OUTPUT = /"(apiVersion|items|metadata|kind)"\s*:|provisioning_status: |^\s*[{[]\s*$/m;
/** The posts the thread no longer makes: each said what an approval message or the checklist says. */
const NOISE =
  /^(Run resumed|Catching up|Output of|Step \d+ of \d+ (approved|denied|approval expired|: sending))/;

const E = (n: number) => `5e000000-0000-4000-8000-0000000000e${n}`;
const LB_ID = '1b000000-0000-4000-8000-000000000001';
const LB_NAME = 'k8s-clusterapi-cluster-magnum-c0ffee00c0ffee00c0ffee00c0ffee00-capi-test-1-q8w4n-kubeapi';

describe('the incident thread, as an on-call lead would tell it', () => {
  it('should tell a recover with four approvals in at most 20 messages, every decision and outcome on its approval message', async () => {
    const w = await world(path.join(dir, 'three-zombies.yaml'));
    const run = await w.h.submit('recover', { channel: CHANNEL, requestedBy: LEAD });
    w.poster.watch(run.runId);
    for (let i = 0; i < 4; i++) await decideNext(w.h.service, run.runId, true, APPROVER);
    const finished = await waitForEvent(w.h.service, run.runId, isType('run.finished'), 120_000);
    expect(finished.status).toBe('succeeded');
    await w.poster.settled(run.runId);

    const { root, replies } = threadOf(w.fake);
    // The root and every reply, approval messages and file shares included.
    expect(1 + replies.length).toBeLessThanOrEqual(20);
    // What each says, in order: what the steps found, each decision's whole story, the run's end.
    const orphan = (n: number) =>
      new RegExp(`^Approved: Delete orphaned amphora server ${E(n)} \\(run \\S+\\) · done in `);
    const story = [
      /^Step 1 of 19 ok: Read the mgmt VM's state · capi-mgmt-v2 is SHUTOFF \(parked or D-041\) -&gt; starting it$/,
      /^Step 12 of 19 ok: Read the load balancers \(DECISION\) · 1 LB\(s\): 0 ACTIVE, 1 in ERROR$/,
      /^Step 14 of 19 ok: Compare with nova's amphora servers \(extras are orphans\) · 4 amphora server\(s\) in nova, 3 not in octavia's list$/,
      new RegExp(`^file ${run.runId}-find-orphans\\.log$`),
      orphan(2),
      orphan(3),
      orphan(1),
      /^Step 16 of 19 ok: Check \+1 amphora headroom before failing over \S+ · 1 of 3 hypervisor\(s\) can place one more amphora$/,
      new RegExp(`^file ${run.runId}-failover_headroom-1\\.log$`),
      new RegExp(`^Approved: Fail over load balancer ${LB_ID} \\(run \\S+\\) · done in `),
      /^Run succeeded after .+, .+ of it waiting for approval: recovered: mgmt VM up/,
    ];
    const lines = replies.map((m) => said(w.fake, m));
    expect(lines).toHaveLength(story.length);
    for (const [i, line] of lines.entries()) expect(line).toMatch(story[i] as RegExp);
    for (const m of replies) {
      expect(m.text).not.toMatch(NOISE);
      expect(text(m)).not.toMatch(RAW_OUTPUT);
    }

    // Each approval message is its decision's story: asked, decided, sent, outcome; edited, never re-posted.
    const approvals = replies.filter((m) => m.text.startsWith('Approved: '));
    expect(approvals).toHaveLength(4);
    for (const a of approvals) {
      const t = text(a);
      // Its header says where the decision stands (the first text after the notification).
      expect(t.split('\n')[1]).toMatch(/^Approved: /);
      expect(t).toMatch(/\*Targets \(1\)\*/);
      expect(t).toMatch(/\*Evidence \(3\)\*/);
      expect(t).toMatch(/· expires <!date\^\d+\^/);
      expect(t).toMatch(/:white_check_mark: \*Approved\* by <@U0APPROVER> at <!date\^\d+\^/);
      expect(t).toMatch(/:rocket: \*Sent\* at <!date\^\d+\^/);
      expect(t).toMatch(/:white_check_mark: \*Done\*: exit 0 in \S+/);
      expect(t).not.toContain('capi_approve');
      expect(a.updates).toBeGreaterThanOrEqual(2);
    }
    // Names, not ids: the item as a person knows it, its ids in a code span after it.
    for (const n of [1, 2, 3]) {
      const a = approvals.find((m) => m.text.includes(E(n))) as FakeMessage;
      expect(text(a)).toMatch(
        new RegExp(
          `item \\d of 3: nova server amphora-a0000000-0000-4000-8000-0000000000e${n} \\((ERROR|ACTIVE)\\) \`${E(n)} a0000000-0000-4000-8000-0000000000e${n}\``,
        ),
      );
    }
    expect(text(approvals[3] as FakeMessage)).toContain(
      `item 1 of 1: load balancer ${LB_NAME}, VIP 127.0.10.50 \`${LB_ID}\``,
    );
    // The failover's outcome is what watching the LB read afterwards, on the same message.
    expect(text(approvals[3] as FakeMessage)).toMatch(
      /:white_check_mark: \*Then\* Watch \S+ until ACTIVE or ERROR: done in \S+ · attempt \d+ of 60: prov=ACTIVE op=ONLINE/,
    );

    // Every fact is still there: what the steps that only confirmed found is in the root's checklist.
    const checklist = text(root);
    for (const fact of [
      /Check every CAPI controller pod is Running · step 10 of 19 · \S+ · 10 of 10 controller pods Running/,
      /Check every Machine is Running · step 11 of 19 · \S+ · 2 of 2 Machines Running/,
      /Every amphora ALLOCATED · step 17 of 19 · \S+ · 1 of 1 amphora\(e\) ALLOCATED/,
      /Magnum health of capi-test-1 · step 19 of 19 · \S+ · Magnum health UNHEALTHY/,
      /:white_check_mark: \*succeeded\* after /,
    ]) {
      expect(checklist).toMatch(fact);
    }
    const thread = replies.map(text).join('\n');
    expect(thread).toContain('1 LB(s) provisioning=ERROR');
    expect(thread).toMatch(/3 orphaned amphora server\(s\): /);
    // The cloud agrees: the three zombies are gone, the LB was failed over.
    const journal = (await w.h.sims[0]?.journal()) ?? [];
    expect(journal.filter((j) => j.action === 'server.delete')).toHaveLength(3);
  }, 120_000);

  it('should say a denial once in the thread, on the approval message, and once at the run end', async () => {
    const w = await world('outage');
    const run = await w.h.submit('recover', { channel: CHANNEL, requestedBy: LEAD });
    w.poster.watch(run.runId);
    await decideNext(w.h.service, run.runId, false, APPROVER);
    const finished = await waitForEvent(w.h.service, run.runId, isType('run.finished'), 120_000);
    expect(finished.status).toBe('denied');
    await w.poster.settled(run.runId);

    const { root, replies } = threadOf(w.fake);
    const denials = replies.filter((m) => /denied/i.test(text(m)));
    expect(denials.map((m) => m.text)).toEqual([
      expect.stringMatching(/^Denied: Delete orphaned amphora server /),
      expect.stringMatching(
        /^Run denied after .*: sweep\/delete-orphan: denied by U0APPROVER; nothing destructive was run$/,
      ),
    ]);
    expect(replies.at(-1)).toBe(denials[1]);
    const message = text(denials[0] as FakeMessage);
    expect(message).toMatch(/:no_entry: \*Denied\* by <@U0APPROVER> at <!date\^\d+\^/);
    expect(message.split('\n')[1]).toMatch(/^Denied: Delete orphaned amphora server /);
    expect(message).not.toMatch(/\*Sent\*|\*Done\*|capi_approve/);
    for (const m of replies) expect(m.text).not.toMatch(NOISE);
    expect(text(root)).toMatch(/\*DENIED\*/);
    const journal = (await w.h.sims[0]?.journal()) ?? [];
    expect(journal.filter((j) => j.action === 'server.delete')).toEqual([]);
  }, 120_000);

  it('should never show a decision the agent refused as approved: its message says the agent refused it and why', async () => {
    // A front with a wider approver list than the agent (misconfigured, or compromised): the agent's counts.
    const w = await world('healthy', { service: { approvers: [APPROVER, 'U0MALLORY1'] } });
    const run = await w.h.submit('park', { channel: CHANNEL, requestedBy: LEAD });
    w.poster.watch(run.runId);
    const asked = await waitForEvent(w.h.service, run.runId, isType('approval.requested'));
    const r = await w.h.service.decide(
      asked.approvalId,
      { userId: 'U0MALLORY1', groupIds: [] },
      true,
      'slack',
    );
    expect(r.outcome).toBe('decided');
    const finished = await waitForEvent(w.h.service, run.runId, isType('run.finished'), 60_000);
    expect(finished.status).toBe('failed');
    await w.poster.settled(run.runId);

    const { replies } = threadOf(w.fake);
    const approval = replies.find((m) =>
      JSON.stringify(m.blocks).includes(asked.request.title),
    ) as FakeMessage;
    expect(approval.text).toMatch(/^Refused by the agent: /);
    const t = text(approval);
    expect(t).not.toMatch(/Approved\* by|\*Sent\*|\*Done\*/);
    expect(t.split('\n')[1]).toBe(`Refused by the agent: ${asked.request.title}`);
    expect(t).toMatch(
      /:no_entry: \*Decision refused by the agent\* at <!date\^\d+\^[^>]+>: the decision recorded as <@U0MALLORY1>'s was not accepted \(.*U0MALLORY1 may not decide: they are not in CAPI_APPROVERS.*\)\. Nothing destructive was run; the run stops here\./,
    );
    // Said on the approval message and at the run's end, not in a post of its own.
    expect(replies.filter((m) => /refused/i.test(text(m)))).toEqual([approval, replies.at(-1)]);
    expect(replies.at(-1)?.text).toMatch(/^Run failed after .*refused by the agent/);
    const journal = (await w.h.sims[0]?.journal()) ?? [];
    expect(journal.filter((j) => j.action === 'server.stop')).toEqual([]);
  }, 60_000);
});
