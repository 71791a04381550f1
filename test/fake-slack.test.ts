import {
  ErrorCode,
  LogLevel,
  WebAPIHTTPError,
  WebAPIRateLimitedError,
  WebClient,
  type WebClientOptions,
} from '@slack/web-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FAKE_BOT, type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';

const TOKEN = 'test-bot-token';
const OPS = 'C0OPS0001';
const OTHER = 'C0OTHER01';

let fake: FakeSlack;
let now: number;

beforeEach(async () => {
  now = 1_700_000_000_000;
  fake = await startFakeSlack({
    token: TOKEN,
    channels: [OPS, OTHER],
    users: { U0ALICE01: { groups: ['S0ONCALL1'] }, U0BOB0001: { groups: ['S0ONCALL1', 'S0LEADS01'] } },
    clock: () => now,
  });
});

afterEach(async () => {
  await fake.close();
});

function client(opts: WebClientOptions = {}, token = TOKEN): WebClient {
  return new WebClient(token, {
    slackApiUrl: fake.url,
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    logLevel: LogLevel.ERROR,
    ...opts,
  });
}

/** The `{ ok: false }` answer a WebClient call was refused with. */
function refusedWith(error: string, errors?: string[]) {
  return {
    code: ErrorCode.PlatformError,
    data: { ok: false, error, ...(errors !== undefined ? { errors } : {}) },
  };
}

const section = (text: string) => ({ type: 'section', text: { type: 'mrkdwn', text } });
const button = (over: Record<string, unknown> = {}) => ({
  type: 'button',
  action_id: 'a',
  text: { type: 'plain_text', text: 'Go' },
  value: 'v',
  ...over,
});

