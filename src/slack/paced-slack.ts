/**
 * The thread poster's way to Slack: posts, edits and file uploads with its own rate limit and failure rules,
 * not the WebClient's. The client must be created with `rejectRateLimitedCalls: true` and
 * `retryConfig: { retries: 0 }` (pacedWebClient builds one; the constructor refuses any other): with the
 * client's own defaults a 429 pauses the client's whole queue (every run at once) and a 5xx is retried for
 * about 30 minutes, both out of order with the poster's serial queues.
 * Here:
 * - 429: wait Retry-After, then send the SAME message again (the run's queue waits: order is kept; the
 *   channel's other runs wait too: pacing is per channel; for chat.update every run waits: that limit is the
 *   app's, across channels);
 * - chat.update is budgeted for the whole app (Slack's Tier 3: 50 a minute, every channel together): an edit
 *   that must land (an approval losing its buttons) waits for a slot; a root checklist refresh is only made
 *   when a slot is free now, else it is left for later (`updateIfFree`), so a busy app never holds a thread's
 *   posts behind its root's refresh;
 * - 5xx or network error: retried with backoff (retryDelaysMs: 5 tries over about 30 s), then logged and
 *   skipped: a run must not be blocked by Slack, and the timeline in Redis (`/capi timeline`) still holds the
 *   event. (A post that reached Slack but whose answer was lost is posted again: at-least-once again.)
 * - `ok: false` (e.g. invalid_blocks): logged with the method and error, and the message is replaced by a
 *   plain-text post so the thread still shows the event.
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import {
  type ChatPostMessageArguments,
  ErrorCode as SlackErrorCode,
  WebClient,
  type WebClientOptions,
} from '@slack/web-api';
import type { Logger } from 'pino';
import { CapiError, ErrorCode } from '../errors.js';
import type { SlackMessage } from './blocks.js';

/** Waits between tries of a call that failed with a 5xx or a network error: 5 tries over about 30 s. */
export const RETRY_DELAYS_MS: readonly number[] = [1000, 3000, 8000, 18_000];

/** Thrown out of every wait once the signal aborted (the poster closes); ends a worker quietly. */
export class Closed extends Error {
  constructor() {
    super('thread poster closed');
  }
}

/** Sleeps `ms`, or throws Closed at once when `signal` aborts first (or already did). */
export async function sleepUnlessClosed(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) throw new Closed();
  if (ms <= 0) return;
  try {
    await sleepFor(ms, undefined, { signal });
  } catch {
    throw new Closed();
  }
}

/** A WebClient for PacedSlack: 429s and 5xx are thrown to it at once (its own rules above), never retried inside. */
export function pacedWebClient(
  token: string | undefined,
  opts: Pick<WebClientOptions, 'slackApiUrl' | 'fetch' | 'logLevel'> = {},
): WebClient {
  return new WebClient(token, { ...opts, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } });
}

/** Thrown at construction when the WebClient given would pause or retry on its own (see pacedWebClient). */
export class PacedClientError extends CapiError {
  constructor(readonly missing: readonly string[]) {
    super(
      ErrorCode.ConfigInvalid,
      `the thread poster's WebClient must hand 429s and 5xx to the poster: create it with ${missing.join(
        ' and ',
      )} (pacedWebClient(token, { slackApiUrl }) does)`,
    );
  }
}

/**
 * The options PacedSlack needs, read from the client: WebClient keeps them as fields (private to TypeScript
 * only). A client that does not show them (another version, another class) is refused too.
 */
function missingPacedOptions(client: WebClient): string[] {
  const fields = client as unknown as {
    readonly rejectRateLimitedCalls?: unknown;
    readonly retryConfig?: { readonly retries?: unknown };
  };
  return [
    ...(fields.rejectRateLimitedCalls === true ? [] : ['rejectRateLimitedCalls: true']),
    ...(fields.retryConfig?.retries === 0 ? [] : ['retryConfig: { retries: 0 }']),
  ];
}

export interface PacedSlackOptions {
  readonly client: WebClient;
  /** Per channel pacing of chat.postMessage and file shares (Slack: ~1 message/s/channel). */
  readonly minPostIntervalMs: number;
  readonly retryDelaysMs: readonly number[];
  /** chat.update calls allowed per window for the whole app (Slack: Tier 3, 50 per minute). */
  readonly updateLimit: { readonly count: number; readonly perMs: number };
  /** Aborted when the poster closes: every wait ends with Closed. */
  readonly signal: AbortSignal;
}

/** A log file for a thread. */
export interface ThreadFile {
  readonly content: string;
  readonly filename: string;
  readonly title: string;
}

/** blocks.ts builds plain objects checked against the Block Kit limits; the WebClient wants its own types. */
type SlackBlocks = Extract<ChatPostMessageArguments, { blocks: unknown }>['blocks'];

