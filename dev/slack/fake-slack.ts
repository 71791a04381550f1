/**
 * A strict fake of the Slack Web API: a real HTTP server on 127.0.0.1 that @slack/web-api's WebClient (and
 * Bolt through `clientOptions.slackApiUrl`) talks to. It is stricter than Slack where Slack would be lenient
 * in ways that hide bugs (a reply to a reply, an empty text object), and enforces the Block Kit limits with
 * the same validator the message builders are tested against.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BOT_SCOPES } from '../../src/doctor/slack.js';
import { blockKitError } from './block-kit.js';
import { findViewViolations, type ViewKind } from './views.js';

export interface RecordedCall {
  /** The API method (`chat.postMessage`), or `upload` for a POST to an upload URL. */
  readonly method: string;
  /** The arguments as parsed: JSON-string fields (`blocks`, `files`) decoded; for `upload`, file_id and bytes. */
  readonly args: Readonly<Record<string, unknown>>;
  /** Epoch ms, on the fake's clock. */
  readonly at: number;
  readonly status: number;
  readonly response: unknown;
}

export interface FakeMessage {
  readonly ts: string;
  readonly thread_ts?: string;
  readonly text: string;
  readonly blocks: unknown[];
  /** How many chat.update calls changed it. */
  readonly updates: number;
  /** Ids of files shared with this message (files.completeUploadExternal). */
  readonly files?: readonly string[];
}

export interface FakeEphemeral {
  /** The message_ts Slack answered with: ephemerals are ordered among the channel's messages by it. */
  readonly ts: string;
  /** How it was sent: chat.postEphemeral (app-wide Tier 4 limit) or a command's response_url (no app limit). */
  readonly via: 'chat.postEphemeral' | 'response_url';
  readonly user: string;
  readonly thread_ts?: string;
  readonly text: string;
  readonly blocks: unknown[];
}

export interface FakeFile {
  readonly id: string;
  readonly filename: string;
  readonly title: string;
  readonly bytes: Buffer;
  readonly channel?: string;
  readonly thread_ts?: string;
}

/** A modal or Home tab as Slack holds it. */
export interface FakeView {
  readonly id: string;
  readonly type: ViewKind;
  /** Who sees it: the trigger's user for a modal, user_id for a Home tab. */
  readonly user: string;
  /** Changes with every update; views.update with a stale hash is refused (hash_conflict). */
  readonly hash: string;
  readonly view: Readonly<Record<string, unknown>>;
  /** How many views.update / views.publish calls replaced it after the first. */
  readonly updates: number;
}

export type FakeFailure = { status: 429; retryAfterS: number } | { status: 500 | 503 };

export interface FakeSlack {
  /** What WebClient's `slackApiUrl` takes, e.g. `http://127.0.0.1:PORT/api/`. */
  readonly url: string;
  /** Every call, in order, refused ones included. */
  readonly calls: readonly RecordedCall[];
  /** The current state of every message in a channel, oldest first (thread replies included). */
  messages(channel: string): FakeMessage[];
  ephemerals(channel: string): FakeEphemeral[];
  /** Files that completed the upload flow (shared or not). */
  files(): FakeFile[];
  /**
   * A trigger_id as Slack puts in a slash command or an interaction by `user`: views.open accepts it once,
   * within triggerTtlMs (3 s) of this call, on the fake's clock.
   */
  issueTrigger(user: string): string;
  /**
   * A response_url as Slack puts in a slash command by `user` in `channel`: it takes up to
   * responseUrlUses (5) messages within responseUrlTtlMs (30 min) of this call, on the fake's clock. Each POST
   * is recorded as a call of method `response_url`; an ephemeral one is kept with the channel's ephemerals
   * (`via: 'response_url'`), an `in_channel` one as a channel message.
   */
  issueResponseUrl(user: string, channel: string): string;
  /** Every modal opened, in order, as it is now. */
  modals(): FakeView[];
  /** The Home tab last published for `user`. */
  home(user: string): FakeView | undefined;
  /**
   * Calls `listener` after every recorded call (refused ones too), synchronously, so it sees the state the
   * call left; returns the unsubscribe function.
   */
  onCall(listener: (call: RecordedCall) => void): () => void;
  /** The next `times` (default 1) calls of `method` fail this way and change nothing. */
  failNext(method: string, failure: FakeFailure, times?: number): void;
  close(): Promise<void>;
}

