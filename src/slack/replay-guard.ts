/**
 * A signed Slack request is taken once. Bolt checks the signature and refuses a timestamp older than five
 * minutes, but within those five minutes anyone who captured a request (a proxy log, a TLS-terminating
 * middlebox, a debugging dump) could send it again, and `/capi recover` would be asked for a second time.
 * So every request's signature is remembered in Redis (shared by every `serve` replica) until Bolt would
 * refuse it anyway, and a signature seen before is refused: the request is acked and nothing else happens.
 *
 * Two requests Slack sends differ in their signed bytes (each command and click has its own trigger id); an
 * Events API retry of an event already taken (X-Slack-Retry-Num) is the duplicate Slack asks apps to drop.
 */
import { createHash } from 'node:crypto';
import type { AnyMiddlewareArgs, Middleware } from '@slack/bolt';
import type { Logger } from 'pino';
import type { RedisClient } from '../redis/connection.js';

/** Bolt refuses a request whose timestamp is older than this (verify-request.ts, five minutes). */
export const SIGNATURE_WINDOW_MS = 5 * 60_000;

export const REPLAYED_REPLY =
  'This request was already received once (a replayed request is refused); nothing happened. Type the command again.';

/** What the HTTP receiver hands every listener's context from the request's headers. */
export interface SignedRequestContext {
  readonly slackSignature?: string;
  readonly slackRequestTimestamp?: string;
}

/** Bolt's customPropertiesExtractor: the two headers the check needs, nothing else of the request. */
export function signedRequestHeaders(req: {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}): SignedRequestContext {
  const one = (name: string) => {
    const v = req.headers[name];
    return typeof v === 'string' ? v : undefined;
  };
  const signature = one('x-slack-signature');
  const timestamp = one('x-slack-request-timestamp');
  return {
    ...(signature !== undefined ? { slackSignature: signature } : {}),
    ...(timestamp !== undefined ? { slackRequestTimestamp: timestamp } : {}),
  };
}

export class SeenSignatures {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  /**
   * True the first time `signature` is offered; false for every later time while Bolt would still accept it.
   * The entry lives until the request's timestamp has left Bolt's window (at least the window itself).
   */
  async firstTime(signature: string, timestampS: number, now = Date.now()): Promise<boolean> {
    const digest = createHash('sha256').update(signature).digest('hex');
    const until = (timestampS + 1) * 1000 + SIGNATURE_WINDOW_MS;
    const ttlMs = Math.max(SIGNATURE_WINDOW_MS, Math.min(until - now, 24 * 3_600_000));
    const set = await this.redis.set(`${this.prefix}:slack:seen:${digest}`, '1', 'PX', ttlMs, 'NX');
    return set === 'OK';
  }
}

/** Bolt global middleware, first in line in HTTP mode: a signature seen before ends the request here. */
export function replayGuard(opts: {
  readonly seen: SeenSignatures;
  readonly logger: Logger;
}): Middleware<AnyMiddlewareArgs> {
  return async (args) => {
    const { body, next, context } = args;
    const ack =
      'ack' in args && typeof args.ack === 'function'
        ? (args.ack as (reply?: { response_type: 'ephemeral'; text: string }) => Promise<void>)
        : undefined;
    const isCommand = typeof (body as { command?: unknown }).command === 'string';
    const refuse = async (why: string, text: string) => {
      opts.logger.warn({ type: isCommand ? 'command' : (body as { type?: unknown }).type }, why);
      if (isCommand && ack) await ack({ response_type: 'ephemeral', text });
      else await ack?.();
    };
    const { slackSignature, slackRequestTimestamp } = context as SignedRequestContext;
    const timestamp = Number(slackRequestTimestamp);
    // Bolt verified both headers before any middleware runs; missing here means the receiver was not ours.
    if (slackSignature === undefined || !Number.isSafeInteger(timestamp)) {
      await refuse('request without its signature headers refused', REPLAYED_REPLY);
      return;
    }
    let first: boolean;
    try {
      first = await opts.seen.firstTime(slackSignature, timestamp);
    } catch (err) {
      await refuse(
        `request refused: cannot check it was not replayed (${(err as Error).message})`,
        'capi-chatops cannot reach its store right now; nothing happened. Try again in a minute.',
      );
      return;
    }
    if (!first) {
      await refuse('replayed request refused: its signature was seen before', REPLAYED_REPLY);
      return;
    }
    await next();
  };
}