type CallOutcome<T> =
  | { readonly ok: true; readonly value: T }
  /** Slack answered `ok: false`: retrying the same call cannot help. */
  | { readonly ok: false; readonly platformError: string; readonly deferred?: undefined }
  /** Gave up (5xx or network errors past the last try, or an unexpected error): already logged. */
  | { readonly ok: false; readonly platformError?: undefined; readonly deferred?: undefined }
  /** An update-if-free found no free slot (or a 429): nothing was sent. */
  | { readonly ok: false; readonly platformError?: undefined; readonly deferred: true };

/** How a call waits its turn: a post in its channel's pacing; an edit for an update slot, or not at all. */
type Pacing = 'post' | 'update' | 'update-if-free' | 'none';

export class PacedSlack {
  /** Per channel: the earliest time (epoch ms) the next post may leave. */
  private readonly nextPostAt = new Map<string, number>();
  /** When chat.update calls were sent or are booked to be sent (epoch ms, ascending): the window's budget. */
  private readonly updateSlots: number[] = [];
  /** No chat.update before this time (epoch ms): a 429's Retry-After holds every run, not only the refused one. */
  private updateHoldUntil = 0;

  constructor(private readonly opts: PacedSlackOptions) {
    const missing = missingPacedOptions(opts.client);
    if (missing.length > 0) throw new PacedClientError(missing);
  }

  /**
   * Posts a message (in the thread when threadTs is set); its ts, or undefined when Slack would not take it.
   * A message given as a function is rendered when its turn has come, right before each try: what it says
   * about time (an approval's expiry) then holds from the moment it appears.
   */
  async post(
    log: Logger,
    channel: string,
    message: SlackMessage | (() => Promise<SlackMessage>),
    threadTs: string | undefined,
    what: string,
  ): Promise<string | undefined> {
    const base = {
      channel,
      unfurl_links: false,
      unfurl_media: false,
      ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
    };
    const client = this.opts.client;
    let rendered = typeof message === 'function' ? undefined : message;
    const render = async () => {
      rendered = typeof message === 'function' ? await message() : message;
      return rendered;
    };
    const first = await this.call(log, channel, 'chat.postMessage', 'post', async () => {
      const m = await render();
      return client.chat.postMessage({ ...base, text: m.text, blocks: m.blocks as SlackBlocks });
    });
    if (first.ok) return typeof first.value.ts === 'string' ? first.value.ts : undefined;
    const error = first.platformError;
    if (error === undefined) return undefined;
    // The formatted message was refused: a plain-text post keeps the event in the thread.
    log.warn({ what, error }, 'posting a plain-text fallback');
    const refused = rendered ?? (await render());
    const fallback = await this.call(log, channel, 'chat.postMessage', 'post', () =>
      client.chat.postMessage({ ...base, text: fallbackText(refused, error) }),
    );
    return fallback.ok && typeof fallback.value.ts === 'string' ? fallback.value.ts : undefined;
  }

  /** Edits a message in place; false when Slack would not take the edit, not even as plain text. */
  async update(
    log: Logger,
    channel: string,
    ts: string,
    message: SlackMessage,
    what: string,
  ): Promise<boolean> {
    return (await this.edit(log, channel, ts, message, what, 'update')) === 'sent';
  }

  /**
   * Edits a message only if an update slot is free now (see updateFreeIn) and Slack does not answer 429:
   * 'deferred' means nothing was sent; try again later with the newest content.
   */
  updateIfFree(
    log: Logger,
    channel: string,
    ts: string,
    message: SlackMessage,
    what: string,
  ): Promise<'sent' | 'failed' | 'deferred'> {
    return this.edit(log, channel, ts, message, what, 'update-if-free');
  }

  /** ms until a chat.update could leave without breaking the app's budget or a Retry-After (0: now). */
  updateFreeIn(): number {
    const now = Date.now();
    const { count, perMs } = this.opts.updateLimit;
    while ((this.updateSlots[0] ?? Number.POSITIVE_INFINITY) <= now - perMs) this.updateSlots.shift();
    const k = this.updateSlots.length;
    // A margin, because Slack counts a call when it arrives, a little after it was booked here.
    const margin = Math.min(1000, perMs / 10);
    const budget = k < count ? 0 : (this.updateSlots[k - count] as number) + perMs + margin - now;
    return Math.max(0, this.updateHoldUntil - now, budget);
  }

  private async edit(
    log: Logger,
    channel: string,
    ts: string,
    message: SlackMessage,
    what: string,
    pacing: 'update' | 'update-if-free',
  ): Promise<'sent' | 'failed' | 'deferred'> {
    const client = this.opts.client;
    const first = await this.call(log, channel, 'chat.update', pacing, () =>
      client.chat.update({ channel, ts, text: message.text, blocks: message.blocks as SlackBlocks }),
    );
    if (first.ok) return 'sent';
    if (first.deferred === true) return 'deferred';
    const error = first.platformError;
    if (error === undefined) return 'failed';
    log.warn({ what, error }, 'updating with a plain-text fallback');
    // An empty block list drops the old blocks (an approval's buttons must not outlive its decision).
    const fallback = await this.call(log, channel, 'chat.update', 'update', () =>
      client.chat.update({ channel, ts, text: fallbackText(message, error), blocks: [] }),
    );
    return fallback.ok ? 'sent' : 'failed';
  }