export interface FakeSlackOptions {
  readonly token: string;
  readonly channels: readonly string[];
  /** Known users and the user groups (subteam ids) they belong to. */
  readonly users?: Readonly<Record<string, { readonly groups: readonly string[] }>>;
  /**
   * Who is in each channel (conversations.members). A channel not named here has every known user in it
   * (an incident channel the whole team joined).
   */
  readonly members?: Readonly<Record<string, readonly string[]>>;
  /**
   * The channels the bot is a member of (conversations.info's `is_member`); chat.postMessage elsewhere is
   * refused with not_in_channel, as Slack refuses a bot outside a channel. Default: every channel.
   */
  readonly botChannels?: readonly string[];
  /** Channel names for conversations.info (default `incident-<id in lowercase>`). */
  readonly channelNames?: Readonly<Record<string, string>>;
  /**
   * The bot token's scopes, sent in the `x-oauth-scopes` header of every answer to that token as Slack does.
   * conversations.* without channels:read answer missing_scope. Default: the scopes slack/manifest.yaml lists.
   */
  readonly scopes?: readonly string[];
  /** chat.postMessage per channel per second, after a burst of 3. Default 1. */
  readonly postRatePerChannelPerS?: number;
  /**
   * Slack's per-method limits (per app and workspace, every channel together), e.g. `{ 'chat.update': 50 }`
   * for Tier 3: at most that many accepted calls of the method in any 60 s; past it 429 with Retry-After
   * (seconds until the oldest call leaves the window). Methods not named have no such limit. Default none.
   */
  readonly methodLimitsPerMinute?: Readonly<Record<string, number>>;
  /** The window of methodLimitsPerMinute, for tests that cannot wait a minute. Default 60000. */
  readonly methodLimitWindowMs?: number;
  /** How long a trigger_id stays usable for views.open (Slack: 3 s). Default 3000. */
  readonly triggerTtlMs?: number;
  /** How long a response_url takes messages (Slack: 30 min). Default 1800000. */
  readonly responseUrlTtlMs?: number;
  /** How many messages a response_url takes (Slack: 5). Default 5. */
  readonly responseUrlUses?: number;
  /** Epoch ms; lets a test move time for the rate limiter instead of sleeping. Default Date.now. */
  readonly clock?: () => number;
}

export const FAKE_BOT = { userId: 'UBOT000001', botId: 'BBOT000001', teamId: 'TFAKE00001' } as const;

const POST_BURST = 3;
/** Form fields Slack expects as JSON strings. */
const JSON_FIELDS = new Set(['blocks', 'attachments', 'files', 'metadata', 'view']);

class ApiError extends Error {
  constructor(
    readonly error: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(error);
  }
}

interface StoredMessage {
  ts: string;
  thread_ts?: string;
  text: string;
  blocks: unknown[];
  updates: number;
  files?: string[];
}

interface PendingUpload {
  readonly id: string;
  readonly filename: string;
  readonly length: number;
  bytes?: Buffer;
  completed: boolean;
}