describe('fake Slack: messages and threads', () => {
  it('should store a root message and a reply with increasing unique ts when thread_ts names the root', async () => {
    const slack = client();
    const root = await slack.chat.postMessage({ channel: OPS, text: 'root', blocks: [section('*root*')] });
    const reply = await slack.chat.postMessage({ channel: OPS, text: 'reply', thread_ts: root.ts as string });

    expect(root.ts).toBe('1700000000.000100');
    expect(reply.ts).toBe('1700000000.000200');
    expect(reply.channel).toBe(OPS);
    expect(fake.messages(OPS)).toEqual([
      { ts: '1700000000.000100', text: 'root', blocks: [section('*root*')], updates: 0 },
      { ts: '1700000000.000200', thread_ts: '1700000000.000100', text: 'reply', blocks: [], updates: 0 },
    ]);
    expect(fake.messages(OTHER)).toEqual([]);
  });

  it('should refuse with thread_not_found when thread_ts names a reply, another channel or nothing', async () => {
    const slack = client();
    const root = await slack.chat.postMessage({ channel: OPS, text: 'root' });
    const reply = await slack.chat.postMessage({ channel: OPS, text: 'r', thread_ts: root.ts as string });

    for (const [channel, ts] of [
      [OPS, reply.ts as string],
      [OTHER, root.ts as string],
      [OPS, '1700000099.000100'],
    ] as const) {
      await expect(slack.chat.postMessage({ channel, text: 'x', thread_ts: ts })).rejects.toMatchObject(
        refusedWith('thread_not_found'),
      );
    }
    expect(fake.messages(OPS)).toHaveLength(2);
    expect(fake.messages(OTHER)).toHaveLength(0);
  });

  it('should refuse with channel_not_found or no_text when the channel is unknown or the message empty', async () => {
    const slack = client();
    await expect(slack.chat.postMessage({ channel: 'C0NOPE', text: 'x' })).rejects.toMatchObject(
      refusedWith('channel_not_found'),
    );
    await expect(slack.chat.postMessage({ channel: OPS, text: '' })).rejects.toMatchObject(
      refusedWith('no_text'),
    );
    await expect(slack.chat.postMessage({ channel: OPS, text: '', blocks: [] })).rejects.toMatchObject(
      refusedWith('no_text'),
    );
    expect(fake.calls.map((c) => [c.method, c.status, (c.response as { error?: string }).error])).toEqual([
      ['chat.postMessage', 200, 'channel_not_found'],
      ['chat.postMessage', 200, 'no_text'],
      ['chat.postMessage', 200, 'no_text'],
    ]);
  });

  it('should refuse with invalid_auth or not_authed when the token is wrong or missing', async () => {
    await expect(client({}, 'wrong-token').auth.test()).rejects.toMatchObject(refusedWith('invalid_auth'));
    await expect(client({}, '').auth.test()).rejects.toMatchObject(refusedWith('not_authed'));
    await expect(client().auth.test()).resolves.toMatchObject({
      ok: true,
      user_id: FAKE_BOT.userId,
      bot_id: FAKE_BOT.botId,
      team_id: FAKE_BOT.teamId,
    });
  });

  it('should update text and blocks and count the edits when chat.update names an existing message', async () => {
    const slack = client();
    const root = await slack.chat.postMessage({ channel: OPS, text: 'v1', blocks: [section('one')] });
    await slack.chat.update({ channel: OPS, ts: root.ts as string, text: 'v2', blocks: [section('two')] });
    await slack.chat.update({ channel: OPS, ts: root.ts as string, text: 'v3' });

    expect(fake.messages(OPS)).toEqual([{ ts: root.ts, text: 'v3', blocks: [section('two')], updates: 2 }]);
  });

  it('should refuse with message_not_found and change nothing when chat.update names an unknown ts', async () => {
    const slack = client();
    const root = await slack.chat.postMessage({ channel: OPS, text: 'v1' });
    await expect(
      slack.chat.update({ channel: OPS, ts: '1700000099.000100', text: 'x' }),
    ).rejects.toMatchObject(refusedWith('message_not_found'));
    await expect(
      slack.chat.update({ channel: OTHER, ts: root.ts as string, text: 'x' }),
    ).rejects.toMatchObject(refusedWith('message_not_found'));
    expect(fake.messages(OPS)).toEqual([{ ts: root.ts, text: 'v1', blocks: [], updates: 0 }]);
  });

  it('should keep an ephemeral message apart from the channel when chat.postEphemeral names a known user', async () => {
    const slack = client();
    await slack.chat.postEphemeral({ channel: OPS, user: 'U0ALICE01', text: 'only you' });
    await expect(
      slack.chat.postEphemeral({ channel: OPS, user: 'U0NOBODY', text: 'x' }),
    ).rejects.toMatchObject(refusedWith('user_not_in_channel'));
    expect(fake.ephemerals(OPS)).toEqual([
      { ts: expect.any(String), via: 'chat.postEphemeral', user: 'U0ALICE01', text: 'only you', blocks: [] },
    ]);
    expect(fake.messages(OPS)).toEqual([]);
  });
});

describe("fake Slack: a command's response_url", () => {
  const respond = (url: string, body: unknown) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('should show what is posted to it to the person who typed the command, and record each post', async () => {
    const url = fake.issueResponseUrl('U0ALICE01', OPS);
    expect(url.startsWith(fake.url.replace(/\/api\/$/, '/commands/'))).toBe(true);
    const res = await respond(url, { response_type: 'ephemeral', text: 'only you' });
    expect({ status: res.status, body: await res.json() }).toEqual({ status: 200, body: { ok: true } });
    expect(await (await respond(url, { response_type: 'in_channel', text: 'everyone' })).json()).toEqual({
      ok: true,
    });
    expect(fake.ephemerals(OPS)).toEqual([
      { ts: expect.any(String), via: 'response_url', user: 'U0ALICE01', text: 'only you', blocks: [] },
    ]);
    expect(fake.messages(OPS).map((m) => m.text)).toEqual(['everyone']);
    expect(fake.calls.map((c) => [c.method, c.args.text, c.args.user, c.status])).toEqual([
      ['response_url', 'only you', 'U0ALICE01', 200],
      ['response_url', 'everyone', 'U0ALICE01', 200],
    ]);
  });

  it('should take five messages within 30 minutes, then refuse (used_url, expired_url), as Slack does', async () => {
    const url = fake.issueResponseUrl('U0ALICE01', OPS);
    for (let i = 1; i <= 5; i++) expect((await respond(url, { text: `reply ${i}` })).status).toBe(200);
    const sixth = await respond(url, { text: 'reply 6' });
    expect({ status: sixth.status, body: await sixth.json() }).toMatchObject({
      status: 404,
      body: { ok: false, error: 'used_url' },
    });
    const later = fake.issueResponseUrl('U0ALICE01', OPS);
    now += 30 * 60_000 + 1;
    expect(await (await respond(later, { text: 'too late' })).json()).toEqual({
      ok: false,
      error: 'expired_url',
    });
    expect(await (await respond(`${later}x`, { text: 'made up' })).json()).toEqual({
      ok: false,
      error: 'invalid_url',
    });
    expect(fake.ephemerals(OPS).map((e) => e.text)).toEqual([1, 2, 3, 4, 5].map((i) => `reply ${i}`));
  });

  it('should refuse what Slack would refuse: no text, broken blocks, replacing a message a command has not', async () => {
    const url = fake.issueResponseUrl('U0ALICE01', OPS);
    const answer = async (body: unknown) =>
      (await (await respond(url, body)).json()) as { ok: boolean; error?: string };
    expect((await answer({})).error).toBe('no_text');
    expect((await answer({ text: 'x', blocks: [{ type: 'nope' }] })).ok).toBe(false);
    expect((await answer({ text: 'x', replace_original: true })).error).toBe('no_original_message');
    expect(fake.ephemerals(OPS)).toEqual([]);
  });
});

