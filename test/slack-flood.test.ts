import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { FakeSlack } from '../dev/slack/fake-slack.js';
import { createAuditLog } from '../src/ops/audit.js';
import { FloodLimit } from '../src/slack/flood-limit.js';
import { type Harness, isType, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { useSlackFronts } from './support/slack-front.js';
import {
  approvalsPostedIn,
  buttonClickBody,
  slashCommandBody,
  viewSubmissionBody,
} from './support/slack-requests.js';

/**
 * Flood limits through the real Bolt receiver: signed requests in, the strict fake Slack out, Redis counters.
 * Limits are small (3 refusals, 2 uploads per minute) so a flood is a handful of requests.
 */

const CHANNEL = 'C0INCIDENT';
const OPERATOR = 'U0OPERATOR';
const APPROVER = 'U0APPROVER';
const STRANGER = 'U0STRANGER';
const LIMITS = { refusals: 3, uploads: 2, windowMs: 60_000 };

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);

interface World {
  readonly slack: FakeSlack;
  readonly harness: Harness;
  readonly audit: string[];
  send(body: string): Promise<void>;
  /** The receiver's answer, for requests whose ack carries it (a dialog's submission). */
  answer(body: string): Promise<unknown>;
}

async function world(): Promise<World> {
  const audit: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      audit.push(String(chunk));
      done();
    },
  });
  const front = await startSlackFront({
    channels: [CHANNEL],
    users: [OPERATOR, APPROVER, STRANGER],
    approvers: [APPROVER],
    operators: [OPERATOR],
    service: { audit: createAuditLog({ destination: sink }) },
    poster: false,
    approvalPlaces: approvalsPostedIn(CHANNEL),
    appOptions: { flood: new FloodLimit(db.redis, db.prefix, LIMITS) },
  });
  return {
    slack: front.fake,
    harness: front.harness,
    audit,
    send: async (body) => {
      await front.send(body);
    },
    answer: async (body) => {
      const res = await front.send(body);
      const text = await res.text();
      return text === '' ? undefined : JSON.parse(text);
    },
  };
}

const command = (w: World, user: string, text: string) =>
  slashCommandBody({ user, channel: CHANNEL, text, slack: w.slack });
const click = (user: string, value: string) =>
  buttonClickBody({ user, channel: CHANNEL, actionId: 'capi_approve', value });
const ephemeralsTo = (w: World, user: string) => w.slack.ephemerals(CHANNEL).filter((e) => e.user === user);

/** Waits until `user` has received `n` ephemerals. */
const ephemeralCount = (w: World, user: string, n: number) =>
  eventually(`${n} ephemerals to ${user}`, () => (ephemeralsTo(w, user).length >= n ? true : undefined));

/**
 * A request from someone else, answered with an ephemeral: the requests sent before it were taken in before it
 * and check the flood state first, so once its answer is there they are done.
 */
async function barrier(w: World): Promise<void> {
  const before = ephemeralsTo(w, APPROVER).length;
  await w.send(command(w, APPROVER, 'help'));
  await ephemeralCount(w, APPROVER, before + 1);
}

