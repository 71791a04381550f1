import { describe, expect, it } from 'vitest';
import type { FakeSlack, FakeView } from '../dev/slack/fake-slack.js';
import type { AuditEvent } from '../src/ops/audit.js';
import { approvalMessage } from '../src/slack/blocks.js';
import { type Harness, isType, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { type SlackFront, useSlackFronts } from './support/slack-front.js';
import {
  approvalsPostedIn,
  buttonClickBody,
  slashCommandBody,
  viewSubmissionBody,
} from './support/slack-requests.js';

/** Deny's reason dialog and "Approve with reason", through signed requests and the strict fake Web API. */

const CHANNEL = 'C0INCIDENT';
const OPERATOR = 'U0OPERATOR';
const APPROVER = 'U0APPROVER';
const STRANGER = 'U0STRANGER';

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);

interface World {
  readonly h: Harness;
  readonly slack: FakeSlack;
  readonly audit: AuditEvent[];
  readonly front: SlackFront;
}

async function world(): Promise<World> {
  const audit: AuditEvent[] = [];
  const front = await startSlackFront({
    channels: [CHANNEL],
    users: {
      [OPERATOR]: { groups: ['S0APPROVERS'] },
      [APPROVER]: { groups: ['S0APPROVERS'] },
      [STRANGER]: { groups: [] },
    },
    approvers: ['S0APPROVERS'],
    operators: [OPERATOR],
    service: { audit: { record: (e) => audit.push(e) } },
    poster: false,
    approvalPlaces: approvalsPostedIn(CHANNEL),
  });
  return { h: front.harness, slack: front.fake, audit, front };
}

function send(w: World, body: string): Promise<Response> {
  return w.front.send(body);
}

/** `park` as the operator, parked at its approval: the approval id. */
async function parkedAtApproval(w: World): Promise<{ runId: string; approvalId: string }> {
  await send(w, slashCommandBody({ user: OPERATOR, channel: CHANNEL, text: 'park', slack: w.slack }));
  const runId = await eventually('a queued run', async () => (await w.h.service.listRuns({}))[0]?.runId);
  await waitForEvent(w.h.service, runId, isType('approval.requested'));
  const [pending] = await w.h.service.pendingApprovals(runId);
  return { runId, approvalId: pending?.approvalId as string };
}

/** Clicks `actionId` as `user` with a fresh trigger and returns the dialog the fake opened for it. */
async function openDialog(w: World, user: string, actionId: string, approvalId: string): Promise<FakeView> {
  const before = w.slack.modals().length;
  await send(
    w,
    buttonClickBody({
      user,
      channel: CHANNEL,
      actionId,
      value: approvalId,
      triggerId: w.slack.issueTrigger(user),
    }),
  );
  return eventually(`a dialog for ${user}`, () => w.slack.modals()[before]);
}

async function submit(w: World, user: string, view: FakeView, reason: string | null): Promise<unknown> {
  const res = await send(w, viewSubmissionBody({ user, view, values: { capi_reason: { reason } } }));
  const text = await res.text();
  return text === '' ? undefined : JSON.parse(text);
}

