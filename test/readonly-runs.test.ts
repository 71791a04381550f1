import { describe, expect, it } from 'vitest';
import type { FakeSlack } from '../dev/slack/fake-slack.js';
import type { ReadOnlyLimits } from '../src/runs/readonly-runs.js';
import type { ThreadPoster } from '../src/slack/poster.js';
import { type Harness, isType, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { useSlackFronts } from './support/slack-front.js';
import { slashCommandBody } from './support/slack-requests.js';

/**
 * Read-only runs in Slack: replies through the command's response_url even with many runs going, an identical
 * read-only run joins the one already going, and the per-person and per-site limits. No agent runs here: the
 * runs stay queued, which is "going" for everything tested (a join, a limit, a status list).
 */

const CHANNEL = 'C0INCIDENT';
const ALICE = 'U0ALICE001';
const BOB = 'U0BOB00001';
const CAROL = 'U0CAROL001';
const OPERATOR = 'U0OPERATOR';

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);

interface World {
  readonly slack: FakeSlack;
  readonly h: Harness;
  readonly poster: ThreadPoster;
  /** Types `/capi <text>` as `user` in the incident channel; resolves with the call count before it. */
  send(user: string, text: string, more?: { readonly withoutResponseUrl?: true }): Promise<number>;
  /** The reply `user` got after call number `mark`, however it was sent. */
  reply(user: string, mark: number): Promise<{ readonly method: string; readonly text: string }>;
  /** Waits until `n` runs exist. */
  runs(n: number): Promise<void>;
}

async function world(limits?: ReadOnlyLimits): Promise<World> {
  const front = await startSlackFront({
    channels: [CHANNEL],
    users: [ALICE, BOB, CAROL, OPERATOR],
    siteFields: { slack_channels: [CHANNEL] },
    ...(limits !== undefined ? { service: { readOnlyLimits: limits } } : {}),
    agent: false,
    operators: [OPERATOR],
  });
  const { fake: slack, harness: h, poster } = front;
  return {
    slack,
    h,
    poster,
    async send(user, text, more = {}) {
      const mark = slack.calls.length;
      await front.send(slashCommandBody({ user, channel: CHANNEL, text, slack, ...more }));
      return mark;
    },
    async reply(user, mark) {
      const call = await eventually(`a reply to ${user}`, () =>
        slack.calls
          .slice(mark)
          .find(
            (c) =>
              (c.method === 'response_url' || c.method === 'chat.postEphemeral') &&
              c.args.user === user &&
              c.status === 200,
          ),
      );
      return { method: call.method, text: String(call.args.text) };
    },
    async runs(n) {
      await eventually(`${n} runs`, async () =>
        (await h.service.listRuns({})).length === n ? true : undefined,
      );
    },
  };
}

/** Distinct read-only runs: image-check of one image each (an identical ask would join instead). */
const imageCheck = (n: number) => `image-check ubuntu-jammy-kube-v1.32.${n}`;

const threadTexts = (slack: FakeSlack) =>
  slack
    .messages(CHANNEL)
    .filter((m) => m.thread_ts !== undefined)
    .map((m) => JSON.stringify(m.blocks));

