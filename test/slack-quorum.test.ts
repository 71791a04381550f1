import { describe, expect, it } from 'vitest';
import type { FakeSlack } from '../dev/slack/fake-slack.js';
import type { AuditEvent } from '../src/ops/audit.js';
import { isType, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { ephemeralTo, useSlackFronts } from './support/slack-front.js';
import { approvalMessageTs, buttonClickBody, slashCommandBody } from './support/slack-requests.js';

/** A site that needs two approvers for `park`: clicks through signed requests, the thread in the strict fake. */

const CHANNEL = 'C0INCIDENT';
const LEAD = 'U0LEAD0001';
const ALICE = 'U0ALICE001';
const BOB = 'U0BOB00001';

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);

async function world() {
  const audit: AuditEvent[] = [];
  const front = await startSlackFront({
    channels: [CHANNEL],
    users: [LEAD, ALICE, BOB],
    approvers: [LEAD, ALICE, BOB],
    operators: [LEAD],
    service: { audit: { record: (e) => audit.push(e) }, allowSelfApproval: true },
    siteFields: { approval_quorum: { park: 2 } },
  });
  const { fake: slack, harness: h, poster } = front;
  const send = async (body: string) => {
    await front.send(body);
  };
  const approve = async (user: string, approvalId: string) => {
    // Clicked where a person clicks it: on the approval message the poster posted.
    const messageTs = await eventually('the approval message in the channel', () =>
      approvalMessageTs(slack, CHANNEL, approvalId),
    );
    await send(
      buttonClickBody({ user, channel: CHANNEL, actionId: 'capi_approve', value: approvalId, messageTs }),
    );
  };
  return { slack, h, audit, poster, send, approve };
}

const approvalText = (slack: FakeSlack) =>
  JSON.stringify(
    slack.messages(CHANNEL).find((m) => m.text.includes('Approval needed') || m.text.startsWith('Approved'))
      ?.blocks ?? [],
  );

describe('a step that needs two approvers, in Slack', () => {
  it('should show who approved so far, count each person once, never count the requester, and run after the second', async () => {
    const w = await world();
    await w.send(slashCommandBody({ user: LEAD, channel: CHANNEL, text: 'park', slack: w.slack }));
    const runId = await eventually('a run', async () => (await w.h.service.listRuns({}))[0]?.runId);
    await waitForEvent(w.h.service, runId, isType('approval.requested'));
    const [pending] = await w.h.service.pendingApprovals(runId);
    const approvalId = pending?.approvalId as string;
    expect(pending?.request.quorum).toBe(2);
    await eventually('the approval message', () =>
      approvalText(w.slack).includes('0 of 2 approvals') ? true : undefined,
    );

    // The requester may approve alone where self-approval is allowed, but never counts towards a quorum.
    let mark = w.slack.calls.length;
    await w.approve(LEAD, approvalId);
    expect(await ephemeralTo(w.slack, LEAD, mark)).toMatch(/this step needs 2 approvers other than you/);

    mark = w.slack.calls.length;
    await w.approve(ALICE, approvalId);
    expect(await ephemeralTo(w.slack, ALICE, mark)).toMatch(/Your approval counts: 1 of 2/);
    await eventually('"1 of 2" on the approval message', () =>
      approvalText(w.slack).includes(`1 of 2 approvals*: <@${ALICE}>`) ? true : undefined,
    );
    expect(approvalText(w.slack)).toContain('capi_approve');

    mark = w.slack.calls.length;
    await w.approve(ALICE, approvalId);
    expect(await ephemeralTo(w.slack, ALICE, mark)).toMatch(/already counted \(1 of 2\)/);
    expect((await w.h.service.getApproval(approvalId))?.decision).toBeUndefined();

    await w.approve(BOB, approvalId);
    const decided = await waitForEvent(w.h.service, runId, isType('approval.decided'));
    expect(decided.decision).toMatchObject({ approved: true, approvers: [ALICE, BOB] });
    expect((await waitForEvent(w.h.service, runId, isType('run.finished'))).status).toBe('succeeded');
    await w.poster.settled(runId);
    expect(approvalText(w.slack)).toContain(`*Approved* (2 of 2) by <@${ALICE}>, <@${BOB}>`);
    expect(approvalText(w.slack)).not.toContain('capi_approve');
    // One destructive command, sent once.
    expect((await w.h.sims[0]?.journal())?.filter((j) => j.action === 'server.stop')).toHaveLength(1);
    expect(w.audit.filter((e) => e.event === 'approval.voted')).toMatchObject([
      { by: ALICE, count: 1, quorum: 2 },
    ]);
    expect(w.audit.find((e) => e.event === 'approval.decided')).toMatchObject({ approvers: [ALICE, BOB] });
    const timeline = await w.h.service.readTimeline(runId);
    expect(timeline.map((e) => e.event).filter((e) => e.type === 'approval.voted')).toMatchObject([
      { by: ALICE, count: 1, of: 2 },
    ]);
  });
});
