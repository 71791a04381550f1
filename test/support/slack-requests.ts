import { createHmac } from 'node:crypto';
import { FAKE_BOT } from '../../dev/slack/fake-slack.js';

/** The workspace the fake Slack's auth.test reports: the one the bot accepts requests from. */
export const TEAM_ID = FAKE_BOT.teamId;

/** Correctly signed requests to a Bolt HTTP receiver, as Slack sends them. */
export function signedHeaders(
  body: string,
  secret: string,
  ts = Math.floor(Date.now() / 1000),
): Record<string, string> {
  const sig = `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`;
  return {
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(ts),
    'x-slack-signature': sig,
  };
}

export function slashCommandBody(opts: {
  user: string;
  channel: string;
  text: string;
  team?: string;
}): string {
  return new URLSearchParams({
    token: 'legacy',
    team_id: opts.team ?? TEAM_ID,
    team_domain: 'ops',
    channel_id: opts.channel,
    channel_name: 'incident',
    user_id: opts.user,
    user_name: opts.user.toLowerCase(),
    command: '/capi',
    text: opts.text,
    api_app_id: 'A0CAPI',
    response_url: 'http://127.0.0.1:9/unused',
    trigger_id: '1.2.3',
  }).toString();
}

export function buttonClickBody(opts: {
  user: string;
  channel: string;
  actionId: string;
  value: string;
  messageTs?: string;
  blockId?: string;
  /** The clicker's own workspace (Slack Connect, Enterprise Grid); the bot's by default. */
  userTeam?: string;
  team?: string;
}): string {
  const ts = opts.messageTs ?? '1700000000.000100';
  const payload = {
    type: 'block_actions',
    user: {
      id: opts.user,
      username: opts.user.toLowerCase(),
      team_id: opts.userTeam ?? opts.team ?? TEAM_ID,
    },
    team: { id: opts.team ?? TEAM_ID },
    api_app_id: 'A0CAPI',
    token: 'legacy',
    channel: { id: opts.channel, name: 'incident' },
    container: { type: 'message', message_ts: ts, channel_id: opts.channel },
    message: { type: 'message', ts, text: '' },
    actions: [
      {
        type: 'button',
        block_id: opts.blockId ?? 'capi_approval',
        action_id: opts.actionId,
        value: opts.value,
        text: { type: 'plain_text', text: 'x' },
        action_ts: '1',
      },
    ],
    response_url: 'http://127.0.0.1:9/unused',
    trigger_id: '1.2.3',
  };
  return `payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

export async function postToBolt(
  base: string,
  body: string,
  headers: Record<string, string>,
): Promise<Response> {
  return fetch(`${base}/slack/events`, { method: 'POST', headers, body });
}