describe('read-only runs from Slack', () => {
  it('should answer /capi status through the response_url, never chat.postEphemeral, with 20 runs going in the channel', async () => {
    const w = await world({ perPerson: 100, perSite: 100, windowMs: 60_000 });
    for (let i = 0; i < 20; i++) await w.send(OPERATOR, imageCheck(i));
    await w.runs(20);
    expect((await w.h.service.listRuns({ active: true })).length).toBe(20);
    const mark = await w.send(ALICE, 'status');
    const reply = await w.reply(ALICE, mark);
    expect(reply.method).toBe('response_url');
    expect(reply.text.split('\n')).toHaveLength(15);
    expect(reply.text).toMatch(/\*queued\* -- image-check on site-0/);
    expect(w.slack.calls.filter((c) => c.method === 'chat.postEphemeral')).toEqual([]);
    expect(w.slack.ephemerals(CHANNEL).map((e) => [e.user, e.via])).toEqual([[ALICE, 'response_url']]);
  });

  it('should fall back to chat.postEphemeral only for a command that carries no response_url', async () => {
    const w = await world();
    const mark = await w.send(ALICE, 'help', { withoutResponseUrl: true });
    const reply = await w.reply(ALICE, mark);
    expect(reply).toMatchObject({
      method: 'chat.postEphemeral',
      text: expect.stringContaining('/capi help'),
    });
    expect(w.slack.calls.filter((c) => c.method === 'response_url')).toEqual([]);
  });

  it('should let a second identical /capi diagnose join the one going, and point the person to its thread', async () => {
    const w = await world();
    await w.send(ALICE, 'diagnose');
    await w.runs(1);
    const [run] = await w.h.service.listRuns({});
    const runId = run?.runId as string;

    const joined = await w.reply(BOB, await w.send(BOB, 'diagnose'));
    expect(joined.method).toBe('response_url');
    expect(joined.text).toContain(
      `The same \`diagnose\` of site \`site-0\` is already queued (run id: \`${runId}\`, asked by <@${ALICE}>): you joined it instead of starting another.`,
    );
    expect(joined.text).toContain('Its thread in this channel mentions you');

    // Asking again joins again, and the thread will not say it twice.
    const again = await w.reply(BOB, await w.send(BOB, 'diagnose'));
    expect(again.text).toContain(`run id: \`${runId}\``);
    expect(again.text).not.toContain('mentions you');
    const joins = (await w.h.service.readTimeline(runId)).filter((e) => e.event.type === 'run.joined');
    expect(joins.map((e) => e.event)).toEqual([{ type: 'run.joined', by: BOB }]);
    expect(await w.h.service.listRuns({})).toHaveLength(1);

    // An agent takes the run: its thread starts, and says who joined while it was queued, mentioning them.
    await w.h.startAgent();
    await waitForEvent(w.h.service, runId, isType('run.finished'), 60_000);
    await w.poster.settled(runId);
    expect(threadTexts(w.slack).filter((t) => t.includes('asked for the same run'))).toEqual([
      expect.stringContaining(`<@${BOB}> asked for the same run while this one goes: joined it here`),
    ]);
  });

  it('should start one diagnosis for 30 /capi diagnose from one person at once, and tell each of the 29 others why', async () => {
    const w = await world({ perPerson: 3, perSite: 30, windowMs: 60_000 });
    const mark = w.slack.calls.length;
    await Promise.all(Array.from({ length: 30 }, () => w.send(ALICE, 'diagnose')));
    const replies = await eventually('29 replies to Alice', () => {
      const got = w.slack.calls
        .slice(mark)
        .filter((c) => c.method === 'response_url' && c.args.user === ALICE);
      return got.length >= 29 ? got : undefined;
    });
    expect(await w.h.service.listRuns({})).toHaveLength(1);
    const [run] = await w.h.service.listRuns({});
    expect(replies.every((c) => String(c.args.text).includes(`run id: \`${run?.runId}\``))).toBe(true);
    expect(replies.every((c) => String(c.args.text).includes('you joined it'))).toBe(true);
    expect(w.slack.calls.filter((c) => c.method === 'chat.postEphemeral')).toEqual([]);
  });

  it('should refuse read-only runs past the per-person and the per-site limit, saying which and when to retry', async () => {
    const w = await world({ perPerson: 2, perSite: 3, windowMs: 60_000 });
    await w.send(ALICE, imageCheck(1));
    await w.send(ALICE, imageCheck(2));
    await w.runs(2);
    const mine = await w.reply(ALICE, await w.send(ALICE, imageCheck(3)));
    expect(mine.text).toMatch(
      /^Nothing was started: you started 2 read-only runs in the last 1 min \(the CAPI_READONLY_PER_PERSON limit\)\. Try again in (1 min|[1-5]?\d s);/,
    );
    // Joining a run already going starts nothing, so no limit stops it.
    expect((await w.reply(ALICE, await w.send(ALICE, imageCheck(1)))).text).toContain('you joined it');

    await w.send(BOB, imageCheck(4));
    await w.runs(3);
    const site = await w.reply(CAROL, await w.send(CAROL, imageCheck(5)));
    expect(site.text).toMatch(
      /^Nothing was started: site site-0 had 3 read-only runs started in the last 1 min \(the CAPI_READONLY_PER_SITE limit\)\. Try again in (1 min|[1-5]?\d s);/,
    );
    expect((await w.h.service.listRuns({})).map((r) => r.params.image).sort()).toEqual(
      [1, 2, 4].map((n) => `ubuntu-jammy-kube-v1.32.${n}`),
    );
  });
});