describe('fake Slack: channel members', () => {
  it('should page conversations.members with a cursor as Slack does, and refuse an unknown channel or a bad limit', async () => {
    const members = Array.from({ length: 5 }, (_, i) => `U0MEMBER${i}`);
    const paged = await startFakeSlack({ token: TOKEN, channels: [OPS, OTHER], members: { [OPS]: members } });
    try {
      const slack = new WebClient(TOKEN, { slackApiUrl: paged.url, retryConfig: { retries: 0 } });
      const first = await slack.conversations.members({ channel: OPS, limit: 2 });
      expect(first.members).toEqual(members.slice(0, 2));
      const cursor = first.response_metadata?.next_cursor ?? '';
      expect(cursor).not.toBe('');
      const second = await slack.conversations.members({ channel: OPS, limit: 2, cursor });
      expect(second.members).toEqual(members.slice(2, 4));
      const last = await slack.conversations.members({
        channel: OPS,
        limit: 2,
        cursor: second.response_metadata?.next_cursor ?? '',
      });
      expect(last).toMatchObject({ members: members.slice(4), response_metadata: { next_cursor: '' } });
      // A channel the option does not name has everyone known in it (none here).
      expect((await slack.conversations.members({ channel: OTHER })).members).toEqual([]);
      await expect(slack.conversations.members({ channel: 'C0NOWHERE' })).rejects.toMatchObject(
        refusedWith('channel_not_found'),
      );
      await expect(slack.conversations.members({ channel: OPS, limit: 1001 })).rejects.toMatchObject(
        refusedWith('invalid_limit'),
      );
    } finally {
      await paged.close();
    }
  });
});

describe('fake Slack: the bot in its channels, and its token scopes', () => {
  it('should say which channels the bot is in and refuse its posts elsewhere, as Slack does', async () => {
    const outside = await startFakeSlack({ token: TOKEN, channels: [OPS, OTHER], botChannels: [OPS] });
    try {
      const slack = new WebClient(TOKEN, { slackApiUrl: outside.url, retryConfig: { retries: 0 } });
      expect((await slack.conversations.info({ channel: OPS })).channel).toMatchObject({
        id: OPS,
        is_member: true,
      });
      expect((await slack.conversations.info({ channel: OTHER })).channel).toMatchObject({
        is_member: false,
      });
      await expect(slack.conversations.info({ channel: 'C0NOWHERE' })).rejects.toMatchObject(
        refusedWith('channel_not_found'),
      );
      await expect(slack.chat.postMessage({ channel: OTHER, text: 'hi' })).rejects.toMatchObject(
        refusedWith('not_in_channel'),
      );
      expect((await slack.chat.postMessage({ channel: OPS, text: 'hi' })).ok).toBe(true);
    } finally {
      await outside.close();
    }
  });

  it("should name the token's scopes on every answer and refuse conversations.* without channels:read", async () => {
    const narrow = await startFakeSlack({
      token: TOKEN,
      channels: [OPS],
      scopes: ['commands', 'chat:write'],
    });
    try {
      const slack = new WebClient(TOKEN, { slackApiUrl: narrow.url, retryConfig: { retries: 0 } });
      expect((await slack.auth.test()).response_metadata?.scopes).toEqual(['commands', 'chat:write']);
      await expect(slack.conversations.info({ channel: OPS })).rejects.toMatchObject(
        refusedWith('missing_scope'),
      );
      // The default is what the manifest lists.
      expect((await client().auth.test()).response_metadata?.scopes).toContain('channels:read');
    } finally {
      await narrow.close();
    }
  });
});

