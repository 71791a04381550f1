/**
 * What a person does in the playground, done as Slack does it: a `/capi …` typed in the channel becomes a
 * signed slash command, a button click a signed `block_actions` payload (after its confirm dialog, which the
 * page shows), both POSTed to the bot's Request URL with Slack's 3-second deadline. Each request carries a
 * response_url the playground serves: what the bot sends there shows as "only visible to you" (or in the
 * channel for `response_type: in_channel`), checked against the same Block Kit limits as the Web API.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { blockKitError } from '../slack/block-kit.js';
import { FAKE_BOT, type FakeSlack } from '../slack/fake-slack.js';
import { buttonAt } from './blocks-view.js';
import { type Person, personById } from './cast.js';
import type { ChannelView } from './channel.js';
import { Dialogs, NOT_ANSWERED, type TypedValues } from './dialogs.js';
import {
  type AppAnswer,
  blockActionsBody,
  generatedBlockId,
  homeOpenedBody,
  sendToApp,
  slashCommandBody,
  viewSubmissionBody,
} from './slack-payloads.js';
import type { ButtonRef, DialogsState } from './web/view-types.js';

/** Slack: a response_url takes up to 5 messages within 30 minutes. */
const RESPONSE_URL_USES = 5;
const RESPONSE_URL_TTL_MS = 30 * 60_000;

export interface PlaygroundOptions {
  readonly fake: FakeSlack;
  readonly view: ChannelView;
  readonly channel: { readonly id: string; readonly name: string };
  /** The bot's Request URL: serve's /slack/events. */
  readonly requestUrl: string;
  readonly signingSecret: string;
  /** Where response_url tokens are appended: `http://127.0.0.1:PORT/response/`. */
  readonly responseBase: string;
  /** Called when a dialog opens, closes or shows errors because of the page (not the bot). */
  readonly onChange?: () => void;
}

export type Outcome = { readonly ok: true } | { readonly ok: false; readonly problem: string };

interface ResponseTarget {
  readonly user: string;
  readonly threadTs?: string;
  readonly expiresAt: number;
  uses: number;
}

/** What the bot may answer a view_submission with (Slack: an empty body, or a response_action). */
const SubmissionAnswer = z.object({
  response_action: z.enum(['errors', 'clear', 'update', 'push']),
  errors: z.record(z.string(), z.string()).optional(),
});

const ResponseBody = z.object({
  text: z.string().optional(),
  blocks: z.array(z.unknown()).optional(),
  response_type: z.enum(['ephemeral', 'in_channel']).optional(),
  replace_original: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
  delete_original: z.union([z.boolean(), z.enum(['true', 'false'])]).optional(),
  thread_ts: z.string().optional(),
});

export class Playground {
  private readonly responseTargets = new Map<string, ResponseTarget>();
  private readonly dialogs: Dialogs;

  constructor(private readonly opts: PlaygroundOptions) {
    this.dialogs = new Dialogs(opts.fake);
  }

  /** What each person sees outside the channel: their open modal and their Home tab. */
  dialogsState(): DialogsState {
    return this.dialogs.state(this.opts.view.people(), this.opts.view.mrkdwnContext());
  }

  /**
   * Submits the modal `viewId` open for `userId` with what they typed, as Slack does: a required input left
   * empty is refused in the dialog without sending; otherwise a signed view_submission, whose answer closes
   * the dialog (nothing, or `clear`) or shows its errors next to the inputs (`errors`).
   */
  async submit(userId: string, viewId: string, typed: TypedValues): Promise<Outcome> {
    const user = personById(userId);
    if (!user) return { ok: false, problem: `unknown user ${userId}` };
    const view = this.dialogs.openFor(user.id);
    if (!view || view.id !== viewId) return { ok: false, problem: 'that dialog is not open any more' };
    const state = this.dialogs.stateValues(view, typed);
    if ('errors' in state) {
      this.dialogs.showErrors(view, state.errors);
      this.changed();
      return { ok: true };
    }
    const body = viewSubmissionBody({
      user,
      view,
      values: state.values,
      triggerId: this.opts.fake.issueTrigger(user.id),
      bot: FAKE_BOT,
    });
    const answer = await sendToApp(this.opts.requestUrl, this.opts.signingSecret, body);
    // The view may have been updated while the app worked: errors belong to the one it now holds.
    const now = this.dialogs.openFor(user.id) ?? view;
    if (answer.failure !== undefined) {
      this.dialogs.showErrors(now, { '': NOT_ANSWERED });
    } else if (answer.body.trim() === '') {
      this.dialogs.close(user.id);
    } else {
      const parsed = SubmissionAnswer.safeParse(parseJson(answer.body));
      if (parsed.success && parsed.data.response_action === 'errors') {
        this.dialogs.showErrors(now, parsed.data.errors ?? {});
      } else if (parsed.success && parsed.data.response_action === 'clear') {
        this.dialogs.close(user.id);
      } else {
        this.dialogs.showErrors(now, {
          '': parsed.success
            ? `response_action "${parsed.data.response_action}" is not simulated by the playground`
            : "Slack could not read the app's answer to this submission",
        });
      }
    }
    this.changed();
    return { ok: true };
  }

