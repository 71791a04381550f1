import { afterEach, describe, expect, it } from 'vitest';
import type { FakeSlack } from '../dev/slack/fake-slack.js';
import { RunFences } from '../src/runs/fence.js';
import { TargetLock, targetKey } from '../src/runs/lock.js';
import { MISPLACED_CLICK_REPLY } from '../src/slack/click-place.js';
import { REPLAYED_REPLY } from '../src/slack/replay-guard.js';
import { FOREIGN_TEAM_REPLY, UNKNOWN_CLICK_REPLY } from '../src/slack/request-guard.js';
import { type Harness, isType, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { ephemeralTo, FRONT_SECRET, type SlackFront, useSlackFronts } from './support/slack-front.js';
import {
  buttonClickBody,
  postToBolt,
  signedHeaders,
  slashCommandBody,
  TEAM_ID,
} from './support/slack-requests.js';

const CHANNEL = 'C0INCIDENT';
const ELSEWHERE = 'C0ELSEWHERE';
const OPERATOR = 'U0OPERATOR';
const APPROVER = 'U0APPROVER';
const STRANGER = 'U0STRANGER';
/** A user of another company, in a channel shared with it (Slack Connect). */
const VISITOR = 'U0VISITOR1';

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);
let front: SlackFront | undefined;
afterEach(() => {
  front = undefined;
});

/**
 * The Slack front over HTTP with an agent and the thread poster (approval messages are where clicks count).
 * `links`: the channels each site's profile names (slack_channels), by site index.
 */
async function start(
  opts: { scenarios?: string[]; links?: string[][]; teamId?: string } = {},
): Promise<{ harness: Harness; slack: FakeSlack; replica: () => Promise<string> }> {
  front = await startSlackFront({
    scenarios: opts.scenarios ?? ['healthy'],
    channels: [CHANNEL, ELSEWHERE],
    users: {
      [OPERATOR]: { groups: [] },
      [APPROVER]: { groups: ['S0APPROVERS'] },
      [STRANGER]: { groups: [] },
      [VISITOR]: { groups: ['S0APPROVERS'] },
    },
    approvers: ['S0APPROVERS'],
    operators: [OPERATOR],
    siteChannels: opts.links ?? [],
    replayGuard: true,
    ...(opts.teamId !== undefined ? { appOptions: { teamId: opts.teamId } } : {}),
  });
  return { harness: front.harness, slack: front.fake, replica: front.replica };
}

const signed = (body: string, ts?: number, secret = FRONT_SECRET) => signedHeaders(body, secret, ts);
/** The fake of the running test: where each command's response_url points. */
const responseUrls = {
  issueResponseUrl: (user: string, channel: string) => {
    if (front === undefined) throw new Error('start() the fake Slack before building a command');
    return front.fake.issueResponseUrl(user, channel);
  },
};
const commandBody = (user: string, text: string) =>
  slashCommandBody({ user, channel: CHANNEL, text, slack: responseUrls });
const clickBody = (
  user: string,
  actionId: string,
  value: string,
  more: Partial<Parameters<typeof buttonClickBody>[0]> = {},
) => buttonClickBody({ user, channel: CHANNEL, actionId, value, ...more });
const post = (body: string, headers = signed(body)) => postToBolt((front as SlackFront).base, body, headers);

/** The ts of the approval message the poster posted for `approvalId` (the message its buttons are on). */
function approvalMessageTs(slack: FakeSlack, approvalId: string): Promise<string> {
  return eventually(
    `the approval message of ${approvalId} in the channel`,
    () =>
      slack.messages(CHANNEL).find((m) => JSON.stringify(m.blocks).includes(`"value":"${approvalId}"`))?.ts,
    { timeoutMs: 30_000 },
  );
}

/** An operator's `/capi park`, up to its approval request and the message with its buttons. */
async function parkAwaitingApproval(
  slack: FakeSlack,
  harness: Harness,
): Promise<{ runId: string; approvalId: string; ts: string }> {
  await post(commandBody(OPERATOR, 'park'));
  const runId = (await queuedRuns(harness))[0]?.runId as string;
  await waitForEvent(harness.service, runId, isType('approval.requested'));
  const [pending] = await harness.service.pendingApprovals(runId);
  const approvalId = pending?.approvalId as string;
  return { runId, approvalId, ts: await approvalMessageTs(slack, approvalId) };
}

/** The runs queued so far, once there is one. */
const queuedRuns = (harness: Harness) =>
  eventually('a queued run', async () => {
    const list = await harness.service.listRuns({});
    return list.length > 0 ? list : undefined;
  });