describe('fake Slack: Block Kit limits', () => {
  const cases: { name: string; blocks: unknown[]; errors: string[] }[] = [
    {
      name: '51 blocks',
      blocks: Array.from({ length: 51 }, () => ({ type: 'divider' })),
      errors: ['/blocks: must hold at most 50 blocks (got 51)'],
    },
    {
      name: 'a section text of 3001 characters',
      blocks: [section('x'.repeat(3001))],
      errors: ['/blocks/0/text/text: must be at most 3000 characters (got 3001)'],
    },
    {
      name: 'an empty section text',
      blocks: [section('')],
      errors: ['/blocks/0/text/text: must not be empty'],
    },
    {
      name: '11 section fields',
      blocks: [
        { type: 'section', fields: Array.from({ length: 11 }, () => ({ type: 'mrkdwn', text: 'f' })) },
      ],
      errors: ['/blocks/0/fields: must hold at most 10 items (got 11)'],
    },
    {
      name: 'a section field of 2001 characters',
      blocks: [{ type: 'section', fields: [{ type: 'mrkdwn', text: 'f'.repeat(2001) }] }],
      errors: ['/blocks/0/fields/0/text: must be at most 2000 characters (got 2001)'],
    },
    {
      name: 'a header of 151 characters',
      blocks: [{ type: 'header', text: { type: 'plain_text', text: 'h'.repeat(151) } }],
      errors: ['/blocks/0/text/text: must be at most 150 characters (got 151)'],
    },
    {
      name: 'a mrkdwn header',
      blocks: [{ type: 'header', text: { type: 'mrkdwn', text: '*h*' } }],
      errors: ['/blocks/0/text/type: must be "plain_text" (got "mrkdwn")'],
    },
    {
      name: '11 context elements',
      blocks: [
        { type: 'context', elements: Array.from({ length: 11 }, () => ({ type: 'mrkdwn', text: 'c' })) },
      ],
      errors: ['/blocks/0/elements: must hold at most 10 items (got 11)'],
    },
    {
      name: '26 action elements',
      blocks: [{ type: 'actions', elements: Array.from({ length: 26 }, () => button()) }],
      errors: ['/blocks/0/elements: must hold at most 25 items (got 26)'],
    },
    {
      name: 'a button text of 76 characters',
      blocks: [
        { type: 'actions', elements: [button({ text: { type: 'plain_text', text: 'b'.repeat(76) } })] },
      ],
      errors: ['/blocks/0/elements/0/text/text: must be at most 75 characters (got 76)'],
    },
    {
      name: 'a button value of 2001 characters',
      blocks: [{ type: 'actions', elements: [button({ value: 'v'.repeat(2001) })] }],
      errors: ['/blocks/0/elements/0/value: must be at most 2000 characters (got 2001)'],
    },
    {
      name: 'an action_id of 256 characters',
      blocks: [{ type: 'actions', elements: [button({ action_id: 'a'.repeat(256) })] }],
      errors: ['/blocks/0/elements/0/action_id: must be 1-255 characters (got 256)'],
    },
    {
      name: 'a block_id of 256 characters',
      blocks: [{ type: 'divider', block_id: 'b'.repeat(256) }],
      errors: ['/blocks/0/block_id: must be 1-255 characters (got 256)'],
    },
    {
      name: 'a button url of 3001 characters',
      blocks: [{ type: 'actions', elements: [button({ url: `https://x/${'u'.repeat(2991)}` })] }],
      errors: ['/blocks/0/elements/0/url: must be at most 3000 characters (got 3001)'],
    },
    {
      name: 'a confirm dialog whose title is 101 characters and whose confirm label is mrkdwn',
      blocks: [
        {
          type: 'actions',
          elements: [
            button({
              confirm: {
                title: { type: 'plain_text', text: 't'.repeat(101) },
                text: { type: 'mrkdwn', text: 'sure?' },
                confirm: { type: 'mrkdwn', text: '*yes*' },
                deny: { type: 'plain_text', text: 'no' },
              },
            }),
          ],
        },
      ],
      errors: [
        '/blocks/0/elements/0/confirm/title/text: must be at most 100 characters (got 101)',
        '/blocks/0/elements/0/confirm/confirm/type: must be "plain_text" (got "mrkdwn")',
      ],
    },
    {
      name: 'a confirm dialog with a 301-character text, no deny label and a green style',
      blocks: [
        {
          type: 'actions',
          elements: [
            button({
              confirm: {
                title: { type: 'plain_text', text: 'Sure?' },
                text: { type: 'plain_text', text: 'x'.repeat(301) },
                confirm: { type: 'plain_text', text: 'Yes' },
                style: 'green',
              },
            }),
          ],
        },
      ],
      errors: [
        '/blocks/0/elements/0/confirm/text/text: must be at most 300 characters (got 301)',
        '/blocks/0/elements/0/confirm/deny: must be a text object with type and text',
        '/blocks/0/elements/0/confirm/style: must be "primary" or "danger" (got "green")',
      ],
    },
    {
      name: 'an unknown block type',
      blocks: [{ type: 'table', rows: [] }],
      errors: ['/blocks/0/type: unknown block type "table"'],
    },
    {
      name: 'a text object without a type',
      blocks: [{ type: 'section', text: { text: 'no type' } }],
      errors: ['/blocks/0/text/type: must be "mrkdwn" or "plain_text" (got undefined)'],
    },
    {
      name: 'a text object without text',
      blocks: [{ type: 'context', elements: [{ type: 'mrkdwn' }] }],
      errors: ['/blocks/0/elements/0/text: must be a string'],
    },
  ];

  for (const c of cases) {
    it(`should refuse with invalid_blocks naming what broke when a message has ${c.name}`, async () => {
      await expect(
        client().chat.postMessage({ channel: OPS, text: 'x', blocks: c.blocks as never }),
      ).rejects.toMatchObject(refusedWith('invalid_blocks', c.errors));
      expect(fake.messages(OPS)).toEqual([]);
    });
  }

  it('should accept every limit exactly when a message sits on each boundary', async () => {
    const blocks = [
      { type: 'header', text: { type: 'plain_text', text: 'h'.repeat(150) } },
      section('s'.repeat(3000)),
      {
        type: 'section',
        fields: Array.from({ length: 10 }, () => ({ type: 'mrkdwn', text: 'f'.repeat(200) })),
      },
      { type: 'context', elements: Array.from({ length: 10 }, () => ({ type: 'mrkdwn', text: 'c' })) },
      {
        type: 'actions',
        block_id: 'b'.repeat(255),
        elements: [
          button({
            action_id: 'a'.repeat(255),
            value: 'v'.repeat(2000),
            text: { type: 'plain_text', text: 't'.repeat(75) },
          }),
          ...Array.from({ length: 24 }, (_, i) => button({ action_id: `a${i}` })),
        ],
      },
      ...Array.from({ length: 45 }, () => ({ type: 'divider' })),
    ];
    expect(blocks).toHaveLength(50);
    await expect(
      client().chat.postMessage({ channel: OPS, text: 't'.repeat(40_000), blocks: blocks as never }),
    ).resolves.toMatchObject({
      ok: true,
    });
  });

  it('should refuse with msg_too_long when the message text exceeds 40000 characters', async () => {
    await expect(client().chat.postMessage({ channel: OPS, text: 't'.repeat(40_001) })).rejects.toMatchObject(
      refusedWith('msg_too_long', ['/text: must be at most 40000 characters (got 40001)']),
    );
  });

  it('should refuse with msg_blocks_too_long when the text in all blocks exceeds 12000 characters', async () => {
    const blocks = [
      section('a'.repeat(3000)),
      section('b'.repeat(3000)),
      section('c'.repeat(3000)),
      section('d'.repeat(3000)),
      section('e'),
    ];
    await expect(
      client().chat.postMessage({ channel: OPS, text: 'x', blocks: blocks as never }),
    ).rejects.toMatchObject(
      refusedWith('msg_blocks_too_long', [
        '/blocks: the text in all blocks must be at most 12000 characters (got 12001)',
      ]),
    );
  });

  it('should apply the limits to chat.update and chat.postEphemeral too when their blocks break them', async () => {
    const slack = client();
    const root = await slack.chat.postMessage({ channel: OPS, text: 'v1' });
    const tooLong = [{ type: 'header', text: { type: 'plain_text', text: 'h'.repeat(151) } }];
    const errors = ['/blocks/0/text/text: must be at most 150 characters (got 151)'];
    await expect(
      slack.chat.update({ channel: OPS, ts: root.ts as string, text: 'v2', blocks: tooLong as never }),
    ).rejects.toMatchObject(refusedWith('invalid_blocks', errors));
    await expect(
      slack.chat.postEphemeral({ channel: OPS, user: 'U0ALICE01', text: 'e', blocks: tooLong as never }),
    ).rejects.toMatchObject(refusedWith('invalid_blocks', errors));
    expect(fake.messages(OPS)).toEqual([{ ts: root.ts, text: 'v1', blocks: [], updates: 0 }]);
    expect(fake.ephemerals(OPS)).toEqual([]);
  });
});

