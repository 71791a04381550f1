/** Requests as Slack sends them to a Bolt HTTP receiver: form bodies signed with the signing secret. */
import { createHmac } from 'node:crypto';
import { FAKE_BOT } from '../../dev/slack/fake-slack.js';
import { APPROVE_ACTION_ID } from '../../src/slack/blocks.js';

/** The fake Slack's workspace: serve accepts requests from the team auth.test reports, and no other. */
const TEAM_ID = FAKE_BOT.teamId;

let triggers = 0;
/** Every command and click gets its own trigger id from Slack: serve refuses a request whose signature it saw. */
function freshTriggerId(): string {
  triggers += 1;
  return `${Date.now()}.${process.pid}.${triggers}`;
}

export function signedHeaders(body: string, secret: string): Record<string, string> {
  const ts = Math.floor(Date.now() / 1000);
  return {
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(ts),
    'x-slack-signature': `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`,
  };
}

/**
 * `/capi <text>` as Slack sends it; `responseUrl` from the fake Slack (FakeSlackProcess.responseUrls): the
 * product replies there, as it does in Slack, and falls back to chat.postEphemeral only without one.
 */
export function slashCommand(user: string, channel: string, text: string, responseUrl: string): string {
  return new URLSearchParams({
    token: 'legacy',
    team_id: TEAM_ID,
    team_domain: 'bench',
    channel_id: channel,
    channel_name: 'incident',
    user_id: user,
    user_name: user.toLowerCase(),
    command: '/capi',
    text,
    api_app_id: 'A0BENCH01',
    response_url: responseUrl,
    trigger_id: freshTriggerId(),
  }).toString();
}

/** A click on the Approve button of the approval message at `ts`: clicks count only there. */
export function approveClick(user: string, channel: string, ts: string, approvalId: string): string {
  const payload = {
    type: 'block_actions',
    user: { id: user, username: user.toLowerCase(), team_id: TEAM_ID },
    team: { id: TEAM_ID },
    api_app_id: 'A0BENCH01',
    token: 'legacy',
    channel: { id: channel, name: 'incident' },
    container: { type: 'message', message_ts: ts, channel_id: channel },
    message: { type: 'message', ts, text: '' },
    actions: [
      {
        type: 'button',
        block_id: 'capi_approval',
        action_id: APPROVE_ACTION_ID,
        value: approvalId,
        text: { type: 'plain_text', text: 'Approve' },
        action_ts: '1',
      },
    ],
    response_url: 'http://127.0.0.1:9/unused',
    trigger_id: freshTriggerId(),
  };
  return `payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

/** POSTs a signed body to a Bolt app's /slack/events; resolves with the status once the body is read. */
export async function postSigned(base: string, secret: string, body: string): Promise<number> {
  const res = await fetch(`${base}/slack/events`, {
    method: 'POST',
    headers: signedHeaders(body, secret),
    body,
    signal: AbortSignal.timeout(10_000),
  });
  await res.arrayBuffer();
  return res.status;
}