describe('the Slack front over HTTP', () => {
  it('should reject requests whose signature is forged or stale', async () => {
    await start();
    const body = commandBody(OPERATOR, 'recover');
    expect((await post(body, signed(body, undefined, 'not-the-secret'))).status).toBe(401);
    expect((await post(body, signed(body, Math.floor(Date.now() / 1000) - 6 * 60))).status).toBe(401);
    expect(await db.redis.keys(`${db.prefix}:run:*`)).toEqual([]);
  });

  it('should refuse a signed /capi request it has taken before, on this replica and on another', async () => {
    const { harness, replica } = await start();
    const body = commandBody(OPERATOR, 'park');
    const headers = signed(body);
    expect((await post(body, headers)).status).toBe(200);
    const [run] = await queuedRuns(harness);
    await waitForEvent(harness.service, run?.runId as string, isType('approval.requested'));

    // The same bytes again, within Bolt's five minutes: a captured request sent a second time.
    const again = await post(body, headers);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ response_type: 'ephemeral', text: REPLAYED_REPLY });
    const elsewhere = await postToBolt(await replica(), body, headers);
    expect(await elsewhere.json()).toEqual({ response_type: 'ephemeral', text: REPLAYED_REPLY });
    expect((await harness.service.listRuns({})).map((r) => r.runId)).toEqual([run?.runId]);

    // The same command typed again is a new request (its own trigger id and timestamp) and is taken.
    expect((await post(commandBody(OPERATOR, 'image-check ubuntu-jammy-kube-v1.32.13'))).status).toBe(200);
    await eventually('the second command queued', async () =>
      (await harness.service.listRuns({})).length === 2 ? true : undefined,
    );
  });

  it('should ack at once and queue the run when an operator types /capi in the site channel', async () => {
    const { harness } = await start();
    const t0 = Date.now();
    // A short read-only runbook: diagnose's two dozen steps outlast waitForEvent on a loaded machine.
    const res = await post(commandBody(OPERATOR, 'image-check ubuntu-jammy-kube-v1.32.13'));
    expect(res.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(3000);
    const list = await queuedRuns(harness);
    expect(list[0]).toMatchObject({
      runbook: 'image-check',
      site: 'site-0',
      requestedBy: OPERATOR,
      channel: CHANNEL,
    });
    const runId = list[0]?.runId as string;
    expect((await waitForEvent(harness.service, runId, isType('run.finished'))).status).toBe('succeeded');
  });

  it('should tell only the user what was wrong when the subcommand is not valid', async () => {
    const { slack } = await start();
    await post(commandBody(OPERATOR, 'image-check'));
    expect(await ephemeralTo(slack, OPERATOR)).toMatch(
      /`image-check` takes IMAGE: `\/capi image-check IMAGE`/,
    );
    const mark = slack.calls.length;
    await post(commandBody(OPERATOR, 'failover not-a-uuid'));
    expect(await ephemeralTo(slack, OPERATOR, mark)).toMatch(
      /Nothing was started: lb must be a lowercase UUID/,
    );
  });

  it('should keep destructive runbooks for operators and open diagnose to anyone', async () => {
    const { slack, harness } = await start();
    await post(commandBody(STRANGER, 'recover'));
    expect(await ephemeralTo(slack, STRANGER)).toMatch(/Only CAPI_OPERATORS may start or cancel runs/);
    expect(await harness.service.listRuns({})).toEqual([]);
    await post(commandBody(STRANGER, 'diagnose'));
    expect((await queuedRuns(harness))[0]?.runbook).toBe('diagnose');
  });

  it("should free the channel's held site for an operator who says what was checked, and refuse anyone else", async () => {
    const { slack, harness } = await start();
    // The hold an agent leaves when a run ends while its destructive command may have landed.
    const runId = 'r-held-slack';
    await new TargetLock(db.redis, db.prefix).hold(
      targetKey('site-0'),
      {
        runId,
        step: 'park-vm',
        attemptId: `${runId}~park-vm~1`,
        command: 'openstack server stop capi-mgmt-v2',
        sentAt: '2025-03-04T10:00:00.000Z',
        heldAt: '2025-03-04T10:01:00.000Z',
        message: 'OUTCOME UNKNOWN',
      },
      await new RunFences(db.redis, db.prefix).take(runId),
    );
    await post(commandBody(STRANGER, 'release looked at it'));
    expect(await ephemeralTo(slack, STRANGER)).toMatch(
      /Only CAPI_OPERATORS may start or cancel runs and release/,
    );
    expect(await harness.service.holds('site-0')).toHaveLength(1);
    let mark = slack.calls.length;
    await post(commandBody(OPERATOR, 'park'));
    expect(await ephemeralTo(slack, OPERATOR, mark)).toMatch(/site site-0 is held: .*run r-held-slack/);
    mark = slack.calls.length;
    await post(commandBody(OPERATOR, 'release server show: SHUTOFF, the stop landed'));
    expect(await ephemeralTo(slack, OPERATOR, mark)).toMatch(
      /Released site `site-0` \(held for run `r-held-slack`\)/,
    );
    expect(await harness.service.holds('site-0')).toEqual([]);
  });

  it('should refuse a click from someone who may not approve and let the first approver decide', async () => {
    const { slack, harness } = await start();
    const { runId, approvalId, ts } = await parkAwaitingApproval(slack, harness);

    await post(clickBody(STRANGER, 'capi_approve', approvalId, { messageTs: ts }));
    expect(await ephemeralTo(slack, STRANGER)).toMatch(
      /Your click changed nothing: you are not in CAPI_APPROVERS/,
    );
    const refused = await waitForEvent(harness.service, runId, isType('approval.refused'));
    expect(refused).toMatchObject({ by: STRANGER, approvalId });
    expect((await harness.service.getApproval(approvalId))?.decision).toBeUndefined();

    await post(clickBody(APPROVER, 'capi_approve', approvalId, { messageTs: ts }));
    expect((await waitForEvent(harness.service, runId, isType('run.finished'))).status).toBe('succeeded');
    const mark = slack.calls.length;
    await post(clickBody(APPROVER, 'capi_deny', approvalId, { messageTs: ts }));
    expect(await ephemeralTo(slack, APPROVER, mark)).toMatch(/Already decided: approved by <@U0APPROVER>/);
  });

  it('should answer a prototype name as a subcommand with the usage, not an error', async () => {
    const { slack, harness } = await start();
    for (const name of [
      'constructor',
      '__proto__',
      'toString',
      'hasOwnProperty',
      'valueOf',
      '__defineGetter__',
    ]) {
      const mark = slack.calls.length;
      expect((await post(commandBody(OPERATOR, `${name} x`))).status).toBe(200);
      const reply = await ephemeralTo(slack, OPERATOR, mark);
      expect(reply).toContain(`\`${name}\` is not a /capi subcommand`);
      expect(reply).toContain('`/capi help` -- this list');
      expect(reply).not.toMatch(/Something went wrong/);
    }
    expect(await harness.service.listRuns({})).toEqual([]);
  });

  it('should refuse a command and a click from another workspace, and change nothing', async () => {
    const { slack, harness } = await start();
    const foreign = await post(
      slashCommandBody({
        user: OPERATOR,
        channel: CHANNEL,
        text: 'park',
        team: 'T0OTHERCO',
        slack: responseUrls,
      }),
    );
    expect(foreign.status).toBe(200);
    expect(await foreign.json()).toEqual({ response_type: 'ephemeral', text: FOREIGN_TEAM_REPLY });

    const { runId, approvalId, ts } = await parkAwaitingApproval(slack, harness);
    // A member of the approver group, but clicking from their own company's workspace in a shared channel.
    const mark = slack.calls.length;
    const click = await post(
      clickBody(VISITOR, 'capi_approve', approvalId, { messageTs: ts, userTeam: 'T0OTHERCO' }),
    );
    expect(click.status).toBe(200);
    expect(await ephemeralTo(slack, VISITOR, mark)).toBe(FOREIGN_TEAM_REPLY);
    expect((await harness.service.getApproval(approvalId))?.decision).toBeUndefined();
    expect((await harness.service.listRuns({})).map((r) => r.runId)).toEqual([runId]);
  });

  it('should take only the workspace SLACK_TEAM_ID names, and no org-wide install', async () => {
    const { slack, harness } = await start({ teamId: 'T0CONFIGD1' });
    // The token's own workspace (what auth.test says) is not the configured one: refused too.
    const other = await post(
      slashCommandBody({ user: OPERATOR, channel: CHANNEL, text: 'park', slack: responseUrls }),
    );
    expect(await other.json()).toEqual({ response_type: 'ephemeral', text: FOREIGN_TEAM_REPLY });
    const orgWide = await post(
      `${slashCommandBody({ user: OPERATOR, channel: CHANNEL, text: 'park', team: 'T0CONFIGD1', slack: responseUrls })}&is_enterprise_install=true`,
    );
    expect(await orgWide.json()).toEqual({ response_type: 'ephemeral', text: FOREIGN_TEAM_REPLY });
    expect(await harness.service.listRuns({})).toEqual([]);
    await post(
      slashCommandBody({
        user: OPERATOR,
        channel: CHANNEL,
        text: 'help',
        team: 'T0CONFIGD1',
        slack: responseUrls,
      }),
    );
    expect(await ephemeralTo(slack, OPERATOR)).toContain('`/capi help` -- this list');
  });

  it('should refuse an approval click that is not on its own approval message, and change nothing', async () => {
    const { slack, harness } = await start();
    const { runId, approvalId, ts } = await parkAwaitingApproval(slack, harness);
    const tries = [
      { channel: ELSEWHERE, messageTs: ts },
      { messageTs: '1700000000.000100' },
      {
        messageTs: (await approvalMessageTs(slack, approvalId)).replace(/\d$/, (d) =>
          String((Number(d) + 1) % 10),
        ),
      },
    ];
    for (const where of tries) {
      const mark = slack.calls.length;
      expect((await post(clickBody(APPROVER, 'capi_approve', approvalId, where))).status).toBe(200);
      expect(await ephemeralTo(slack, APPROVER, mark)).toBe(MISPLACED_CLICK_REPLY);
    }
    expect((await harness.service.getApproval(approvalId))?.decision).toBeUndefined();
    await post(clickBody(APPROVER, 'capi_approve', approvalId, { messageTs: ts }));
    expect((await waitForEvent(harness.service, runId, isType('run.finished'))).status).toBe('succeeded');
  });

  it('should ack at once and say why nothing happened when a click is on a button it does not know', async () => {
    const { slack, harness } = await start();
    const clicks = [
      clickBody(APPROVER, 'capi_approve_v0', 'approval~x~y'),
      clickBody(APPROVER, 'capi_approve', 'approval~x~y', { blockId: 'capi_old_block' }),
      clickBody(APPROVER, 'capi_deny', 'not an approval id'),
      // Truncated: the payload lost its actions.
      `payload=${encodeURIComponent(JSON.stringify({ ...JSON.parse(decodeURIComponent(clickBody(APPROVER, 'capi_deny', 'approval~x~y').slice(8))), actions: [] }))}`,
    ];
    for (const body of clicks) {
      const mark = slack.calls.length;
      const t0 = Date.now();
      const res = await post(body);
      expect(res.status).toBe(200);
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(await ephemeralTo(slack, APPROVER, mark)).toBe(UNKNOWN_CLICK_REPLY);
    }
    // A shortcut no listener knows: still answered 2xx before Slack's 3 s run out.
    const shortcut = `payload=${encodeURIComponent(
      JSON.stringify({
        type: 'shortcut',
        callback_id: 'capi_old_shortcut',
        team: { id: TEAM_ID },
        user: { id: APPROVER, team_id: TEAM_ID },
        trigger_id: '1.2.3',
      }),
    )}`;
    const t0 = Date.now();
    expect((await post(shortcut)).status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(await harness.service.listRuns({})).toEqual([]);
  });

  it("should show a channel only the runs of its own site, and answer for another site's run as for an unknown one", async () => {
    const { slack, harness } = await start({
      scenarios: ['healthy', 'healthy'],
      links: [[CHANNEL], [ELSEWHERE]],
    });
    const theirs = await harness.service.submit({
      runbook: 'image-check',
      args: ['ubuntu-jammy-kube-v1.32.13'],
      site: 'site-1',
      requestedBy: OPERATOR,
    });
    await waitForEvent(harness.service, theirs.runId, isType('run.finished'));
    const unknown = 'r-20260101-000000-abcdef';
    const ask = async (channel: string, text: string) => {
      const mark = slack.calls.length;
      await post(slashCommandBody({ user: STRANGER, channel, text, slack: responseUrls }));
      return ephemeralTo(slack, STRANGER, mark);
    };
    expect(await ask(CHANNEL, 'status')).toBe('No runs yet.');
    expect(await ask(CHANNEL, `status ${theirs.runId}`)).toBe(
      (await ask(CHANNEL, `status ${unknown}`)).replace(unknown, theirs.runId),
    );
    expect(await ask(CHANNEL, `timeline ${theirs.runId}`)).toBe(
      (await ask(CHANNEL, `timeline ${unknown}`)).replace(unknown, theirs.runId),
    );
    expect(slack.calls.filter((c) => c.method === 'files.completeUploadExternal')).toEqual([]);

    expect(await ask(ELSEWHERE, 'status')).toContain(`run id: \`${theirs.runId}\``);
    await post(
      slashCommandBody({
        user: STRANGER,
        channel: ELSEWHERE,
        text: `timeline ${theirs.runId}`,
        slack: responseUrls,
      }),
    );
    await eventually("the timeline file in its own site's channel", () =>
      slack.calls.find((c) => c.method === 'files.completeUploadExternal' && c.status === 200),
    );
  });
});