describe('fake Slack: rate limits and injected failures', () => {
  it('should answer 429 with Retry-After 1 when a channel gets a fourth post within a second', async () => {
    const slack = client();
    for (const n of [1, 2, 3]) await slack.chat.postMessage({ channel: OPS, text: `m${n}` });
    const err = await slack.chat.postMessage({ channel: OPS, text: 'm4' }).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(WebAPIRateLimitedError);
    expect((err as WebAPIRateLimitedError).retryAfter).toBe(1);
    expect(fake.calls.at(-1)).toMatchObject({ status: 429, response: { ok: false, error: 'ratelimited' } });
    expect(fake.messages(OPS).map((m) => m.text)).toEqual(['m1', 'm2', 'm3']);
    // Another channel has its own budget.
    await expect(slack.chat.postMessage({ channel: OTHER, text: 'o1' })).resolves.toMatchObject({ ok: true });
  });

  it('should accept posts again at the configured rate when time passes after a burst', async () => {
    const slack = client();
    for (const n of [1, 2, 3]) await slack.chat.postMessage({ channel: OPS, text: `m${n}` });
    now += 999;
    await expect(slack.chat.postMessage({ channel: OPS, text: 'early' })).rejects.toBeInstanceOf(
      WebAPIRateLimitedError,
    );
    now += 1;
    await expect(slack.chat.postMessage({ channel: OPS, text: 'on time' })).resolves.toMatchObject({
      ok: true,
    });
    await expect(slack.chat.postMessage({ channel: OPS, text: 'again' })).rejects.toBeInstanceOf(
      WebAPIRateLimitedError,
    );
    expect(fake.messages(OPS).map((m) => m.text)).toEqual(['m1', 'm2', 'm3', 'on time']);
  });

  it('should refuse a method past its per-minute limit in every channel until the oldest call is a minute old', async () => {
    await fake.close();
    fake = await startFakeSlack({
      token: TOKEN,
      channels: [OPS, OTHER],
      methodLimitsPerMinute: { 'chat.update': 2 },
      clock: () => now,
    });
    const slack = client();
    const a = await slack.chat.postMessage({ channel: OPS, text: 'a' });
    const b = await slack.chat.postMessage({ channel: OTHER, text: 'b' });
    await slack.chat.update({ channel: OPS, ts: a.ts as string, text: 'a1' });
    now += 20_000;
    await slack.chat.update({ channel: OTHER, ts: b.ts as string, text: 'b1' });
    const err = await slack.chat
      .update({ channel: OTHER, ts: b.ts as string, text: 'b2' })
      .catch((e: unknown) => e);

    expect(err).toBeInstanceOf(WebAPIRateLimitedError);
    // The first update leaves the one-minute window 40 s from now.
    expect((err as WebAPIRateLimitedError).retryAfter).toBe(40);
    expect(fake.messages(OTHER).map((m) => m.text)).toEqual(['b1']);
    // Other methods are not limited by it.
    await expect(slack.chat.postMessage({ channel: OTHER, text: 'c' })).resolves.toMatchObject({ ok: true });
    now += 40_000;
    await expect(
      slack.chat.update({ channel: OTHER, ts: b.ts as string, text: 'b2' }),
    ).resolves.toMatchObject({ ok: true });
  });

  it('should surface WebAPIRateLimitedError with retryAfter when a 429 is injected for the next two calls', async () => {
    const slack = client();
    fake.failNext('chat.update', { status: 429, retryAfterS: 7 }, 2);
    const root = await slack.chat.postMessage({ channel: OPS, text: 'v1' });
    for (let i = 0; i < 2; i++) {
      const err = await slack.chat
        .update({ channel: OPS, ts: root.ts as string, text: 'v2' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WebAPIRateLimitedError);
      expect((err as WebAPIRateLimitedError).retryAfter).toBe(7);
    }
    await slack.chat.update({ channel: OPS, ts: root.ts as string, text: 'v3' });
    expect(fake.calls.map((c) => [c.method, c.status])).toEqual([
      ['chat.postMessage', 200],
      ['chat.update', 429],
      ['chat.update', 429],
      ['chat.update', 200],
    ]);
    expect(fake.messages(OPS)).toEqual([{ ts: root.ts, text: 'v3', blocks: [], updates: 1 }]);
  });

  it('should surface WebAPIHTTPError and store nothing when a 503 is injected', async () => {
    fake.failNext('chat.postMessage', { status: 503 });
    const err = await client()
      .chat.postMessage({ channel: OPS, text: 'lost' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WebAPIHTTPError);
    expect((err as WebAPIHTTPError).statusCode).toBe(503);
    expect(fake.messages(OPS)).toEqual([]);
    expect(fake.calls).toHaveLength(1);
  });

  it('should let the client retry on its own when rate-limited calls are not rejected and retries remain', async () => {
    // Without rejectRateLimitedCalls the client pauses for Retry-After, then retries within retryConfig.
    fake.failNext('chat.postMessage', { status: 429, retryAfterS: 0 });
    const slack = client({
      rejectRateLimitedCalls: false,
      retryConfig: { retries: 1, minTimeout: 0, maxTimeout: 1 },
    });
    await expect(slack.chat.postMessage({ channel: OPS, text: 'second try' })).resolves.toMatchObject({
      ok: true,
    });
    expect(fake.calls.map((c) => c.status)).toEqual([429, 200]);
    expect(fake.messages(OPS).map((m) => m.text)).toEqual(['second try']);
  });
});

describe('fake Slack: file uploads', () => {
  it('should share the bytes in the thread when files.uploadV2 runs its three steps against the fake', async () => {
    const slack = client();
    const root = await slack.chat.postMessage({ channel: OPS, text: 'root' });
    const bytes = Buffer.from('# Run r1\n\nevery step passed\n');
    const result = await slack.files.uploadV2({
      channel_id: OPS,
      thread_ts: root.ts as string,
      file: bytes,
      filename: 'run-r1.md',
      title: 'Postmortem',
      initial_comment: 'the postmortem',
    });

    expect(fake.calls.map((c) => c.method)).toEqual([
      'chat.postMessage',
      'files.getUploadURLExternal',
      'upload',
      'files.completeUploadExternal',
    ]);
    expect(fake.calls[1]?.args).toEqual({ filename: 'run-r1.md', length: String(bytes.length) });
    expect(fake.calls[3]?.args).toEqual({
      files: [{ id: 'F000000001', title: 'Postmortem' }],
      channel_id: OPS,
      thread_ts: root.ts,
      initial_comment: 'the postmortem',
    });
    expect(result).toMatchObject({
      ok: true,
      files: [{ ok: true, files: [{ id: 'F000000001', title: 'Postmortem' }] }],
    });
    expect(fake.files()).toEqual([
      {
        id: 'F000000001',
        filename: 'run-r1.md',
        title: 'Postmortem',
        bytes,
        channel: OPS,
        thread_ts: root.ts,
      },
    ]);
    expect(fake.messages(OPS)[1]).toEqual({
      ts: '1700000000.000200',
      thread_ts: root.ts,
      text: 'the postmortem',
      blocks: [],
      updates: 0,
      files: ['F000000001'],
    });
  });

  it('should refuse the bytes with 400 when their length differs from the declared length', async () => {
    const { upload_url } = await client().files.getUploadURLExternal({ filename: 'a.txt', length: 10 });
    const res = await fetch(upload_url as string, { method: 'POST', body: 'too short' });
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('declared length 10, received 9 bytes');
    await expect(
      client().files.completeUploadExternal({ files: [{ id: 'F000000001', title: 'a' }], channel_id: OPS }),
    ).rejects.toMatchObject(refusedWith('file_not_found'));
    expect(fake.files()).toEqual([]);
  });

  it('should refuse with invalid_arguments when getUploadURLExternal is asked for an empty file', async () => {
    await expect(client().files.getUploadURLExternal({ filename: 'a.txt', length: 0 })).rejects.toMatchObject(
      refusedWith('invalid_arguments'),
    );
  });

  it('should fail uploadV2 with the upload step named when the upload URL answers 500', async () => {
    fake.failNext('upload', { status: 500 });
    const err = await client()
      .files.uploadV2({ channel_id: OPS, file: Buffer.from('abc'), filename: 'a.txt' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WebAPIHTTPError);
    expect((err as WebAPIHTTPError).statusCode).toBe(500);
    expect(fake.calls.map((c) => c.method)).toEqual(['files.getUploadURLExternal', 'upload']);
    expect(fake.files()).toEqual([]);
  });
});

describe('fake Slack: users, groups and raw requests', () => {
  it('should list a user group and describe a user when they are known', async () => {
    const slack = client();
    await expect(slack.usergroups.users.list({ usergroup: 'S0ONCALL1' })).resolves.toMatchObject({
      users: ['U0ALICE01', 'U0BOB0001'],
    });
    await expect(slack.usergroups.users.list({ usergroup: 'S0LEADS01' })).resolves.toMatchObject({
      users: ['U0BOB0001'],
    });
    await expect(slack.usergroups.users.list({ usergroup: 'S0NOPE' })).rejects.toMatchObject(
      refusedWith('no_such_subteam'),
    );
    await expect(slack.users.info({ user: 'U0ALICE01' })).resolves.toMatchObject({
      user: { id: 'U0ALICE01' },
    });
    await expect(slack.users.info({ user: 'U0NOBODY' })).rejects.toMatchObject(refusedWith('user_not_found'));
  });

  it('should answer unknown_method when the method does not exist', async () => {
    await expect(client().apiCall('chat.frobnicate', {})).rejects.toMatchObject(
      refusedWith('unknown_method'),
    );
  });

  it('should parse form fields as JSON and take the token from the form when posted without a bearer header', async () => {
    const body = new URLSearchParams({
      token: TOKEN,
      channel: OPS,
      text: 'raw',
      blocks: JSON.stringify([section('from a form')]),
    }).toString();
    const res = await fetch(`${fake.url}chat.postMessage`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    expect(await res.json()).toMatchObject({ ok: true, channel: OPS });
    expect(fake.messages(OPS)[0]?.blocks).toEqual([section('from a form')]);
    expect(fake.calls[0]?.args).not.toHaveProperty('token');
  });

  it('should accept a JSON body and refuse malformed blocks when blocks is not a JSON array', async () => {
    const post = (body: unknown, type: string) =>
      fetch(`${fake.url}chat.postMessage`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': type },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }).then((r) => r.json());
    expect(
      await post({ channel: OPS, text: 'json', blocks: [section('json')] }, 'application/json'),
    ).toMatchObject({
      ok: true,
    });
    expect(
      await post(
        `channel=${OPS}&text=x&blocks=${encodeURIComponent('[{')}`,
        'application/x-www-form-urlencoded',
      ),
    ).toEqual({ ok: false, error: 'invalid_blocks_format' });
    expect(fake.messages(OPS).map((m) => m.text)).toEqual(['json']);
  });
});
