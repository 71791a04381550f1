/**
 * The incident channel as the page shows it, built from the fake Slack's state (messages, thread replies,
 * edits, ephemerals, files) plus what only the playground knows: posts Slack refused (shown in red with
 * Slack's error, where they would have appeared), response_url replies, and Slackbot's notices. Every change
 * the bot makes reaches the fake as a Web API call; the fake tells this view at once (onCall), and the view
 * tells its listeners (the page's event stream).
 */
import { FAKE_BOT, type FakeSlack, type RecordedCall } from '../slack/fake-slack.js';
import { blocksView } from './blocks-view.js';
import { APPROVER_GROUP, type Person } from './cast.js';
import { type MrkdwnContext, parseMrkdwn } from './mrkdwn.js';
import type { ChannelState, MessageView, RefusalView } from './web/view-types.js';

export const BOT_NAME = 'capi-chatops';
const SLACKBOT = 'Slackbot';

export interface ChannelViewOptions {
  readonly fake: FakeSlack;
  readonly channel: { readonly id: string; readonly name: string };
  readonly people: readonly Person[];
  readonly site: string;
  readonly scenario: string;
  readonly scenarioDescription: string;
  /** Default: the machine's clock and zone. */
  readonly now?: () => Date;
  readonly timeZone?: string;
}

/** Something the playground shows that the fake Slack does not hold. */
export interface LocalPost {
  readonly kind: 'ephemeral' | 'notice' | 'refused' | 'bot';
  readonly text: string;
  readonly blocks?: readonly unknown[];
  readonly threadTs?: string;
  /** Who sees it (ephemeral, notice); everyone when unset. */
  readonly to?: string;
  readonly refusal?: RefusalView;
}

interface StoredLocal extends LocalPost {
  readonly key: string;
  /** Shown right after the message with this ts (the newest one when it was added). */
  readonly afterTs: string;
  readonly seq: number;
}

/** Methods whose refusal means a message did not appear (or did not change) where people would look. */
const POSTING = new Set(['chat.postMessage', 'chat.postEphemeral', 'chat.update']);

export class ChannelView {
  private readonly firstSeen = new Map<string, Date>();
  private readonly local: StoredLocal[] = [];
  private readonly refusedEdits = new Map<string, RefusalView[]>();
  private readonly listeners = new Set<() => void>();
  private readonly cache = new Map<string, { readonly sig: string; readonly view: MessageView }>();
  private readonly now: () => Date;
  private readonly unsubscribe: () => void;
  private seq = 0;

  constructor(private readonly opts: ChannelViewOptions) {
    this.now = opts.now ?? (() => new Date());
    this.unsubscribe = opts.fake.onCall((call) => this.observe(call));
  }

  /** Called after every change; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.unsubscribe();
    this.listeners.clear();
  }

  add(post: LocalPost): void {
    this.seq += 1;
    this.local.push({ ...post, key: `local-${this.seq}`, afterTs: this.newestTs(), seq: this.seq });
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  private newestTs(): string {
    const { fake, channel } = this.opts;
    let newest = '0.000000';
    for (const m of [...fake.messages(channel.id), ...fake.ephemerals(channel.id)]) {
      if (compareTs(m.ts, newest) > 0) newest = m.ts;
    }
    return newest;
  }

  private observe(call: RecordedCall): void {
    const refused = refusalOf(call);
    if (refused !== undefined && call.args.channel === this.opts.channel.id) {
      const a = call.args;
      if (call.method === 'chat.update') {
        const ts = String(a.ts);
        this.refusedEdits.set(ts, [...(this.refusedEdits.get(ts) ?? []), refused]);
        this.cache.delete(ts);
      } else {
        this.seq += 1;
        this.local.push({
          key: `local-${this.seq}`,
          kind: 'refused',
          text: typeof a.text === 'string' ? a.text : '',
          ...(Array.isArray(a.blocks) ? { blocks: a.blocks } : {}),
          ...(typeof a.thread_ts === 'string' && a.thread_ts !== '' ? { threadTs: a.thread_ts } : {}),
          ...(call.method === 'chat.postEphemeral' && typeof a.user === 'string' ? { to: a.user } : {}),
          refusal: refused,
          afterTs: this.newestTs(),
          seq: this.seq,
        });
      }
    }
    this.changed();
  }

  /** The people of the channel, as the page names them. */
  people(): readonly Person[] {
    return this.opts.people;
  }

  /** How the bot's mrkdwn is read here: names of people, the approvers' group and the channel; the clock. */
  mrkdwnContext(): MrkdwnContext {
    const { people, channel, timeZone } = this.opts;
    return {
      name: (kind, id) => {
        if (kind === 'user')
          return id === FAKE_BOT.userId ? BOT_NAME : people.find((p) => p.id === id)?.handle;
        if (kind === 'group') return id === APPROVER_GROUP.id ? APPROVER_GROUP.handle : undefined;
        return id === channel.id ? channel.name : undefined;
      },
      now: this.now(),
      ...(timeZone !== undefined ? { timeZone } : {}),
    };
  }