  /** The person opened the app's Home tab: Slack tells the app (app_home_opened), which publishes it. */
  async openHome(userId: string): Promise<Outcome> {
    const user = personById(userId);
    if (!user) return { ok: false, problem: `unknown user ${userId}` };
    const answer = await sendToApp(
      this.opts.requestUrl,
      this.opts.signingSecret,
      homeOpenedBody(user),
      'application/json',
    );
    return answer.failure === undefined
      ? { ok: true }
      : { ok: false, problem: `the app did not take app_home_opened: ${answer.failure}` };
  }

  /** The person closed the modal (its close button, or Escape). */
  cancel(userId: string, viewId: string): Outcome {
    const view = this.dialogs.openFor(userId);
    if (!view || view.id !== viewId) return { ok: false, problem: 'that dialog is not open any more' };
    this.dialogs.close(userId);
    this.changed();
    return { ok: true };
  }

  private changed(): void {
    this.opts.onChange?.();
  }

  /** Types `input` into the channel's message box as `userId`. */
  async command(userId: string, input: string): Promise<Outcome> {
    const user = personById(userId);
    if (!user) return { ok: false, problem: `unknown user ${userId}` };
    const match = /^(\/[^\s]+)\s*([\s\S]*)$/.exec(input.trim());
    if (!match) {
      return {
        ok: false,
        problem: 'The playground sends slash commands only: type /capi help (or /capi recover)',
      };
    }
    const [, command = '', text = ''] = match;
    if (command !== '/capi') {
      this.opts.view.add({
        kind: 'notice',
        to: user.id,
        text: `\`${command}\` is not a valid command. In Slack, all messages that start with the "/" character are interpreted as commands.`,
      });
      return { ok: true };
    }
    const body = slashCommandBody({
      user,
      command,
      text: text.trim(),
      channel: this.opts.channel,
      responseUrl: this.responseUrlFor(user),
      triggerId: this.opts.fake.issueTrigger(user.id),
    });
    this.answered(user, command, await sendToApp(this.opts.requestUrl, this.opts.signingSecret, body));
    return { ok: true };
  }

  /** Clicks a button of a message in the channel as `userId` (its confirm dialog, if any, was confirmed). */
  async click(userId: string, ref: ButtonRef): Promise<Outcome> {
    const user = personById(userId);
    if (!user) return { ok: false, problem: `unknown user ${userId}` };
    const message = this.opts.fake.messages(this.opts.channel.id).find((m) => m.ts === ref.messageTs);
    if (!message) return { ok: false, problem: `no message ${ref.messageTs} in the channel` };
    const hit = buttonAt(message.blocks, ref.blockIndex, ref.elementIndex);
    // The button may be gone: the message was edited (decided) between drawing and clicking.
    if (!hit) return { ok: false, problem: 'that button is not on the message any more' };
    const { block, button } = hit;
    const withIds = message.blocks.map((b, i) =>
      typeof b === 'object' && b !== null && !('block_id' in b)
        ? { ...b, block_id: generatedBlockId(message.ts, i) }
        : b,
    );
    const body = blockActionsBody({
      user,
      channel: this.opts.channel,
      responseUrl: this.responseUrlFor(user, message.thread_ts),
      triggerId: this.opts.fake.issueTrigger(user.id),
      message: { ...message, blocks: withIds },
      button: {
        block_id:
          typeof block.block_id === 'string' ? block.block_id : generatedBlockId(message.ts, ref.blockIndex),
        action_id: String(button.action_id ?? ''),
        text: button.text,
        ...(typeof button.value === 'string' ? { value: button.value } : {}),
        ...(typeof button.style === 'string' ? { style: button.style } : {}),
      },
      bot: FAKE_BOT,
    });
    this.answered(user, undefined, await sendToApp(this.opts.requestUrl, this.opts.signingSecret, body));
    return { ok: true };
  }

