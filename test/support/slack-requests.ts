import { createHmac } from 'node:crypto';
import { FAKE_BOT, type FakeSlack } from '../../dev/slack/fake-slack.js';
import type { ApprovalPlaces } from '../../src/slack/click-place.js';

/** The workspace the fake Slack's auth.test reports: the one the bot accepts requests from. */
export const TEAM_ID = FAKE_BOT.teamId;

/** The message ts a click carries unless it names one. */
export const DEFAULT_MESSAGE_TS = '1700000000.000100';

/**
 * For tests that run no thread poster: every approval's message is where a click lands by default, in
 * `channel` (what the poster would have recorded had it posted the message there).
 */
export function approvalsPostedIn(channel: string): ApprovalPlaces {
  return { approvalMessage: async () => ({ channel, ts: DEFAULT_MESSAGE_TS }) };
}

/** The ts of the message in `channel` that carries buttons for `approvalId`: where a person clicks them. */
export function approvalMessageTs(slack: FakeSlack, channel: string, approvalId: string): string | undefined {
  return slack
    .messages(channel)
    .find((m) => JSON.stringify(m.blocks ?? []).includes(`"value":"${approvalId}"`))?.ts;
}

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

let triggers = 0;
/**
 * A trigger id as Slack gives every command and click its own: two requests of a test are never the same bytes,
 * so the bot's replay check (a signature seen before is refused) sees what it would see from Slack.
 */
export function freshTriggerId(): string {
  triggers += 1;
  return `${Date.now()}.${process.pid}.${triggers}`;
}

export function slashCommandBody(opts: {
  user: string;
  channel: string;
  text: string;
  /** The fake Slack the command's response_url points to (the bot's replies go there). */
  slack: Pick<FakeSlack, 'issueResponseUrl'>;
  /** A command without a response_url (the bot then falls back to chat.postEphemeral). */
  withoutResponseUrl?: true;
  team?: string;
  /** From FakeSlack.issueTrigger, for a command that opens a dialog. */
  triggerId?: string;
}): string {
  const responseUrl = opts.withoutResponseUrl
    ? {}
    : { response_url: opts.slack.issueResponseUrl(opts.user, opts.channel) };
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
    ...responseUrl,
    trigger_id: opts.triggerId ?? freshTriggerId(),
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
  /** From FakeSlack.issueTrigger, for a click that opens a dialog. */
  triggerId?: string;
}): string {
  const ts = opts.messageTs ?? DEFAULT_MESSAGE_TS;
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
    trigger_id: opts.triggerId ?? freshTriggerId(),
  };
  return `payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

/**
 * A modal's submission as Slack sends it: `view` is the view as the fake stored it (callback_id,
 * private_metadata), `values` the typed input per block and action id.
 */
export function viewSubmissionBody(opts: {
  user: string;
  view: { readonly id: string; readonly view: Readonly<Record<string, unknown>> };
  /** A text input's value (or null when left empty), or `{ selected }` for a static select's choice. */
  values: Record<string, Record<string, string | null | { readonly selected: string }>>;
}): string {
  const state = Object.fromEntries(
    Object.entries(opts.values).map(([block, actions]) => [
      block,
      Object.fromEntries(
        Object.entries(actions).map(([action, value]) => [
          action,
          value !== null && typeof value === 'object'
            ? {
                type: 'static_select',
                selected_option: {
                  text: { type: 'plain_text', text: value.selected },
                  value: value.selected,
                },
              }
            : { type: 'plain_text_input', value },
        ]),
      ),
    ]),
  );
  const payload = {
    type: 'view_submission',
    team: { id: TEAM_ID, domain: 'ops' },
    user: {
      id: opts.user,
      username: opts.user.toLowerCase(),
      name: opts.user.toLowerCase(),
      team_id: TEAM_ID,
    },
    api_app_id: 'A0CAPI',
    token: 'legacy',
    trigger_id: '9.9.9',
    view: {
      ...opts.view.view,
      id: opts.view.id,
      team_id: TEAM_ID,
      app_id: 'A0CAPI',
      bot_id: 'B0CAPI',
      hash: '1.h1',
      state: { values: state },
    },
    response_urls: [],
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

/** An Events API delivery (event_callback) as Slack posts it: JSON, signed like every request. */
export function eventCallbackBody(event: Record<string, unknown>): string {
  const now = Math.floor(Date.now() / 1000);
  return JSON.stringify({
    token: 'legacy',
    team_id: TEAM_ID,
    api_app_id: 'A0CAPI',
    type: 'event_callback',
    event_id: `Ev${now}${Math.floor(Math.random() * 1e6)}`,
    event_time: now,
    event: { event_ts: `${now}.000100`, ...event },
  });
}

export function signedJsonHeaders(body: string, secret: string): Record<string, string> {
  return { ...signedHeaders(body, secret), 'content-type': 'application/json' };
}