  private seenAt(key: string): string {
    let at = this.firstSeen.get(key);
    if (at === undefined) {
      at = this.now();
      this.firstSeen.set(key, at);
    }
    return at.toLocaleTimeString('en-GB', {
      hour12: false,
      ...(this.opts.timeZone !== undefined ? { timeZone: this.opts.timeZone } : {}),
    });
  }

  state(): ChannelState {
    const { fake, channel } = this.opts;
    const ctx = this.mrkdwnContext();
    const files = new Map(fake.files().map((f) => [f.id, f]));
    const messages = fake.messages(channel.id);
    const items: { ts: string; seq: number; view: MessageView }[] = [];

    for (const m of messages) {
      const edits = this.refusedEdits.get(m.ts) ?? [];
      const sig = `${m.updates}/${edits.length}`;
      let view = this.cache.get(m.ts)?.sig === sig ? this.cache.get(m.ts)?.view : undefined;
      if (view === undefined) {
        view = {
          key: m.ts,
          kind: 'bot',
          ts: m.ts,
          ...(m.thread_ts !== undefined ? { threadTs: m.thread_ts } : {}),
          author: BOT_NAME,
          time: this.seenAt(m.ts),
          edited: m.updates > 0,
          text: parseMrkdwn(m.text, ctx),
          blocks: blocksView(m.blocks, m.ts, ctx),
          files: (m.files ?? []).flatMap((id) => {
            const f = files.get(id);
            return f
              ? [{ id, name: f.filename, title: f.title, bytes: f.bytes.length, href: `/files/${id}` }]
              : [];
          }),
          refusedEdits: edits,
        };
        this.cache.set(m.ts, { sig, view });
      }
      items.push({ ts: m.ts, seq: 0, view });
    }
    for (const e of fake.ephemerals(channel.id)) {
      const key = `eph-${e.ts}`;
      items.push({
        ts: e.ts,
        seq: 0,
        view: {
          key,
          kind: 'ephemeral',
          ts: e.ts,
          ...(e.thread_ts !== undefined ? { threadTs: e.thread_ts } : {}),
          author: BOT_NAME,
          time: this.seenAt(key),
          to: e.user,
          edited: false,
          text: parseMrkdwn(e.text, ctx),
          blocks: blocksView(e.blocks, e.ts, ctx),
          files: [],
          refusedEdits: [],
        },
      });
    }
    for (const l of this.local) {
      items.push({
        ts: l.afterTs,
        seq: l.seq,
        view: {
          key: l.key,
          kind: l.kind,
          ts: l.afterTs,
          ...(l.threadTs !== undefined ? { threadTs: l.threadTs } : {}),
          author: l.kind === 'notice' ? SLACKBOT : BOT_NAME,
          time: this.seenAt(l.key),
          ...(l.to !== undefined ? { to: l.to } : {}),
          edited: false,
          text: parseMrkdwn(l.text, ctx),
          blocks: blocksView(l.blocks ?? [], l.key, ctx),
          files: [],
          ...(l.refusal !== undefined ? { refusal: l.refusal } : {}),
          refusedEdits: [],
        },
      });
    }
    items.sort((a, b) => compareTs(a.ts, b.ts) || a.seq - b.seq);

    const replies = new Map<string, number>();
    for (const m of messages) {
      if (m.thread_ts !== undefined) replies.set(m.thread_ts, (replies.get(m.thread_ts) ?? 0) + 1);
    }
    return {
      channel: { id: channel.id, name: channel.name },
      site: this.opts.site,
      scenario: this.opts.scenario,
      scenarioDescription: this.opts.scenarioDescription,
      people: this.opts.people.map((p) => ({ id: p.id, name: p.name, role: p.role })),
      messages: items.map(({ view }) => {
        const n = view.kind === 'bot' && view.threadTs === undefined ? replies.get(view.ts) : undefined;
        return n !== undefined ? { ...view, replies: n } : view;
      }),
    };
  }
}

/** Slack's `ok: false` answer to a posting call, or undefined (accepted, rate-limited or not posting). */
function refusalOf(call: RecordedCall): RefusalView | undefined {
  if (!POSTING.has(call.method) || call.status !== 200) return undefined;
  const res = call.response as { ok?: unknown; error?: unknown; errors?: unknown } | null;
  if (res === null || typeof res !== 'object' || res.ok !== false) return undefined;
  return {
    method: call.method,
    error: String(res.error),
    details: Array.isArray(res.errors) ? res.errors.map(String) : [],
  };
}

/** Orders Slack timestamps (`seconds.micros`) numerically. */
export function compareTs(a: string, b: string): number {
  const [as = '0', af = '0'] = a.split('.');
  const [bs = '0', bf = '0'] = b.split('.');
  return Number(as) - Number(bs) || Number(af.padEnd(6, '0')) - Number(bf.padEnd(6, '0'));
}
