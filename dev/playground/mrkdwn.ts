/**
 * Slack's mrkdwn, parsed into plain data (web/view-types.ts) the page turns into DOM nodes: bold, italics,
 * strike, inline code, code blocks, quotes, links `<url|text>`, user, group and channel mentions, `@here`,
 * `<!date^…>` and emoji shortcodes (the character Slack shows, via emoji.ts; one Slack does not know stays
 * text). Close enough to Slack's own rules to judge a message:
 * `*`, `_` and `~` open only after a non-word character and close only before one, nothing is formatted
 * inside code, and the three entities Slack escapes (&amp; &lt; &gt;) are decoded only at the end, so
 * escaped text can never become a mention, a link or a date.
 */
import { emojiChar, emojify } from './emoji.js';
import type { Inline, RichBlock, RichText } from './web/view-types.js';

export interface MrkdwnContext {
  /** A display name for a user (U…), user group (S…) or channel (C…) id, when the playground knows it. */
  name(kind: 'user' | 'group' | 'channel', id: string): string | undefined;
  /** "today", "yesterday" and "… ago" are relative to this. */
  readonly now: Date;
  /** IANA zone dates are shown in; default: this machine's. */
  readonly timeZone?: string;
}

const FENCE = '```';

export function decodeEntities(text: string): string {
  return text.replace(/&(amp|lt|gt);/g, (_, e: string) => (e === 'amp' ? '&' : e === 'lt' ? '<' : '>'));
}

export function parseMrkdwn(text: string, ctx: MrkdwnContext): RichText {
  const segments: { readonly pre: boolean; text: string }[] = [];
  let from = 0;
  for (;;) {
    const open = text.indexOf(FENCE, from);
    const close = open === -1 ? -1 : text.indexOf(FENCE, open + FENCE.length);
    if (close === -1) break;
    segments.push({ pre: false, text: text.slice(from, open) });
    segments.push({ pre: true, text: text.slice(open + FENCE.length, close) });
    from = close + FENCE.length;
  }
  segments.push({ pre: false, text: text.slice(from) });

  const out: RichBlock[] = [];
  segments.forEach((seg, i) => {
    if (seg.pre) {
      out.push({ k: 'pre', text: decodeEntities(seg.text.replace(/^\n/, '').replace(/\n$/, '')) });
      return;
    }
    // The line break that separates a code block from the text around it is not a line of its own.
    let t = seg.text;
    if (segments[i - 1]?.pre === true) t = t.replace(/^\n/, '');
    if (segments[i + 1]?.pre === true) t = t.replace(/\n$/, '');
    if (t !== '') out.push(...lineBlocks(t, ctx));
  });
  return out;
}

/** plain_text: no formatting; with `emoji` (Slack's default) known shortcodes become their characters. */
export function parsePlain(text: string, emoji = true): RichText {
  const inlines: Inline[] = [];
  text.split('\n').forEach((line, n) => {
    if (n > 0) inlines.push({ k: 'br' });
    if (line !== '') inlines.push({ k: 'text', text: plainLine(line, emoji) });
  });
  return [{ k: 'p', inlines }];
}

/** A plain_text line as shown: entities decoded, shortcodes (when `emoji`) replaced. */
export function plainLine(text: string, emoji = true): string {
  const decoded = decodeEntities(text);
  return emoji ? emojify(decoded) : decoded;
}

/** Runs of `>` lines are one quote; other runs of lines one paragraph. */
function lineBlocks(text: string, ctx: MrkdwnContext): RichBlock[] {
  const out: RichBlock[] = [];
  let kind: 'p' | 'quote' | undefined;
  let inlines: Inline[] = [];
  const flush = () => {
    if (kind !== undefined) out.push({ k: kind, inlines });
    inlines = [];
  };
  for (const line of text.split('\n')) {
    const quote = /^>\s?/.exec(line);
    const lineKind = quote ? 'quote' : 'p';
    if (lineKind !== kind) {
      flush();
      kind = lineKind;
    } else {
      inlines.push({ k: 'br' });
    }
    inlines.push(...parseInline(quote ? line.slice(quote[0].length) : line, ctx));
  }
  flush();
  return out;
}

