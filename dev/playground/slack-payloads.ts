/**
 * Requests as Slack sends them to an app's Request URL: a slash command's form fields and a `block_actions`
 * payload with every field a real click carries (team, user, channel, container, the message with its
 * blocks, the action, response_url, trigger_id), signed with the app's signing secret (v0 HMAC-SHA256 over
 * `v0:<timestamp>:<body>`). Slack gives the app 3 seconds to answer; so does the playground.
 */
import { createHmac, randomInt } from 'node:crypto';
import { APP_ID, type Person, TEAM } from './cast.js';

/** Slack's own deadline for an app's HTTP answer. */
export const SLACK_ACK_TIMEOUT_MS = 3000;

/** The verification token field Slack still sends (deprecated; apps verify the signature instead). */
const LEGACY_TOKEN = 'playgroundVerificationTkn';

export function signedHeaders(
  body: string,
  secret: string,
  nowS = Math.floor(Date.now() / 1000),
): Record<string, string> {
  const signature = `v0=${createHmac('sha256', secret).update(`v0:${nowS}:${body}`).digest('hex')}`;
  return {
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(nowS),
    'x-slack-signature': signature,
    'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
  };
}

export interface Where {
  readonly channel: { readonly id: string; readonly name: string };
  readonly responseUrl: string;
  /** Issued by the fake Slack for this person and this request: views.open takes it once, within 3 s. */
  readonly triggerId: string;
}

export function slashCommandBody(
  opts: Where & { readonly user: Person; readonly command: string; readonly text: string },
): string {
  return new URLSearchParams({
    token: LEGACY_TOKEN,
    team_id: TEAM.id,
    team_domain: TEAM.domain,
    channel_id: opts.channel.id,
    channel_name: opts.channel.name,
    user_id: opts.user.id,
    user_name: opts.user.handle,
    command: opts.command,
    text: opts.text,
    api_app_id: APP_ID,
    is_enterprise_install: 'false',
    response_url: opts.responseUrl,
    trigger_id: opts.triggerId,
  }).toString();
}

/** The message a click came from, as Slack stores it (the fake Slack's record of it). */
export interface ClickedMessage {
  readonly ts: string;
  readonly thread_ts?: string;
  readonly text: string;
  readonly blocks: readonly unknown[];
}

export interface ClickedButton {
  readonly block_id: string;
  readonly action_id: string;
  readonly text: unknown;
  readonly value?: string;
  readonly style?: string;
}

export function blockActionsBody(
  opts: Where & {
    readonly user: Person;
    readonly message: ClickedMessage;
    readonly button: ClickedButton;
    readonly bot: { readonly userId: string; readonly botId: string };
  },
): string {
  const { message, button } = opts;
  const thread = message.thread_ts !== undefined ? { thread_ts: message.thread_ts } : {};
  const payload = {
    type: 'block_actions',
    user: { id: opts.user.id, username: opts.user.handle, name: opts.user.handle, team_id: TEAM.id },
    api_app_id: APP_ID,
    token: LEGACY_TOKEN,
    container: {
      type: 'message',
      message_ts: message.ts,
      channel_id: opts.channel.id,
      is_ephemeral: false,
      ...thread,
    },
    trigger_id: opts.triggerId,
    team: { id: TEAM.id, domain: TEAM.domain },
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: opts.channel.id, name: opts.channel.name },
    message: {
      type: 'message',
      user: opts.bot.userId,
      bot_id: opts.bot.botId,
      app_id: APP_ID,
      team: TEAM.id,
      ts: message.ts,
      ...thread,
      text: message.text,
      blocks: message.blocks,
    },
    state: { values: {} },
    response_url: opts.responseUrl,
    actions: [
      {
        type: 'button',
        block_id: button.block_id,
        action_id: button.action_id,
        text: button.text,
        ...(button.value !== undefined ? { value: button.value } : {}),
        ...(button.style !== undefined ? { style: button.style } : {}),
        action_ts: actionTs(),
      },
    ],
  };
  return `payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

/**
 * A modal's submission as Slack sends it: the view as the app last set it (id, hash, callback_id,
 * private_metadata, blocks…) with what the person typed as `state.values`.
 */
export function viewSubmissionBody(opts: {
  readonly user: Person;
  readonly view: {
    readonly id: string;
    readonly hash: string;
    readonly view: Readonly<Record<string, unknown>>;
  };
  readonly values: Record<string, Record<string, unknown>>;
  readonly triggerId: string;
  readonly bot: { readonly userId: string; readonly botId: string };
}): string {
  const payload = {
    type: 'view_submission',
    team: { id: TEAM.id, domain: TEAM.domain },
    user: { id: opts.user.id, username: opts.user.handle, name: opts.user.handle, team_id: TEAM.id },
    api_app_id: APP_ID,
    token: LEGACY_TOKEN,
    trigger_id: opts.triggerId,
    view: {
      ...structuredClone(opts.view.view),
      id: opts.view.id,
      team_id: TEAM.id,
      type: 'modal',
      state: { values: opts.values },
      hash: opts.view.hash,
      previous_view_id: null,
      root_view_id: opts.view.id,
      app_id: APP_ID,
      bot_id: opts.bot.botId,
    },
    response_urls: [],
    is_enterprise_install: false,
    enterprise: null,
  };
  return `payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

/** The Home tab was opened: an Events API delivery (event_callback, JSON), as Slack posts it. */
export function homeOpenedBody(user: Person): string {
  const now = Math.floor(Date.now() / 1000);
  return JSON.stringify({
    token: LEGACY_TOKEN,
    team_id: TEAM.id,
    api_app_id: APP_ID,
    type: 'event_callback',
    event_id: `Ev${now}${randomInt(1e6)}`,
    event_time: now,
    event: {
      type: 'app_home_opened',
      user: user.id,
      channel: `D${user.id.slice(1)}`,
      tab: 'home',
      event_ts: `${now}.000100`,
    },
  });
}

function actionTs(): string {
  const ms = Date.now();
  return `${Math.floor(ms / 1000)}.${String((ms % 1000) * 1000 + randomInt(1000)).padStart(6, '0')}`;
}

/** A block without a block_id gets one from Slack when it is stored; clicks name it. */
export function generatedBlockId(messageTs: string, blockIndex: number): string {
  return createHmac('sha256', 'block-id')
    .update(`${messageTs}/${blockIndex}`)
    .digest('base64url')
    .slice(0, 5);
}

export interface AppAnswer {
  /** HTTP status, or undefined when the app did not answer within Slack's 3 seconds. */
  readonly status?: number;
  readonly body: string;
  readonly contentType: string;
  /** Why nothing came back: Slack's words (`operation_timeout`, `dispatch_failed`). */
  readonly failure?: 'operation_timeout' | 'dispatch_failed';
}

/** POSTs a signed body to the app's Request URL, as Slack does, with Slack's 3-second deadline. */
export async function sendToApp(
  requestUrl: string,
  secret: string,
  body: string,
  contentType = 'application/x-www-form-urlencoded',
): Promise<AppAnswer> {
  try {
    const res = await fetch(requestUrl, {
      method: 'POST',
      headers: { ...signedHeaders(body, secret), 'content-type': contentType },
      body,
      signal: AbortSignal.timeout(SLACK_ACK_TIMEOUT_MS),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: text,
      contentType: res.headers.get('content-type') ?? '',
      ...(res.ok ? {} : { failure: 'dispatch_failed' as const }),
    };
  } catch (err) {
    const timeout = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    return { body: '', contentType: '', failure: timeout ? 'operation_timeout' : 'dispatch_failed' };
  }
}