export async function startFakeSlack(opts: FakeSlackOptions): Promise<FakeSlack> {
  const clock = opts.clock ?? Date.now;
  const rate = opts.postRatePerChannelPerS ?? 1;
  const users = opts.users ?? {};
  const calls: RecordedCall[] = [];
  const listeners = new Set<(call: RecordedCall) => void>();
  const channels = new Map<string, StoredMessage[]>(opts.channels.map((c) => [c, []]));
  const ephemerals = new Map<string, FakeEphemeral[]>();
  const uploads = new Map<string, PendingUpload>();
  const files: FakeFile[] = [];
  const failures = new Map<string, FakeFailure[]>();
  const buckets = new Map<string, { tokens: number; at: number }>();
  const methodWindows = new Map<string, number[]>();
  const triggers = new Map<string, { user: string; issuedAt: number; used: boolean }>();
  const responseUrls = new Map<string, { user: string; channel: string; issuedAt: number; uses: number }>();
  const views = new Map<string, FakeView>();
  const homes = new Map<string, string>();
  let viewCounter = 0;
  let tsCounter = 0;
  let fileCounter = 0;
  let baseUrl = '';

  const nextTs = () => {
    tsCounter += 1;
    const micros = tsCounter * 100;
    return `${1_700_000_000 + Math.floor(micros / 1_000_000)}.${String(micros % 1_000_000).padStart(6, '0')}`;
  };

  const takePostToken = (channel: string): boolean => {
    const now = clock();
    const bucket = buckets.get(channel) ?? { tokens: POST_BURST, at: now };
    bucket.tokens = Math.min(POST_BURST, bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    buckets.set(channel, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  };

  /** Seconds to wait when `method` is over its per-minute limit, else 0 (and the call is counted). */
  const methodWait = (method: string): number => {
    const limit = opts.methodLimitsPerMinute?.[method];
    if (limit === undefined) return 0;
    const now = clock();
    const span = opts.methodLimitWindowMs ?? 60_000;
    const window = (methodWindows.get(method) ?? []).filter((at) => at > now - span);
    methodWindows.set(method, window);
    if (window.length >= limit) return Math.max(1, Math.ceil(((window[0] as number) + span - now) / 1000));
    window.push(now);
    return 0;
  };

  const scopes = opts.scopes ?? BOT_SCOPES;
  const botIn = (channel: string) => opts.botChannels?.includes(channel) ?? true;
  const needScope = (scope: string) => {
    if (!scopes.includes(scope)) {
      throw new ApiError('missing_scope', { needed: scope, provided: scopes.join(',') });
    }
  };

  const channelOf = (args: Record<string, unknown>, field = 'channel'): StoredMessage[] => {
    const channel = args[field];
    if (typeof channel !== 'string' || channel === '') throw new ApiError('channel_not_found');
    const messages = channels.get(channel);
    if (!messages) throw new ApiError('channel_not_found');
    return messages;
  };

  const checkThread = (messages: StoredMessage[], threadTs: unknown): string | undefined => {
    if (threadTs === undefined || threadTs === '') return undefined;
    // Slack files a reply to a reply under the parent; a bot that does that holds the wrong ts, so refuse it.
    if (
      typeof threadTs !== 'string' ||
      !messages.some((m) => m.ts === threadTs && m.thread_ts === undefined)
    ) {
      throw new ApiError('thread_not_found');
    }
    return threadTs;
  };

  /** text and blocks as Slack would store them, or the error Slack would answer. */
  const content = (args: Record<string, unknown>): { text: string; blocks: unknown[] } => {
    const text = args.text === undefined ? '' : String(args.text);
    const blocks = args.blocks;
    if (blocks !== undefined && !Array.isArray(blocks)) throw new ApiError('invalid_blocks_format');
    if (text === '' && (blocks === undefined || blocks.length === 0)) throw new ApiError('no_text');
    const problem = blockKitError({ text, blocks });
    if (problem) throw new ApiError(problem.error, { errors: problem.errors });
    return { text, blocks: blocks ?? [] };
  };

  /** The view argument when Slack would take it, else the error it answers. */
  const viewArg = (args: Record<string, unknown>, kind: ViewKind): Record<string, unknown> => {
    const view = args.view;
    if (view === undefined)
      throw new ApiError('invalid_arguments', {
        response_metadata: { messages: ['[ERROR] missing required field: view'] },
      });
    if (typeof view !== 'object' || view === null || Array.isArray(view))
      throw new ApiError('invalid_arguments', {
        response_metadata: { messages: ['[ERROR] view must be a JSON object'] },
      });
    const problems = findViewViolations(view, kind);
    if (problems.some((p) => p.startsWith('/view: is '))) throw new ApiError('view_too_large');
    if (problems.length > 0) {
      throw new ApiError('invalid_arguments', {
        response_metadata: { messages: problems.map((p) => `[ERROR] ${p}`) },
      });
    }
    return view as Record<string, unknown>;
  };

  const storeView = (
    id: string | undefined,
    kind: ViewKind,
    user: string,
    view: Record<string, unknown>,
  ): FakeView => {
    const previous = id === undefined ? undefined : views.get(id);
    viewCounter += 1;
    const stored: FakeView = {
      id: previous?.id ?? `V${String(viewCounter).padStart(9, '0')}`,
      type: kind,
      user,
      hash: `${viewCounter}.h${viewCounter.toString(36)}`,
      view: structuredClone(view),
      updates: previous === undefined ? 0 : previous.updates + 1,
    };
    views.set(stored.id, stored);
    return stored;
  };

  const keepEphemeral = (
    channel: string,
    user: string,
    via: FakeEphemeral['via'],
    body: { text: string; blocks: unknown[] },
    threadTs?: string,
  ): string => {
    const list = ephemerals.get(channel) ?? [];
    const ts = nextTs();
    list.push({ ts, via, user, ...(threadTs !== undefined ? { thread_ts: threadTs } : {}), ...body });
    ephemerals.set(channel, list);
    return ts;
  };

  const viewJson = (v: FakeView) => ({ ...structuredClone(v.view), id: v.id, hash: v.hash, type: v.type });

  const methods: Record<string, (args: Record<string, unknown>) => Record<string, unknown>> = {
    'views.open': (args) => {
      const id = args.trigger_id;
      const trigger = typeof id === 'string' ? triggers.get(id) : undefined;
      if (trigger === undefined) throw new ApiError('invalid_trigger_id');
      if (clock() - trigger.issuedAt > (opts.triggerTtlMs ?? 3000)) throw new ApiError('expired_trigger_id');
      if (trigger.used) throw new ApiError('exchanged_trigger_id');
      const view = viewArg(args, 'modal');
      // Slack spends the trigger on a well-formed request only: a refused view can be fixed and sent again.
      trigger.used = true;
      return { view: viewJson(storeView(undefined, 'modal', trigger.user, view)) };
    },

    'views.update': (args) => {
      const byExternal =
        typeof args.external_id === 'string'
          ? [...views.values()].find((v) => v.view.external_id === args.external_id)
          : undefined;
      const current = typeof args.view_id === 'string' ? views.get(args.view_id) : byExternal;
      if (current === undefined || current.type !== 'modal') throw new ApiError('not_found');
      if (args.hash !== undefined && args.hash !== current.hash) throw new ApiError('hash_conflict');
      const view = viewArg(args, 'modal');
      return { view: viewJson(storeView(current.id, 'modal', current.user, view)) };
    },

    'views.publish': (args) => {
      const user = args.user_id;
      if (typeof user !== 'string' || !(user in users)) throw new ApiError('user_not_found');
      const current = homes.get(user);
      if (args.hash !== undefined && (current === undefined || args.hash !== views.get(current)?.hash)) {
        throw new ApiError('hash_conflict');
      }
      const view = viewArg(args, 'home');
      const stored = storeView(current, 'home', user, view);
      homes.set(user, stored.id);
      return { view: viewJson(stored) };
    },

    'auth.test': () => ({
      url: 'https://fake.slack.test/',
      team: 'Fake',
      user: 'capi-bot',
      team_id: FAKE_BOT.teamId,
      user_id: FAKE_BOT.userId,
      bot_id: FAKE_BOT.botId,
    }),

    'chat.postMessage': (args) => {
      const messages = channelOf(args);
      const channel = args.channel as string;
      if (!botIn(channel)) throw new ApiError('not_in_channel');
      const threadTs = checkThread(messages, args.thread_ts);
      const body = content(args);
      if (!takePostToken(channel)) throw new RateLimited(1);
      const message: StoredMessage = { ts: nextTs(), ...body, updates: 0 };
      if (threadTs !== undefined) message.thread_ts = threadTs;
      messages.push(message);
      return { channel, ts: message.ts, message: messageJson(message) };
    },

    'chat.update': (args) => {
      const messages = channelOf(args);
      const message = messages.find((m) => m.ts === args.ts);
      if (!message) throw new ApiError('message_not_found');
      const body = content(args);
      if (args.text !== undefined) message.text = body.text;
      if (args.blocks !== undefined) message.blocks = body.blocks;
      message.updates += 1;
      return { channel: args.channel, ts: message.ts, text: message.text, message: messageJson(message) };
    },

    'chat.postEphemeral': (args) => {
      const messages = channelOf(args);
      const channel = args.channel as string;
      // Slack shows an ephemeral only to someone in the channel.
      const user = args.user;
      if (
        typeof user !== 'string' ||
        !(user in users) ||
        !(opts.members?.[channel]?.includes(user) ?? true)
      ) {
        throw new ApiError('user_not_in_channel');
      }
      const threadTs = checkThread(messages, args.thread_ts);
      const body = content(args);
      return { message_ts: keepEphemeral(channel, user, 'chat.postEphemeral', body, threadTs) };
    },

    'files.getUploadURLExternal': (args) => {
      const length = Number(args.length);
      if (
        typeof args.filename !== 'string' ||
        args.filename === '' ||
        !Number.isSafeInteger(length) ||
        length <= 0
      ) {
        throw new ApiError('invalid_arguments');
      }
      fileCounter += 1;
      const id = `F${String(fileCounter).padStart(9, '0')}`;
      uploads.set(id, { id, filename: args.filename, length, completed: false });
      return { upload_url: `${baseUrl}/upload/${id}`, file_id: id };
    },

    'files.completeUploadExternal': (args) => {
      const list = args.files;
      if (!Array.isArray(list) || list.length === 0) throw new ApiError('invalid_arguments');
      const pending = list.map((f: unknown) => {
        const id = (f as { id?: unknown } | null)?.id;
        const upload = typeof id === 'string' ? uploads.get(id) : undefined;
        if (!upload?.bytes || upload.completed) throw new ApiError('file_not_found');
        const title = (f as { title?: unknown }).title;
        return { upload, title: typeof title === 'string' && title !== '' ? title : upload.filename };
      });
      let channel: string | undefined;
      let threadTs: string | undefined;
      if (args.channel_id !== undefined) {
        const messages = channelOf(args, 'channel_id');
        channel = args.channel_id as string;
        threadTs = checkThread(messages, args.thread_ts);
        // Sharing a file posts a message holding it, where a person would see it.
        const message: StoredMessage = {
          ts: nextTs(),
          text: args.initial_comment === undefined ? '' : String(args.initial_comment),
          blocks: [],
          updates: 0,
          files: pending.map((p) => p.upload.id),
        };
        if (threadTs !== undefined) message.thread_ts = threadTs;
        messages.push(message);
      }
      for (const { upload, title } of pending) {
        upload.completed = true;
        files.push({
          id: upload.id,
          filename: upload.filename,
          title,
          bytes: upload.bytes as Buffer,
          ...(channel !== undefined ? { channel } : {}),
          ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
        });
      }
      return { files: pending.map(({ upload, title }) => ({ id: upload.id, title, name: upload.filename })) };
    },

    'usergroups.users.list': (args) => {
      const group = args.usergroup;
      const members = Object.entries(users)
        .filter(([, u]) => typeof group === 'string' && u.groups.includes(group))
        .map(([id]) => id);
      const known = Object.values(users).some((u) => typeof group === 'string' && u.groups.includes(group));
      if (!known) throw new ApiError('no_such_subteam');
      return { users: members };
    },

    // Slack: the channel as the token sees it; `is_member` says whether the bot is in it.
    'conversations.info': (args) => {
      needScope('channels:read');
      const channel = args.channel;
      if (typeof channel !== 'string' || !channels.has(channel)) throw new ApiError('channel_not_found');
      return {
        channel: {
          id: channel,
          name: opts.channelNames?.[channel] ?? `incident-${channel.toLowerCase()}`,
          is_channel: true,
          is_private: false,
          is_archived: false,
          is_member: botIn(channel),
          created: 1_700_000_000,
        },
      };
    },

    // Slack: cursor pagination, `limit` 1-1000 (default 100); the last page has an empty next_cursor.
    'conversations.members': (args) => {
      needScope('channels:read');
      const channel = args.channel;
      if (typeof channel !== 'string' || !channels.has(channel)) throw new ApiError('channel_not_found');
      const limit = args.limit === undefined ? 100 : Number(args.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new ApiError('invalid_limit');
      const all = opts.members?.[channel] ?? Object.keys(users);
      const cursor =
        args.cursor === undefined || args.cursor === ''
          ? 0
          : Number.parseInt(String(args.cursor).replace(/^m/, ''), 10);
      if (!Number.isInteger(cursor) || cursor < 0 || cursor > all.length)
        throw new ApiError('invalid_cursor');
      const next = cursor + limit < all.length ? `m${cursor + limit}` : '';
      return { members: all.slice(cursor, cursor + limit), response_metadata: { next_cursor: next } };
    },

    'users.info': (args) => {
      const id = args.user;
      if (typeof id !== 'string' || !(id in users)) throw new ApiError('user_not_found');
      return { user: { id, name: id.toLowerCase(), real_name: `User ${id}`, is_bot: false, deleted: false } };
    },
  };

  const record = (method: string, args: Record<string, unknown>, status: number, response: unknown) => {
    const call = { method, args, at: clock(), status, response };
    calls.push(call);
    for (const listener of listeners) listener(call);
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain' : 'application/json; charset=utf-8',
      ...headers,
    });
    res.end(text);
  };

  /** Answers an injected failure if one is queued for this method; true when it did. */
  const injected = (method: string, args: Record<string, unknown>, res: ServerResponse): boolean => {
    const failure = failures.get(method)?.shift();
    if (!failure) return false;
    if (failure.status === 429) {
      const body = { ok: false, error: 'ratelimited' };
      record(method, args, 429, body);
      send(res, 429, body, { 'retry-after': String(failure.retryAfterS) });
    } else {
      const body = 'upstream connect error';
      record(method, args, failure.status, body);
      send(res, failure.status, body);
    }
    return true;
  };

  const handleApi = (
    method: string,
    args: Record<string, unknown>,
    token: string | undefined,
    res: ServerResponse,
  ) => {
    if (injected(method, args, res)) return;
    let scopeHeader: Record<string, string> = {};
    const answer = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
      record(method, args, status, body);
      send(res, status, body, { ...scopeHeader, ...headers });
    };
    if (token === undefined || token === '') return answer(200, { ok: false, error: 'not_authed' });
    if (token !== opts.token) return answer(200, { ok: false, error: 'invalid_auth' });
    // Slack names the token's scopes on every answer to it (the Web API client reads them from here).
    scopeHeader = { 'x-oauth-scopes': scopes.join(',') };
    const impl = methods[method];
    if (!impl) return answer(200, { ok: false, error: 'unknown_method' });
    const wait = methodWait(method);
    if (wait > 0) return answer(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(wait) });
    try {
      answer(200, { ok: true, ...impl(args) });
    } catch (err) {
      if (err instanceof RateLimited) {
        return answer(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(err.retryAfterS) });
      }
      if (err instanceof ApiError) return answer(200, { ok: false, error: err.error, ...err.extra });
      throw err;
    }
  };

  const handleUpload = async (id: string, req: IncomingMessage, raw: Buffer, res: ServerResponse) => {
    const bytes = await uploadedBytes(req, raw);
    const args = { file_id: id, bytes: bytes.length };
    if (injected('upload', args, res)) return;
    const upload = uploads.get(id);
    let status = 200;
    let body: string;
    if (!upload || upload.bytes) {
      status = 404;
      body = `no upload waiting at ${id}`;
    } else if (bytes.length !== upload.length) {
      status = 400;
      body = `declared length ${upload.length}, received ${bytes.length} bytes`;
    } else {
      upload.bytes = bytes;
      body = `OK - ${bytes.length}`;
    }
    record('upload', args, status, body);
    send(res, status, body);
  };

  /**
   * A POST to a response_url (JSON, as Bolt's respond() sends it). Slack answers a spent or expired URL with
   * 404 (`used_url`, `expired_url`); replace_original and delete_original need a message the command does not
   * have, so they are refused here rather than ignored.
   */
  const handleResponseUrl = (token: string, raw: Buffer, res: ServerResponse) => {
    let args: Record<string, unknown> = {};
    const answer = (status: number, body: Record<string, unknown>) => {
      record('response_url', args, status, body);
      send(res, status, body);
    };
    try {
      const parsed: unknown = JSON.parse(raw.toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      args = parsed as Record<string, unknown>;
    } catch {
      return answer(400, { ok: false, error: 'invalid_payload' });
    }
    const target = responseUrls.get(token);
    if (target === undefined) return answer(404, { ok: false, error: 'invalid_url' });
    args = { ...args, user: target.user, channel: target.channel };
    if (clock() - target.issuedAt > (opts.responseUrlTtlMs ?? 30 * 60_000))
      return answer(404, { ok: false, error: 'expired_url' });
    if (target.uses >= (opts.responseUrlUses ?? 5)) return answer(404, { ok: false, error: 'used_url' });
    if (args.replace_original === true || args.delete_original === true)
      return answer(400, { ok: false, error: 'no_original_message' });
    const type = args.response_type ?? 'ephemeral';
    if (type !== 'ephemeral' && type !== 'in_channel')
      return answer(400, { ok: false, error: 'invalid_response_type' });
    let body: { text: string; blocks: unknown[] };
    try {
      body = content(args);
    } catch (err) {
      if (err instanceof ApiError) return answer(400, { ok: false, error: err.error, ...err.extra });
      throw err;
    }
    target.uses += 1;
    const messages = channels.get(target.channel);
    if (type === 'in_channel' && messages !== undefined) {
      messages.push({ ts: nextTs(), ...body, updates: 0 });
    } else {
      keepEphemeral(target.channel, target.user, 'response_url', body);
    }
    answer(200, { ok: true });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      void (async () => {
        if (req.method !== 'POST') return send(res, 405, 'POST only');
        const upload = /^\/upload\/([A-Za-z0-9]+)$/.exec(url.pathname);
        if (upload) return await handleUpload(upload[1] as string, req, raw, res);
        const respond = /^\/commands\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
        if (respond) return handleResponseUrl(respond[1] as string, raw, res);
        const api = /^\/api\/([A-Za-z0-9_.]+)$/.exec(url.pathname);
        if (!api) return send(res, 404, 'not found');
        const method = api[1] as string;
        let args: Record<string, unknown>;
        try {
          args = await parseArgs(req, raw);
        } catch (err) {
          const body = { ok: false, error: 'invalid_form_data', detail: String(err) };
          record(method, {}, 200, body);
          return send(res, 200, body);
        }
        const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const token = bearer ?? (typeof args.token === 'string' ? args.token : undefined);
        delete args.token;
        handleApi(method, args, token, res);
      })().catch((err: unknown) => {
        send(res, 500, `fake slack crashed: ${err instanceof Error ? err.stack : String(err)}`);
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}`;

  return {
    url: `${baseUrl}/api/`,
    calls,
    messages: (channel) => (channels.get(channel) ?? []).map(messageJson),
    ephemerals: (channel) => [...(ephemerals.get(channel) ?? [])],
    files: () => [...files],
    issueTrigger(user) {
      const id = `${Math.floor(clock() / 1000)}.${triggers.size + 1}.${randomBytes(8).toString('hex')}`;
      triggers.set(id, { user, issuedAt: clock(), used: false });
      return id;
    },
    issueResponseUrl(user, channel) {
      const token = randomBytes(12).toString('hex');
      responseUrls.set(token, { user, channel, issuedAt: clock(), uses: 0 });
      return `${baseUrl}/commands/${token}`;
    },
    modals: () => [...views.values()].filter((v) => v.type === 'modal').map((v) => structuredClone(v)),
    home(user) {
      const id = homes.get(user);
      const v = id === undefined ? undefined : views.get(id);
      return v === undefined ? undefined : structuredClone(v);
    },
    onCall(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    failNext(method, failure, times = 1) {
      const queue = failures.get(method) ?? [];
      for (let i = 0; i < times; i++) queue.push(failure);
      failures.set(method, queue);
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

class RateLimited extends Error {
  constructor(readonly retryAfterS: number) {
    super('ratelimited');
  }
}

function messageJson(m: StoredMessage): FakeMessage {
  return {
    ts: m.ts,
    ...(m.thread_ts !== undefined ? { thread_ts: m.thread_ts } : {}),
    text: m.text,
    blocks: structuredClone(m.blocks),
    updates: m.updates,
    ...(m.files !== undefined ? { files: [...m.files] } : {}),
  };
}

async function parseArgs(req: IncomingMessage, raw: Buffer): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  const args: Record<string, unknown> = {};
  if (type === 'application/json') {
    const parsed: unknown = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Error('not a JSON object');
    return parsed as Record<string, unknown>;
  }
  if (type === 'application/x-www-form-urlencoded' || type === '') {
    for (const [k, v] of new URLSearchParams(raw.toString('utf8'))) args[k] = decodeField(k, v);
    return args;
  }
  if (type === 'multipart/form-data') {
    const form = await formOf(req, raw);
    for (const [k, v] of form) args[k] = typeof v === 'string' ? decodeField(k, v) : `<file ${v.size} bytes>`;
    return args;
  }
  throw new Error(`unsupported content-type ${type}`);
}

function decodeField(key: string, value: string): unknown {
  if (!JSON_FIELDS.has(key)) return value;
  try {
    return JSON.parse(value);
  } catch {
    // Left as a string so the method answers invalid_blocks_format / invalid_arguments as Slack does.
    return value;
  }
}

function formOf(req: IncomingMessage, raw: Buffer): Promise<FormData> {
  return new Response(raw, { headers: { 'content-type': req.headers['content-type'] ?? '' } }).formData();
}

/** WebClient posts the bytes as multipart form data; curl and Slack's docs post them raw. Both are accepted. */
async function uploadedBytes(req: IncomingMessage, raw: Buffer): Promise<Buffer> {
  if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data')) return raw;
  const form = await formOf(req, raw);
  for (const [, v] of form) {
    if (typeof v !== 'string') return Buffer.from(await v.arrayBuffer());
  }
  throw new Error('multipart upload without a file part');
}
