import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { textObject } from '../dev/playground/blocks-view.js';
import { emojiChar } from '../dev/playground/emoji.js';
import { formatSlackDate, type MrkdwnContext, parseMrkdwn, richToText } from '../dev/playground/mrkdwn.js';
import { escapeSlack } from '../src/slack/blocks.js';

const NAMES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  user: { U0ARJUN: 'arjun' },
  group: { S0APPR: 'capi-approvers' },
};
const ctx: MrkdwnContext = {
  name: (kind, id) => NAMES[kind]?.[id],
  now: new Date('2024-05-01T12:00:00Z'),
  timeZone: 'UTC',
};
const parse = (text: string) => parseMrkdwn(text, ctx);

describe('playground mrkdwn', () => {
  it('should turn *bold*, _italics_, ~strike~ and `code` into their own nodes, nested where Slack nests them', () => {
    expect(parse('*Status* _done_ ~old~ `ls -l`')).toEqual([
      {
        k: 'p',
        inlines: [
          { k: 'b', children: [{ k: 'text', text: 'Status' }] },
          { k: 'text', text: ' ' },
          { k: 'i', children: [{ k: 'text', text: 'done' }] },
          { k: 'text', text: ' ' },
          { k: 's', children: [{ k: 'text', text: 'old' }] },
          { k: 'text', text: ' ' },
          { k: 'code', text: 'ls -l' },
        ],
      },
    ]);
    expect(parse('*bold _and italic_*')).toEqual([
      {
        k: 'p',
        inlines: [
          {
            k: 'b',
            children: [
              { k: 'text', text: 'bold ' },
              { k: 'i', children: [{ k: 'text', text: 'and italic' }] },
            ],
          },
        ],
      },
    ]);
  });

  it('should leave markers inside words, next to blanks and inside code alone', () => {
    expect(richToText(parse('capi_project_id 2*3*4 * not bold * `*not bold*`'))).toBe(
      'capi_project_id 2*3*4 * not bold * `*not bold*`',
    );
    expect(parse('`*x*`')).toEqual([{ k: 'p', inlines: [{ k: 'code', text: '*x*' }] }]);
  });

  it('should make a code block of ``` fences, with its text exactly as written and no formatting inside', () => {
    expect(parse('*Will run:*\n```\nopenstack server delete *x* <@U0ARJUN>\n  indented\n```\nafter')).toEqual(
      [
        { k: 'p', inlines: [{ k: 'b', children: [{ k: 'text', text: 'Will run:' }] }] },
        { k: 'pre', text: 'openstack server delete *x* <@U0ARJUN>\n  indented' },
        { k: 'p', inlines: [{ k: 'text', text: 'after' }] },
      ],
    );
  });

  it('should make a quote of lines that start with > but not of an escaped &gt;', () => {
    expect(parse('> quoted\n> twice\n&gt; not a quote')).toEqual([
      { k: 'quote', inlines: [{ k: 'text', text: 'quoted' }, { k: 'br' }, { k: 'text', text: 'twice' }] },
      { k: 'p', inlines: [{ k: 'text', text: '> not a quote' }] },
    ]);
  });

  it('should show links, user, group and channel mentions and @here with the names the playground knows', () => {
    const [p] = parse(
      '<https://example.org/a?b=1&amp;c=2|the docs> <@U0ARJUN> <@U0NOBODY> <!subteam^S0APPR> <#C0X|ops> <!here>',
    );
    expect(p).toEqual({
      k: 'p',
      inlines: [
        { k: 'link', url: 'https://example.org/a?b=1&c=2', children: [{ k: 'text', text: 'the docs' }] },
        { k: 'text', text: ' ' },
        { k: 'mention', kind: 'user', label: '@arjun' },
        { k: 'text', text: ' ' },
        { k: 'mention', kind: 'user', label: '@U0NOBODY' },
        { k: 'text', text: ' ' },
        { k: 'mention', kind: 'group', label: '@capi-approvers' },
        { k: 'text', text: ' ' },
        { k: 'mention', kind: 'channel', label: '#ops' },
        { k: 'text', text: ' ' },
        { k: 'mention', kind: 'special', label: '@here' },
      ],
    });
  });

  it('should never make a link of a javascript: or data: URL, showing its label as text', () => {
    expect(parse('<javascript:alert(1)|click me> <data:text/html,x>')).toEqual([
      {
        k: 'p',
        inlines: [
          { k: 'text', text: 'click me' },
          { k: 'text', text: ' ' },
          { k: 'text', text: 'data:text/html,x' },
        ],
      },
    ]);
  });

  it('should keep text the bot escaped as text: an escaped mention, link or date is not one', () => {
    const hostile =
      '<@U0ARJUN> <!channel> <https://evil.example|x> <!date^0^{date}|y> <img src=x onerror=alert(1)>';
    expect(parse(escapeSlack(hostile))).toEqual([{ k: 'p', inlines: [{ k: 'text', text: hostile }] }]);
  });

  it('should format <!date^…> in the reader zone with Slack tokens, and keep the fallback', () => {
    const epoch = Date.parse('2024-05-01T10:05:09Z') / 1000;
    expect(parse(`<!date^${epoch}^{date_short_pretty} {time}|2024-05-01 10:05 UTC>`)).toEqual([
      { k: 'p', inlines: [{ k: 'date', text: 'today 10:05 AM', fallback: '2024-05-01 10:05 UTC' }] },
    ]);
    const tokens = '{date_num} | {date} | {date_short} | {date_long} | {time_secs} | {ago}';
    expect(formatSlackDate(epoch - 86_400, tokens, ctx)).toBe(
      '2024-04-30 | April 30th, 2024 | Apr 30, 2024 | Tuesday, April 30th, 2024 | 10:05:09 AM | 1 day ago',
    );
    expect(formatSlackDate(epoch - 86_400, '{date_pretty}', ctx)).toBe('yesterday');
    expect(parse('<!date^notanumber^{date}|the fallback>')).toEqual([
      { k: 'p', inlines: [{ k: 'date', text: 'the fallback', fallback: 'the fallback' }] },
    ]);
  });

  it("should show an emoji shortcode as Slack's character, keep an unknown one as text, and not mistake clock times or host:port for them", () => {
    expect(parse(':white_check_mark: at 10:30:00 on host:port:x :not_an_emoji: :warning:')).toEqual([
      {
        k: 'p',
        inlines: [
          { k: 'emoji', name: 'white_check_mark', char: '\u2705' },
          { k: 'text', text: ' at 10:30:00 on host:port:x :not_an_emoji: ' },
          // Slack shows the emoji presentation (with VS16) where the data says so.
          { k: 'emoji', name: 'warning', char: '\u26A0\uFE0F' },
        ],
      },
    ]);
    // Slack's aliases and skin tones: `:+1::skin-tone-3:` is a thumbs up with its modifier.
    expect(richToText(parse(':+1::skin-tone-3: :thumbsup:'))).toBe(':+1::skin-tone-3: :thumbsup:');
    expect(parse(':+1::skin-tone-3:')).toEqual([
      {
        k: 'p',
        inlines: [
          { k: 'emoji', name: '+1', char: '\u{1F44D}' },
          { k: 'emoji', name: 'skin-tone-3', char: '\u{1F3FC}' },
        ],
      },
    ]);
    // Nothing inside code becomes an emoji.
    expect(parse('`:warning:`')).toEqual([{ k: 'p', inlines: [{ k: 'code', text: ':warning:' }] }]);
  });

  it('should show emoji in plain_text as Slack does, unless the text object says emoji: false', () => {
    const plain = (emoji?: boolean) =>
      textObject(
        {
          type: 'plain_text',
          text: 'Doctor :stethoscope: :nope: 10:30:',
          ...(emoji === undefined ? {} : { emoji }),
        },
        ctx,
      );
    expect(plain(true)).toEqual([
      { k: 'p', inlines: [{ k: 'text', text: 'Doctor \u{1FA7A} :nope: 10:30:' }] },
    ]);
    expect(plain()).toEqual(plain(true));
    expect(plain(false)).toEqual([
      { k: 'p', inlines: [{ k: 'text', text: 'Doctor :stethoscope: :nope: 10:30:' }] },
    ]);
  });

  it('should know every emoji shortcode the product writes in its messages', () => {
    const src = new URL('../src/', import.meta.url).pathname;
    const used = new Set<string>();
    for (const file of readdirSync(src, { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.ts')) continue;
      // A shortcode in a message, not a Redis key part like `${prefix}:run:` or `p:lock:<target>`.
      const text = readFileSync(join(src, file), 'utf8');
      for (const m of text.matchAll(/(?<![\p{L}\p{N}:}$]):([a-z0-9_+-]+):(?![\p{L}\p{N}{$])/gu)) {
        used.add(m[1] as string);
      }
    }
    // The checklist's and the approval's own marks are among them.
    expect([...used]).toEqual(
      expect.arrayContaining(['white_check_mark', 'grey_question', 'stethoscope', 'warning']),
    );
    const unknown = [...used].filter((name) => emojiChar(name) === undefined);
    expect(unknown, 'shortcodes Slack would show as text').toEqual([]);
  });
});