describe('flood limits over signed requests', () => {
  it('should answer refused commands up to the limit, say slow down once, then ignore the user for the window', async () => {
    const w = await world();
    for (let i = 1; i <= LIMITS.refusals; i++) {
      await w.send(command(w, STRANGER, 'park'));
      await ephemeralCount(w, STRANGER, i);
    }
    expect(ephemeralsTo(w, STRANGER).map((e) => e.text)).toEqual(
      Array(LIMITS.refusals).fill(expect.stringMatching(/^Only CAPI_OPERATORS may start or cancel runs/)),
    );
    await w.send(command(w, STRANGER, 'no-such-subcommand'));
    await ephemeralCount(w, STRANGER, LIMITS.refusals + 1);
    expect(ephemeralsTo(w, STRANGER).at(-1)?.text).toMatch(/^Slow down: .* ignored/);

    // Flooded: nothing more is said or done for them, not even what they may normally do.
    for (const text of ['park', 'bogus', 'help', 'diagnose']) await w.send(command(w, STRANGER, text));
    await barrier(w);
    expect(ephemeralsTo(w, STRANGER)).toHaveLength(LIMITS.refusals + 1);
    expect(await w.harness.service.listRuns({})).toEqual([]);
    // Someone else is not affected.
    await w.send(command(w, OPERATOR, 'bogus'));
    await ephemeralCount(w, OPERATOR, 1);
    expect(ephemeralsTo(w, OPERATOR)[0]?.text).toMatch(/is not a \/capi subcommand/);
  });

  it('should stop storing refused clicks, their ephemerals and audit lines once the clicker floods', async () => {
    const w = await world();
    await w.send(command(w, OPERATOR, 'park'));
    const runId = await eventually(
      'the park run',
      async () => (await w.harness.service.listRuns({}))[0]?.runId,
    );
    await waitForEvent(w.harness.service, runId, isType('approval.requested'));
    const approvalId = (await w.harness.service.pendingApprovals(runId))[0]?.approvalId as string;

    // The operator asked for the run: each of their clicks is refused.
    for (let i = 1; i <= LIMITS.refusals + 1; i++) {
      await w.send(click(OPERATOR, approvalId));
      await ephemeralCount(w, OPERATOR, i);
    }
    const texts = ephemeralsTo(w, OPERATOR).map((e) => e.text);
    expect(texts.slice(0, LIMITS.refusals).every((t) => t.startsWith('Your click changed nothing'))).toBe(
      true,
    );
    expect(texts.at(-1)).toMatch(/^Slow down/);
    const refusedAudit = () => w.audit.filter((l) => l.includes('"event":"approval.refused"')).length;
    const refusedTimeline = async () =>
      (await w.harness.service.readTimeline(runId)).filter((e) => e.event.type === 'approval.refused').length;
    expect(await refusedTimeline()).toBe(LIMITS.refusals);
    // The click that crossed the limit was audited before it was counted; none after it is.
    expect(refusedAudit()).toBe(LIMITS.refusals + 1);

    for (let i = 0; i < 5; i++) await w.send(click(OPERATOR, approvalId));
    await barrier(w);
    expect(ephemeralsTo(w, OPERATOR)).toHaveLength(LIMITS.refusals + 1);
    expect(await refusedTimeline()).toBe(LIMITS.refusals);
    expect(refusedAudit()).toBe(LIMITS.refusals + 1);

    // The approver's click still decides.
    await w.send(click(APPROVER, approvalId));
    expect((await waitForEvent(w.harness.service, runId, isType('run.finished'))).status).toBe('succeeded');
  });

  it('should refuse reason dialogs from a flooding submitter without looking at them, and store no more refusals', async () => {
    const w = await world();
    await w.send(command(w, OPERATOR, 'park'));
    const runId = await eventually(
      'the park run',
      async () => (await w.harness.service.listRuns({}))[0]?.runId,
    );
    await waitForEvent(w.harness.service, runId, isType('approval.requested'));
    const approvalId = (await w.harness.service.pendingApprovals(runId))[0]?.approvalId as string;
    await w.send(
      buttonClickBody({
        user: STRANGER,
        channel: CHANNEL,
        actionId: 'capi_deny',
        value: approvalId,
        triggerId: w.slack.issueTrigger(STRANGER),
      }),
    );
    const dialog = await eventually('the deny dialog', () => w.slack.modals()[0]);
    const submit = () =>
      w.answer(
        viewSubmissionBody({ user: STRANGER, view: dialog, values: { capi_reason: { reason: 'no' } } }),
      );
    const shown = (answer: unknown) => (answer as { errors?: { capi_reason?: string } }).errors?.capi_reason;

    for (let i = 1; i <= LIMITS.refusals; i++) {
      expect(shown(await submit())).toMatch(/^Not recorded: you are not in CAPI_APPROVERS/);
    }
    const refusedTimeline = async () =>
      (await w.harness.service.readTimeline(runId)).filter((e) => e.event.type === 'approval.refused').length;
    expect(await refusedTimeline()).toBe(LIMITS.refusals);
    // Past the limit: the dialog says slow down (closing it would read as recorded), and nothing is stored.
    for (let i = 0; i < 4; i++) expect(shown(await submit())).toMatch(/^Slow down: /);
    expect(await refusedTimeline()).toBe(LIMITS.refusals);
    expect((await w.harness.service.getApproval(approvalId))?.decision).toBeUndefined();
  });

  it('should upload the timeline up to the limit, say slow down once, then upload nothing', async () => {
    const w = await world();
    await w.send(command(w, OPERATOR, 'park'));
    const runId = await eventually(
      'the park run',
      async () => (await w.harness.service.listRuns({}))[0]?.runId,
    );
    await waitForEvent(w.harness.service, runId, isType('approval.requested'));
    await w.send(command(w, OPERATOR, `cancel ${runId}`));
    await waitForEvent(w.harness.service, runId, isType('run.finished'));
    const uploads = () => w.slack.files().filter((f) => f.filename === `${runId}-timeline.md`).length;

    // Anyone may read a timeline; a stranger repeating it is the flood.
    for (let i = 1; i <= LIMITS.uploads; i++) {
      await w.send(command(w, STRANGER, `timeline ${runId}`));
      await eventually(`upload ${i}`, () => (uploads() >= i ? true : undefined));
    }
    await w.send(command(w, STRANGER, `timeline ${runId}`));
    await ephemeralCount(w, STRANGER, 1);
    expect(ephemeralsTo(w, STRANGER)[0]?.text).toMatch(/^Slow down/);
    for (let i = 0; i < 3; i++) await w.send(command(w, STRANGER, `timeline ${runId}`));
    await barrier(w);
    expect(uploads()).toBe(LIMITS.uploads);
    expect(ephemeralsTo(w, STRANGER)).toHaveLength(1);
  });

  it('should count in Redis, so every serve replica shares the limit and a window ends it', async () => {
    const a = new FloodLimit(db.redis, db.prefix, { refusals: 1, uploads: 1, windowMs: 300 });
    const b = new FloodLimit(db.redis, db.prefix, { refusals: 1, uploads: 1, windowMs: 300 });
    expect(
      await Promise.all([a.hit('U1', 'refusal'), b.hit('U1', 'refusal'), a.hit('U1', 'refusal')]),
    ).toEqual(['ok', 'slow_down', 'silent']);
    expect(await b.blocked('U1')).toBe(true);
    expect(await a.blocked('U2')).toBe(false);
    await eventually('the window to end', async () => ((await a.blocked('U1')) ? undefined : true));
    expect(await a.hit('U1', 'refusal')).toBe('ok');
  });
});
