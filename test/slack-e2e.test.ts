import { describe, expect, it } from 'vitest';
import type { FakeMessage } from '../dev/slack/fake-slack.js';
import { isType, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { type SlackFront, useSlackFronts } from './support/slack-front.js';
import {
  approvalMessageTs,
  buttonClickBody,
  slashCommandBody,
  viewSubmissionBody,
} from './support/slack-requests.js';

/**
 * The whole Slack path: signed /capi -> Bolt -> RunService -> agent -> engine -> simulated cloud,
 * and back: timeline -> thread poster -> the (fake) channel, with humans clicking the buttons the
 * bot posted.
 */

const CHANNEL = 'C0INCIDENT';
const LEAD = 'U0LEAD0001';
const APPROVER = 'U0APPROVER';

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);

interface World {
  readonly h: SlackFront['harness'];
  readonly fake: SlackFront['fake'];
  readonly poster: SlackFront['poster'];
  readonly front: SlackFront;
}

async function world(scenario: string): Promise<World> {
  const front = await startSlackFront({
    scenarios: [scenario],
    channels: [CHANNEL],
    users: [LEAD, APPROVER],
    approvers: [LEAD, APPROVER],
    operators: [LEAD],
  });
  return { h: front.harness, fake: front.fake, poster: front.poster, front };
}

async function slash(w: World, user: string, text: string): Promise<void> {
  await w.front.send(slashCommandBody({ user, channel: CHANNEL, text, slack: w.fake }));
}

/** A click on the button of the message that carries it, as Slack sends it (its channel and ts). */
async function click(w: World, user: string, actionId: string, value: string): Promise<void> {
  const message = w.fake.messages(CHANNEL).find((m) => buttons(m).includes(value));
  const body = buttonClickBody({
    user,
    channel: CHANNEL,
    actionId,
    value,
    ...(message ? { messageTs: message.ts } : {}),
  });
  await w.front.send(body);
}

/** Reads the fake channel until `pick` finds `what` (the fake is in-process state, not a network peer). */
function until<T>(w: World, what: string, pick: (messages: FakeMessage[]) => T | undefined): Promise<T> {
  return eventually(`${what} in the channel`, () => pick(w.fake.messages(CHANNEL)), { timeoutMs: 90_000 });
}

function buttons(m: FakeMessage): string[] {
  return (
    JSON.stringify(m.blocks)
      .match(/"value":"(approval~[^"]+)"/g)
      ?.map((v) => v.slice(9, -1)) ?? []
  );
}

const openApproval = (messages: FakeMessage[], seen: Set<string>) =>
  messages.flatMap(buttons).find((id) => !seen.has(id));

async function runIdOf(w: World): Promise<string> {
  const root = await until(w, 'the root message', (ms) => ms.find((m) => m.thread_ts === undefined));
  const id = /run id: `?([A-Za-z0-9_-]+)/.exec(JSON.stringify(root.blocks))?.[1];
  if (!id) throw new Error('the root message shows no run id');
  return id;
}

describe('the Slack front end to end', () => {
  it('should recover the outage from /capi recover with approvals clicked in Slack and a complete thread', async () => {
    const w = await world('outage');
    await slash(w, LEAD, 'recover');
    const runId = await runIdOf(w);

    const seen = new Set<string>();
    for (let n = 0; n < 3; n++) {
      const approvalId = await until(w, 'an approval with buttons', (ms) => openApproval(ms, seen));
      seen.add(approvalId);
      if (n === 0) {
        // The lead asked for the run: their own click is refused, privately, and changes nothing.
        await click(w, LEAD, 'capi_approve', approvalId);
        await waitForEvent(w.h.service, runId, isType('approval.refused'));
        expect(w.fake.ephemerals(CHANNEL).at(-1)?.text).toMatch(
          /you asked for this run; another approver must decide/,
        );
      }
      await click(w, APPROVER, 'capi_approve', approvalId);
    }
    const finished = await waitForEvent(w.h.service, runId, isType('run.finished'), 120_000);
    expect(finished.status).toBe('succeeded');
    await w.poster.settled(runId);

    const sim = w.h.sims[0];
    expect(await sim?.violations()).toEqual([]);
    expect((await sim?.state())?.loadbalancers.every((lb) => lb.provisioningStatus === 'ACTIVE')).toBe(true);

    const messages = w.fake.messages(CHANNEL);
    const root = messages.find((m) => m.thread_ts === undefined);
    expect(root?.text).toMatch(/succeeded/i);
    expect(root?.updates).toBeGreaterThan(0);
    const thread = messages.filter((m) => m.thread_ts === root?.ts);
    // Every approval message lost its buttons when it was decided, and says who approved.
    const approvals = thread.filter((m) => m.text.startsWith('Approved: '));
    expect(approvals).toHaveLength(3);
    expect(thread.flatMap(buttons)).toEqual([]);
    expect(approvals.every((m) => JSON.stringify(m.blocks).includes(`<@${APPROVER}>`))).toBe(true);
    // The thread ends with the run's summary.
    expect(thread.at(-1)?.text).toMatch(/succeeded|recovered/i);
    // Slack's ~1 message per second per channel sets the pace of a ~50-post thread.
  }, 180_000);

  it('should run nothing destructive and show the denial with its reason when an approver clicks Deny', async () => {
    const w = await world('healthy');
    await slash(w, LEAD, 'park');
    const runId = await runIdOf(w);
    const approvalId = await until(w, 'an approval with buttons', (ms) => openApproval(ms, new Set()));
    const deny = buttonClickBody({
      user: APPROVER,
      channel: CHANNEL,
      actionId: 'capi_deny',
      value: approvalId,
      triggerId: w.fake.issueTrigger(APPROVER),
      messageTs: approvalMessageTs(w.fake, CHANNEL, approvalId) as string,
    });
    await w.front.send(deny);
    const dialog = await eventually('the reason dialog', () => w.fake.modals()[0]);
    const reason = 'not during the <!here> change window';
    const submit = viewSubmissionBody({ user: APPROVER, view: dialog, values: { capi_reason: { reason } } });
    await w.front.send(submit);
    expect((await waitForEvent(w.h.service, runId, isType('run.finished'))).status).toBe('denied');
    await w.poster.settled(runId);
    expect((await w.h.sims[0]?.journal())?.filter((j) => j.action === 'server.stop')).toEqual([]);
    const root = w.fake.messages(CHANNEL).find((m) => m.thread_ts === undefined);
    expect(root?.text).toMatch(/denied/i);
    expect(w.fake.messages(CHANNEL).flatMap(buttons)).toEqual([]);
    // The thread shows the reason as text, escaped: it notifies nobody.
    const shown = JSON.stringify(w.fake.messages(CHANNEL).map((m) => m.blocks));
    expect(shown).toContain('not during the &lt;!here&gt; change window');
    expect(shown).not.toContain('<!here>');
  });

  it('should stop the run and close its open approval when an operator types /capi cancel', async () => {
    const w = await world('healthy');
    await slash(w, LEAD, 'park');
    const runId = await runIdOf(w);
    await until(w, 'an approval with buttons', (ms) => openApproval(ms, new Set()));
    await slash(w, LEAD, `cancel ${runId}`);
    const finished = await waitForEvent(w.h.service, runId, isType('run.finished'));
    expect(finished).toMatchObject({ status: 'cancelled', message: expect.stringContaining(LEAD) });
    await w.poster.settled(runId);
    expect(w.fake.messages(CHANNEL).flatMap(buttons)).toEqual([]);
    expect((await w.h.sims[0]?.journal())?.filter((j) => j.action === 'server.stop')).toEqual([]);
  });
});