describe('the reason dialog', () => {
  it('should ask Deny for a reason bound to the request, and store, escape and audit the reason given', async () => {
    const w = await world();
    const { runId, approvalId } = await parkedAtApproval(w);
    const dialog = await openDialog(w, APPROVER, 'capi_deny', approvalId);
    expect(dialog.user).toBe(APPROVER);
    expect(dialog.view).toMatchObject({ callback_id: 'capi_reason', title: { text: 'Deny this step' } });
    const stored = await w.h.service.getApproval(approvalId);
    expect(JSON.parse(String(dialog.view.private_metadata))).toMatchObject({
      kind: 'deny',
      approvalId,
      runId,
      stepId: stored?.stepId,
      digest: stored?.request.digest,
      channel: CHANNEL,
      messageTs: '1700000000.000100',
    });
    // Opening the dialog decided nothing.
    expect((await w.h.service.getApproval(approvalId))?.decision).toBeUndefined();

    const reason = 'mgmt VM is serving <!channel> traffic & must stay up';
    expect(await submit(w, APPROVER, dialog, reason)).toBeUndefined();
    const decided = await waitForEvent(w.h.service, runId, isType('approval.decided'));
    expect(decided.decision).toMatchObject({ approved: false, by: APPROVER, note: reason });
    expect((await waitForEvent(w.h.service, runId, isType('run.finished'))).status).toBe('denied');
    // The right came from the user group: the audit line names it, and serve signed it into the statement.
    expect(w.audit.find((e) => e.event === 'approval.decided')).toMatchObject({
      decision: 'denied',
      by: APPROVER,
      group: 'S0APPROVERS',
      reason,
    });
    const signed = (await w.h.service.getApproval(approvalId))?.decisionSigned;
    expect(signed?.signer).toBe('service');
    expect(JSON.parse(signed?.statement ?? '{}')).toMatchObject({
      decider: APPROVER,
      verdict: 'deny',
      group: 'S0APPROVERS',
      note: reason,
      digest: stored?.request.digest,
    });
    // In the thread the reason is text: no channel-wide mention, no link.
    const message = approvalMessage((await w.h.service.getApproval(approvalId)) as never, new Date());
    const shown = JSON.stringify(message.blocks);
    expect(shown).toContain('mgmt VM is serving &lt;!channel&gt; traffic &amp; must stay up');
    expect(shown).not.toContain('<!channel>');
  });

  it('should deny without a reason when the dialog is submitted empty', async () => {
    const w = await world();
    const { runId, approvalId } = await parkedAtApproval(w);
    const dialog = await openDialog(w, APPROVER, 'capi_deny', approvalId);
    expect(await submit(w, APPROVER, dialog, null)).toBeUndefined();
    const decided = await waitForEvent(w.h.service, runId, isType('approval.decided'));
    expect(decided.decision).toEqual({
      approved: false,
      by: APPROVER,
      at: expect.any(String),
      reason: 'denied',
    });
  });

  it('should approve with the reason required when Approve with reason is used', async () => {
    const w = await world();
    const { runId, approvalId } = await parkedAtApproval(w);
    const dialog = await openDialog(w, APPROVER, 'capi_approve_reason', approvalId);
    expect(dialog.view).toMatchObject({ title: { text: 'Approve this step' }, submit: { text: 'Approve' } });
    expect(await submit(w, APPROVER, dialog, '  ')).toMatchObject({
      response_action: 'errors',
      errors: { capi_reason: expect.stringMatching(/Say why/) },
    });
    expect(await submit(w, APPROVER, dialog, 'change CHG-1234 approved by the LB owner')).toBeUndefined();
    const decided = await waitForEvent(w.h.service, runId, isType('approval.decided'));
    expect(decided.decision).toMatchObject({
      approved: true,
      note: 'change CHG-1234 approved by the LB owner',
    });
    expect((await waitForEvent(w.h.service, runId, isType('run.finished'))).status).toBe('succeeded');
  });

  it('should keep the dialog open and decide nothing when the submitter may not decide or the reason is too long', async () => {
    const w = await world();
    const { runId, approvalId } = await parkedAtApproval(w);
    const dialog = await openDialog(w, APPROVER, 'capi_deny', approvalId);
    // The same dialog submitted by someone else: checked again as that person.
    expect(await submit(w, STRANGER, dialog, 'no')).toMatchObject({
      response_action: 'errors',
      errors: { capi_reason: expect.stringMatching(/Not recorded: you are not in CAPI_APPROVERS/) },
    });
    expect(await waitForEvent(w.h.service, runId, isType('approval.refused'))).toMatchObject({
      by: STRANGER,
    });
    const approve = await openDialog(w, OPERATOR, 'capi_approve_reason', approvalId);
    expect(await submit(w, OPERATOR, approve, 'I am sure')).toMatchObject({
      errors: { capi_reason: expect.stringMatching(/you asked for this run/) },
    });
    expect(await submit(w, APPROVER, dialog, 'x'.repeat(501))).toMatchObject({
      errors: { capi_reason: expect.stringMatching(/at most 500 characters/) },
    });
    expect((await w.h.service.getApproval(approvalId))?.decision).toBeUndefined();
  });

  it('should refuse a dialog whose request was decided meanwhile or whose metadata names another action', async () => {
    const w = await world();
    const { approvalId } = await parkedAtApproval(w);
    const dialog = await openDialog(w, APPROVER, 'capi_deny', approvalId);
    const forged = {
      ...dialog,
      view: {
        ...dialog.view,
        private_metadata: JSON.stringify({
          ...JSON.parse(String(dialog.view.private_metadata)),
          digest: 'f'.repeat(64),
        }),
      },
    };
    expect(await submit(w, APPROVER, forged, 'no')).toMatchObject({
      errors: { capi_reason: expect.stringMatching(/no longer matches the approval request/) },
    });
    await send(
      w,
      buttonClickBody({ user: APPROVER, channel: CHANNEL, actionId: 'capi_approve', value: approvalId }),
    );
    await eventually(
      'the approval decided',
      async () => (await w.h.service.getApproval(approvalId))?.decision,
    );
    expect(await submit(w, APPROVER, dialog, 'too late')).toMatchObject({
      errors: { capi_reason: expect.stringMatching(/Already decided: approved by U0APPROVER/) },
    });
    // A click on Deny now opens nothing: it says who decided instead.
    const mark = w.slack.calls.length;
    const modals = w.slack.modals().length;
    await send(
      w,
      buttonClickBody({
        user: APPROVER,
        channel: CHANNEL,
        actionId: 'capi_deny',
        value: approvalId,
        triggerId: w.slack.issueTrigger(APPROVER),
      }),
    );
    const told = await eventually('an ephemeral', () =>
      w.slack.calls.slice(mark).find((c) => c.method === 'chat.postEphemeral' && c.status === 200),
    );
    expect(String(told.args.text)).toMatch(/Already decided: approved by <@U0APPROVER>/);
    expect(w.slack.modals()).toHaveLength(modals);
  });

  it('should say so privately and decide nothing when the click comes after its trigger expired', async () => {
    let now = Date.now();
    const front = await startSlackFront({
      channels: [CHANNEL],
      users: { [APPROVER]: { groups: ['S0APPROVERS'] } },
      fake: { clock: () => now },
      approvers: ['S0APPROVERS'],
      poster: false,
      approvalPlaces: approvalsPostedIn(CHANNEL),
    });
    const { fake: slack, harness: h } = front;
    const run = await h.submit('park', { channel: CHANNEL });
    await waitForEvent(h.service, run.runId, isType('approval.requested'));
    const [pending] = await h.service.pendingApprovals(run.runId);
    const trigger = slack.issueTrigger(APPROVER);
    now += 3500;
    const body = buttonClickBody({
      user: APPROVER,
      channel: CHANNEL,
      actionId: 'capi_deny',
      value: pending?.approvalId as string,
      triggerId: trigger,
    });
    await front.post(body);
    const told = await eventually('an ephemeral', () =>
      slack.calls.find((c) => c.method === 'chat.postEphemeral' && c.status === 200),
    );
    expect(String(told.args.text)).toMatch(
      /did not open \(Slack said: expired_trigger_id\); nothing was recorded/,
    );
    expect((await h.service.getApproval(pending?.approvalId as string))?.decision).toBeUndefined();
  });
});