const EMPHASIS: Readonly<Record<string, 'b' | 'i' | 's'>> = { '*': 'b', _: 'i', '~': 's' };
/** Only names Slack knows become emoji (emoji.ts), so `:+1:` and `:100:` are, and a stray `:30:` is not. */
const EMOJI = /^:([a-z0-9_+'-]+):/;

function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && /[\p{L}\p{N}]/u.test(ch);
}

function isSpace(ch: string | undefined): boolean {
  return ch !== undefined && /\s/.test(ch);
}

/** The end of a `<…>` or `` `…` `` starting at i (exclusive), or -1 when none starts there. */
function opaqueEnd(s: string, i: number): number {
  const c = s[i];
  if (c === '<') {
    const end = s.indexOf('>', i + 1);
    return end === -1 ? -1 : end + 1;
  }
  if (c === '`') {
    const end = s.indexOf('`', i + 1);
    return end > i + 1 ? end + 1 : -1;
  }
  return -1;
}

function closingMarker(s: string, open: number): number {
  const marker = s[open];
  for (let j = open + 1; j < s.length; j++) {
    const skip = opaqueEnd(s, j);
    if (skip !== -1) {
      j = skip - 1;
      continue;
    }
    if (s[j] === marker && j > open + 1 && !isSpace(s[j - 1]) && !isWordChar(s[j + 1])) return j;
  }
  return -1;
}

export function parseInline(s: string, ctx: MrkdwnContext): Inline[] {
  const out: Inline[] = [];
  let buf = '';
  const flush = () => {
    if (buf !== '') out.push({ k: 'text', text: decodeEntities(buf) });
    buf = '';
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i] as string;
    const end = opaqueEnd(s, i);
    if (end !== -1) {
      flush();
      const inner = s.slice(i + 1, end - 1);
      out.push(c === '<' ? special(inner, ctx) : { k: 'code', text: decodeEntities(inner) });
      i = end;
      continue;
    }
    const kind = EMPHASIS[c];
    if (kind !== undefined && !isWordChar(s[i - 1]) && s[i + 1] !== undefined && !isSpace(s[i + 1])) {
      const close = closingMarker(s, i);
      if (close !== -1) {
        flush();
        out.push({ k: kind, children: parseInline(s.slice(i + 1, close), ctx) });
        i = close + 1;
        continue;
      }
    }
    if (c === ':' && !isWordChar(s[i - 1])) {
      const emoji = EMOJI.exec(s.slice(i));
      if (emoji) {
        const name = emoji[1] as string;
        const char = emojiChar(name);
        // A name Slack does not know is shown as the text that was sent, colons and all.
        if (char === undefined) buf += emoji[0];
        else {
          flush();
          out.push({ k: 'emoji', name, char });
        }
        i += emoji[0].length;
        continue;
      }
    }
    buf += c;
    i += 1;
  }
  flush();
  return out;
}

/** What is inside `<…>`: a mention, a date, or a link. */
function special(inner: string, ctx: MrkdwnContext): Inline {
  const bar = inner.indexOf('|');
  const head = bar === -1 ? inner : inner.slice(0, bar);
  const label = bar === -1 ? undefined : decodeEntities(inner.slice(bar + 1));
  if (head.startsWith('@')) {
    const id = head.slice(1);
    return { k: 'mention', kind: 'user', label: `@${ctx.name('user', id) ?? label ?? id}` };
  }
  if (head.startsWith('#')) {
    const id = head.slice(1);
    return { k: 'mention', kind: 'channel', label: `#${ctx.name('channel', id) ?? label ?? id}` };
  }
  if (head.startsWith('!subteam^')) {
    const id = head.slice('!subteam^'.length);
    const name = ctx.name('group', id) ?? label?.replace(/^@/, '') ?? id;
    return { k: 'mention', kind: 'group', label: `@${name}` };
  }
  if (head === '!here' || head === '!channel' || head === '!everyone') {
    return { k: 'mention', kind: 'special', label: `@${head.slice(1)}` };
  }
  if (head.startsWith('!date^')) return dateInline(head.slice('!date^'.length), label ?? '', ctx);
  if (/^(https?:|mailto:)/i.test(head)) {
    return {
      k: 'link',
      url: decodeEntities(head),
      children: [{ k: 'text', text: label ?? decodeEntities(head) }],
    };
  }
  // Anything else Slack would not turn into a link: shown as the text it stands for.
  return { k: 'text', text: label ?? decodeEntities(head) };
}

function dateInline(spec: string, fallback: string, ctx: MrkdwnContext): Inline {
  const [epoch = '', format = ''] = spec.split('^');
  const seconds = /^\d{1,12}$/.test(epoch) ? Number(epoch) : Number.NaN;
  if (Number.isNaN(seconds) || format === '') return { k: 'date', text: fallback, fallback };
  return { k: 'date', text: formatSlackDate(seconds, format, ctx), fallback };
}

