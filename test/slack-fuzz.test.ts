/**
 * Seeded fuzzing of the Slack front through Bolt's real HTTP receiver: malformed `/capi` texts and correctly
 * signed clicks with forged action ids, blocks, values, places and teams, while a real run waits at a real
 * approval. Every request must be answered 2xx within Slack's 3 s, the app must keep working, and nothing
 * may be started, decided or sent to the jumphost. CAPI_FUZZ_SEED=<n> replays a failing seed (printed).
 */
import { describe, expect, it } from 'vitest';
import type { FakeSlack } from '../dev/slack/fake-slack.js';
import { capiCommands } from '../src/slack/command.js';
import type { ThreadPoster } from '../src/slack/poster.js';
import { type Harness, isType, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { type SlackFront, useSlackFronts } from './support/slack-front.js';
import { buttonClickBody, slashCommandBody } from './support/slack-requests.js';

const CHANNEL = 'C0INCIDENT';
const ELSEWHERE = 'C0ELSEWHERE';
const OPERATOR = 'U0OPERATOR';
const APPROVER = 'U0APPROVER';
const STRANGER = 'U0STRANGER';
const SEED = Number(process.env.CAPI_FUZZ_SEED ?? 20261201);
const COUNT = 300;

/** mulberry32: small, fast and the same sequence for the same seed on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);
const ODD = [
  '',
  ' ',
  '\t',
  '\n',
  '`',
  '*',
  '<!channel>',
  '<@U0APPROVER>',
  '{{x}}',
  '$(id)',
  ';rm -rf /',
  '..',
  '%00',
  '\u202e',
  '🙂',
  'é',
];

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);
let h: Harness;
let fake: FakeSlack;
let poster: ThreadPoster;
let front: SlackFront;

/** One app instance, its agent and its thread poster for the whole suite. */
async function setUp(): Promise<void> {
  front = await startSlackFront({
    channels: [CHANNEL, ELSEWHERE],
    users: {
      [OPERATOR]: { groups: [] },
      [APPROVER]: { groups: ['S0APPROVERS'] },
      [STRANGER]: { groups: [] },
    },
    fake: { postRatePerChannelPerS: 100 },
    approvers: ['S0APPROVERS', OPERATOR],
    operators: [OPERATOR],
    poster: { minPostIntervalMs: 10 },
  });
  ({ harness: h, fake, poster } = front);
}

async function send(body: string): Promise<{ status: number; ms: number }> {
  const t0 = Date.now();
  const res = await front.post(body);
  await res.arrayBuffer();
  return { status: res.status, ms: Date.now() - t0 };
}

/** Sends every body, a few at a time, and returns each answer. */
async function sendAll(bodies: readonly string[]): Promise<{ status: number; ms: number }[]> {
  const out: { status: number; ms: number }[] = [];
  for (let i = 0; i < bodies.length; i += 8) {
    out.push(...(await Promise.all(bodies.slice(i, i + 8).map(send))));
  }
  return out;
}

describe('the Slack front under fuzzed requests', () => {
  it(`should answer every malformed command and forged click 2xx within 3 s and change nothing (seed ${SEED})`, async () => {
    const rnd = prng(SEED);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)] as T;
    const junk = (max: number) =>
      Array.from({ length: Math.floor(rnd() * max) }, () =>
        String.fromCodePoint(32 + Math.floor(rnd() * 0x2ff)),
      ).join('');
    const where = `seed ${SEED} (replay: CAPI_FUZZ_SEED=${SEED})`;
    await setUp();

    // A real run waits at a real approval, its message posted by the thread poster.
    const park = await h.service.submit({
      runbook: 'park',
      args: [],
      site: 'site-0',
      requestedBy: OPERATOR,
      channel: CHANNEL,
    });
    poster.watch(park.runId);
    await waitForEvent(h.service, park.runId, isType('approval.requested'));
    const [pending] = await h.service.pendingApprovals(park.runId);
    const approvalId = pending?.approvalId as string;
    const ts = await eventually(
      'the approval message',
      () =>
        fake.messages(CHANNEL).find((m) => JSON.stringify(m.blocks).includes(`"value":"${approvalId}"`))?.ts,
    );

    // Commands: every subcommand word and prototype name with wrong or odd arguments; never a complete
    // run or cancel (those would be legitimate requests).
    const capi = capiCommands(h.service.runbooks());
    const words = [
      ...h.service.runbooks().map((r) => r.name),
      'status',
      'timeline',
      'cancel',
      'help',
      ...PROTOTYPE_NAMES,
    ];
    const commands: string[] = [];
    while (commands.length < COUNT) {
      const text = Array.from({ length: Math.floor(rnd() * 4) }, () =>
        pick([
          pick(words),
          pick(ODD),
          junk(30),
          approvalId,
          park.runId,
          'x'.repeat(Math.floor(rnd() * 5000)),
        ]),
      ).join(pick([' ', '  ', '\t', '']));
      const kind = capi.parse(text).kind;
      if (kind === 'run' || kind === 'cancel') continue;
      commands.push(
        slashCommandBody({
          user: pick([OPERATOR, STRANGER, APPROVER]),
          channel: pick([CHANNEL, ELSEWHERE]),
          text,
          slack: fake,
        }),
      );
    }

    // Clicks: signed, with forged action ids, blocks, values, places, teams and shapes; the one legitimate
    // combination (an approver, on the approval message, naming it) is never sent.
    const clicks: string[] = [];
    while (clicks.length < COUNT) {
      const user = pick([OPERATOR, STRANGER, APPROVER]);
      const actionId = pick([
        'capi_approve',
        'capi_deny',
        'capi_approve',
        junk(20),
        pick(PROTOTYPE_NAMES),
        '',
      ]);
      const blockId = pick(['capi_approval', 'capi_approval', junk(10), pick(PROTOTYPE_NAMES)]);
      const value = pick([
        approvalId,
        approvalId,
        `${approvalId}x`,
        approvalId.slice(0, -1),
        `approval~${junk(20)}`,
        junk(40),
        '',
        'y'.repeat(2100),
      ]);
      const channel = pick([CHANNEL, CHANNEL, ELSEWHERE]);
      const messageTs = pick([ts, ts, '1700000000.000100', junk(12)]);
      const team = pick([undefined, undefined, 'T0OTHERCO']);
      const legitimate =
        user === APPROVER &&
        actionId.startsWith('capi_') &&
        ['capi_approve', 'capi_deny'].includes(actionId) &&
        blockId === 'capi_approval' &&
        value === approvalId &&
        channel === CHANNEL &&
        messageTs === ts &&
        team === undefined;
      if (legitimate) continue;
      const body = buttonClickBody({
        user,
        channel,
        actionId,
        value,
        blockId,
        messageTs,
        ...(team ? { userTeam: team } : {}),
      });
      const payload = JSON.parse(decodeURIComponent(body.slice('payload='.length)));
      const shape = rnd();
      // Truncated or tampered shapes: no actions, two actions, no user, no channel, no container.
      if (shape < 0.05) payload.actions = [];
      else if (shape < 0.1) payload.actions = [payload.actions[0], payload.actions[0]];
      else if (shape < 0.13) delete payload.user;
      else if (shape < 0.16) delete payload.channel;
      else if (shape < 0.2) delete payload.container;
      clicks.push(`payload=${encodeURIComponent(JSON.stringify(payload))}`);
    }

    const answers = await sendAll([...commands, ...clicks]);
    const slow = answers.filter((a) => a.status < 200 || a.status > 299 || a.ms >= 3000);
    expect(slow, `${where}: requests not answered 2xx within 3 s`).toEqual([]);

    // Nothing started, nothing decided, nothing asked again, nothing sent to the jumphost.
    expect(
      (await h.service.listRuns({})).map((r) => r.runId),
      where,
    ).toEqual([park.runId]);
    expect((await h.service.getApproval(approvalId))?.decision, where).toBeUndefined();
    const events = (await h.service.readTimeline(park.runId)).map((e) => e.event.type);
    expect(
      events.filter((t) => t === 'approval.requested'),
      where,
    ).toHaveLength(1);
    expect(
      events.filter((t) => t === 'approval.decided'),
      where,
    ).toEqual([]);
    expect(
      (await h.sims[0]?.journal())?.filter((j) => j.action === 'server.stop'),
      where,
    ).toEqual([]);

    // Still up and still itself: the approver's real click on the real message decides.
    const click = buttonClickBody({
      user: APPROVER,
      channel: CHANNEL,
      actionId: 'capi_approve',
      value: approvalId,
      messageTs: ts,
    });
    expect((await send(click)).status).toBe(200);
    expect((await waitForEvent(h.service, park.runId, isType('run.finished'))).status, where).toBe(
      'succeeded',
    );
  }, 120_000);
});