  /** Uploads a file into a thread, paced like a post; a failure is logged and skipped. */
  async upload(log: Logger, channel: string, threadTs: string, file: ThreadFile): Promise<void> {
    const { content, filename, title } = file;
    await this.call(log, channel, 'files.uploadV2', 'post', () =>
      this.opts.client.files.uploadV2({
        channel_id: channel,
        thread_ts: threadTs,
        file: Buffer.from(content, 'utf8'),
        filename,
        title,
      }),
    );
  }

  /** One Slack call with the rules above, waiting its turn as `pacing` says. */
  private async call<T>(
    log: Logger,
    channel: string,
    method: string,
    pacing: Pacing,
    fn: () => Promise<T>,
  ): Promise<CallOutcome<T>> {
    const { signal, retryDelaysMs } = this.opts;
    let failures = 0;
    for (;;) {
      if (signal.aborted) throw new Closed();
      if (pacing === 'post') await sleepUnlessClosed(this.reservePost(channel), signal);
      if (pacing === 'update') await sleepUnlessClosed(this.reserveUpdate(), signal);
      if (pacing === 'update-if-free') {
        if (this.updateFreeIn() > 0) return { ok: false, deferred: true };
        this.bookUpdate(Date.now());
      }
      try {
        return { ok: true, value: await fn() };
      } catch (err) {
        const code = errorCode(err);
        if (code === SlackErrorCode.RateLimitedError) {
          const retryAfter = Number((err as { retryAfter?: unknown }).retryAfter);
          const waitMs = Math.max(1, Number.isFinite(retryAfter) ? retryAfter : 1) * 1000;
          // Every caller waits: another run posting in this channel, or editing anywhere, would be refused too.
          if (pacing === 'post') this.holdPosts(channel, waitMs);
          if (pacing === 'update' || pacing === 'update-if-free') {
            this.updateHoldUntil = Math.max(this.updateHoldUntil, Date.now() + waitMs);
          }
          if (pacing === 'update-if-free') {
            log.warn({ method, retryAfterS: waitMs / 1000 }, 'slack rate limited; refreshing later');
            return { ok: false, deferred: true };
          }
          log.warn({ method, retryAfterS: waitMs / 1000 }, 'slack rate limited; sending the same call again');
          if (pacing === 'none') await sleepUnlessClosed(waitMs, signal);
          continue;
        }
        if (code === SlackErrorCode.PlatformError) {
          const data = (err as { data?: { error?: unknown; errors?: unknown } }).data;
          const error = typeof data?.error === 'string' ? data.error : 'unknown_error';
          log.error({ method, error, errors: data?.errors }, 'slack refused the call');
          return { ok: false, platformError: error };
        }
        const status = Number((err as { statusCode?: unknown }).statusCode);
        const retryable =
          code === SlackErrorCode.RequestError || (code === SlackErrorCode.HTTPError && status >= 500);
        const delay = retryDelaysMs[failures];
        if (!retryable || delay === undefined) {
          // Give up on this call and go on: a run must not be blocked by Slack.
          log.error(
            { method, err, tries: failures + 1 },
            retryable ? 'slack call failed on every try; skipped' : 'slack call failed; skipped',
          );
          return { ok: false };
        }
        failures += 1;
        log.warn({ method, err, retryInMs: delay }, 'slack call failed; trying again');
        await sleepUnlessClosed(delay, signal);
      }
    }
  }

  /** How long to wait before the next post in `channel` may leave; books that slot. */
  private reservePost(channel: string): number {
    const now = Date.now();
    const at = Math.max(now, this.nextPostAt.get(channel) ?? 0);
    this.nextPostAt.set(channel, at + this.opts.minPostIntervalMs);
    return at - now;
  }

  /** How long to wait before the next chat.update may leave within the budget; books that slot. */
  private reserveUpdate(): number {
    const now = Date.now();
    // First come, first served: never before a slot booked earlier.
    const at = Math.max(now + this.updateFreeIn(), this.updateSlots.at(-1) ?? 0);
    this.bookUpdate(at);
    return at - now;
  }

  private bookUpdate(at: number): void {
    let i = this.updateSlots.length;
    while (i > 0 && (this.updateSlots[i - 1] as number) > at) i -= 1;
    this.updateSlots.splice(i, 0, at);
  }

  private holdPosts(channel: string, ms: number): void {
    const until = Date.now() + ms;
    if ((this.nextPostAt.get(channel) ?? 0) < until) this.nextPostAt.set(channel, until);
  }
}

function errorCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}

/** The message's own notification text (redacted, escaped, short) and why the formatting is missing. */
function fallbackText(message: SlackMessage, error: string): string {
  return `${message.text}\n_(shown as plain text: Slack refused the formatted message with ${error})_`;
}