  /** A POST to a response_url: what Slack answers, and the message shown. */
  respond(token: string, raw: unknown): { status: number; body: Record<string, unknown> } {
    const target = this.responseTargets.get(token);
    if (!target || target.expiresAt < Date.now())
      return { status: 404, body: { ok: false, error: 'expired_url' } };
    if (target.uses >= RESPONSE_URL_USES) return { status: 404, body: { ok: false, error: 'used_url' } };
    const parsed = ResponseBody.safeParse(raw);
    if (!parsed.success) return { status: 400, body: { ok: false, error: 'invalid_payload' } };
    const msg = parsed.data;
    const threadTs = msg.thread_ts ?? target.threadTs;
    const where = {
      ...(threadTs !== undefined ? { threadTs } : {}),
      ...(msg.response_type === 'in_channel' ? {} : { to: target.user }),
    };
    const text = msg.text ?? '';
    if (isTrue(msg.replace_original) || isTrue(msg.delete_original)) {
      const refusal = {
        method: 'response_url',
        error: 'not_simulated',
        details: ['replace_original and delete_original are not simulated by the playground'],
      };
      this.opts.view.add({
        kind: 'refused',
        text,
        ...(msg.blocks ? { blocks: msg.blocks } : {}),
        ...where,
        refusal,
      });
      return { status: 400, body: { ok: false, error: refusal.error } };
    }
    const problem =
      text === '' && (msg.blocks === undefined || msg.blocks.length === 0)
        ? { error: 'no_text', errors: [] as string[] }
        : blockKitError({ text, blocks: msg.blocks });
    if (problem) {
      this.opts.view.add({
        kind: 'refused',
        text,
        ...(msg.blocks ? { blocks: msg.blocks } : {}),
        ...where,
        refusal: { method: 'response_url', error: problem.error, details: problem.errors },
      });
      return { status: 400, body: { ok: false, error: problem.error, errors: problem.errors } };
    }
    target.uses += 1;
    this.opts.view.add({
      kind: msg.response_type === 'in_channel' ? 'bot' : 'ephemeral',
      text,
      ...(msg.blocks ? { blocks: msg.blocks } : {}),
      ...where,
    });
    return { status: 200, body: { ok: true } };
  }

  private responseUrlFor(user: Person, threadTs?: string): string {
    const token = randomBytes(18).toString('base64url');
    this.responseTargets.set(token, {
      user: user.id,
      ...(threadTs !== undefined ? { threadTs } : {}),
      expiresAt: Date.now() + RESPONSE_URL_TTL_MS,
      uses: 0,
    });
    return `${this.opts.responseBase}${token}`;
  }

  /** What Slack shows after the app answered (or did not) within its 3 seconds. */
  private answered(user: Person, command: string | undefined, answer: AppAnswer): void {
    if (answer.failure !== undefined) {
      this.opts.view.add({
        kind: 'notice',
        to: user.id,
        text:
          command !== undefined
            ? `${command} failed with the error "${answer.failure}"`
            : `The app did not take the click: "${answer.failure}"${answer.status !== undefined ? ` (HTTP ${answer.status})` : ''}`,
      });
      return;
    }
    // An ack may carry a message: Slack shows it to the user (or the channel, for in_channel).
    if (answer.body.trim() === '') return;
    let json: unknown = answer.body;
    if (answer.contentType.includes('application/json')) {
      try {
        json = JSON.parse(answer.body);
      } catch {
        json = answer.body;
      }
    }
    const message = typeof json === 'string' ? { text: json } : json;
    const parsed = ResponseBody.safeParse(message);
    if (!parsed.success) return;
    const { text = '', blocks, response_type } = parsed.data;
    this.opts.view.add({
      kind: response_type === 'in_channel' ? 'bot' : 'ephemeral',
      text,
      ...(blocks ? { blocks } : {}),
      ...(response_type === 'in_channel' ? {} : { to: user.id }),
    });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isTrue(v: boolean | 'true' | 'false' | undefined): boolean {
  return v === true || v === 'true';
}