const ORDINAL = (n: number) => {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${['th', 'st', 'nd', 'rd'][n % 10] ?? 'th'}`;
};

/** Slack's date tokens ({date_num}, {date}, {date_short}, {date_long}, their _pretty forms, {time}, {time_secs}, {ago}). */
export function formatSlackDate(seconds: number, format: string, ctx: MrkdwnContext): string {
  const at = new Date(seconds * 1000);
  const zone = ctx.timeZone !== undefined ? { timeZone: ctx.timeZone } : {};
  const named = new Intl.DateTimeFormat('en-US', {
    ...zone,
    year: 'numeric',
    month: 'long',
    day: 'numeric',
    weekday: 'long',
    hour: 'numeric',
    minute: '2-digit',
    second: '2-digit',
    hour12: true,
  });
  const monthNum = new Intl.DateTimeFormat('en-US', { ...zone, month: '2-digit' });
  const parts = (d: Date): Record<string, string> => {
    const p: Record<string, string> = {};
    for (const part of named.formatToParts(d)) p[part.type] = part.value;
    p.monthNum = monthNum.format(d);
    return p;
  };
  const p = parts(at);
  const day = Number(p.day);
  const num = `${p.year}-${p.monthNum}-${String(day).padStart(2, '0')}`;
  const shortMonth = (p.month ?? '').slice(0, 3);
  const dates = {
    date_num: num,
    date: `${p.month} ${ORDINAL(day)}, ${p.year}`,
    date_short: `${shortMonth} ${day}, ${p.year}`,
    date_long: `${p.weekday}, ${p.month} ${ORDINAL(day)}, ${p.year}`,
  };
  const dayNum = (d: Date) => {
    const q = parts(d);
    return `${q.year}-${q.monthNum}-${String(Number(q.day)).padStart(2, '0')}`;
  };
  const relative = new Map([
    [dayNum(ctx.now), 'today'],
    [dayNum(new Date(ctx.now.getTime() - 86_400_000)), 'yesterday'],
    [dayNum(new Date(ctx.now.getTime() + 86_400_000)), 'tomorrow'],
  ]);
  const pretty = (plain: string) => {
    const word = relative.get(num);
    return word ?? plain;
  };
  const tokens: Record<string, string> = {
    ...dates,
    date_pretty: pretty(dates.date),
    date_short_pretty: pretty(dates.date_short),
    date_long_pretty: pretty(dates.date_long),
    time: `${p.hour}:${p.minute} ${p.dayPeriod ?? ''}`.trim(),
    time_secs: `${p.hour}:${p.minute}:${p.second} ${p.dayPeriod ?? ''}`.trim(),
    ago: ago(ctx.now.getTime() - at.getTime()),
  };
  return format.replace(/\{([a-z_]+)\}/g, (whole, name: string) => tokens[name] ?? whole);
}

function ago(ms: number): string {
  const future = ms < 0;
  const s = Math.abs(ms) / 1000;
  const [n, unit] =
    s < 60
      ? [0, '']
      : s < 3600
        ? [Math.floor(s / 60), 'minute']
        : s < 86_400
          ? [Math.floor(s / 3600), 'hour']
          : [Math.floor(s / 86_400), 'day'];
  if (n === 0) return 'just now';
  const amount = `${n} ${unit}${n === 1 ? '' : 's'}`;
  return future ? `in ${amount}` : `${amount} ago`;
}

/** The rich text as a terminal shows it (the headless demo's transcript); emoji as the shortcodes sent. */
export function richToText(rich: RichText): string {
  return rich
    .map((b) => {
      if (b.k === 'pre') return b.text.replace(/^/gm, '    ');
      const text = inlinesToText(b.inlines);
      return b.k === 'quote' ? text.replace(/^/gm, '> ') : text;
    })
    .join('\n');
}

function inlinesToText(inlines: readonly Inline[]): string {
  return inlines.map(inlineToText).join('');
}

function inlineToText(n: Inline): string {
  switch (n.k) {
    case 'text':
      return n.text;
    case 'b':
    case 'i':
    case 's':
      return inlinesToText(n.children);
    case 'code':
      return `\`${n.text}\``;
    case 'link': {
      const label = inlinesToText(n.children);
      return label === n.url ? n.url : `${label} (${n.url})`;
    }
    case 'mention':
      return n.label;
    case 'date':
      return n.text;
    case 'emoji':
      return `:${n.name}:`;
    case 'br':
      return '\n';
  }
}
