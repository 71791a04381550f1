import { ErrorCode, LogLevel, WebClient } from '@slack/web-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';

const TOKEN = 'test-bot-token';
const ALICE = 'U0ALICE01';

let fake: FakeSlack;
let now: number;

beforeEach(async () => {
  now = 1_700_000_000_000;
  fake = await startFakeSlack({
    token: TOKEN,
    channels: ['C0OPS0001'],
    users: { [ALICE]: { groups: [] } },
    clock: () => now,
  });
});
afterEach(async () => {
  await fake.close();
});

const client = () =>
  new WebClient(TOKEN, { slackApiUrl: fake.url, retryConfig: { retries: 0 }, logLevel: LogLevel.ERROR });

const plain = (text: string) => ({ type: 'plain_text', text });
const modal = (over: Record<string, unknown> = {}) => ({
  type: 'modal',
  callback_id: 'cb',
  title: plain('Deny this step?'),
  submit: plain('Deny'),
  close: plain('Cancel'),
  private_metadata: '{"a":1}',
  blocks: [
    {
      type: 'input',
      block_id: 'reason',
      optional: true,
      label: plain('Reason'),
      element: { type: 'plain_text_input', action_id: 'value', multiline: true, max_length: 500 },
    },
  ],
  ...over,
});

async function refusal(p: Promise<unknown>): Promise<{ error: string; messages?: string[] }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code?: string; data?: { error: string; response_metadata?: { messages?: string[] } } };
    expect(e.code).toBe(ErrorCode.PlatformError);
    return {
      error: e.data?.error ?? '?',
      ...(e.data?.response_metadata?.messages ? { messages: e.data.response_metadata.messages } : {}),
    };
  }
  throw new Error('the call was accepted');
}

describe('fake Slack: views', () => {
  it('should open a modal once per trigger and refuse the trigger when it is reused or older than 3 s', async () => {
    const slack = client();
    const trigger = fake.issueTrigger(ALICE);
    const opened = await slack.views.open({ trigger_id: trigger, view: modal() as never });
    expect(opened.view?.id).toMatch(/^V/);
    expect(fake.modals()).toMatchObject([{ user: ALICE, view: { callback_id: 'cb' } }]);
    expect(await refusal(slack.views.open({ trigger_id: trigger, view: modal() as never }))).toEqual({
      error: 'exchanged_trigger_id',
    });
    const late = fake.issueTrigger(ALICE);
    now += 3001;
    expect((await refusal(slack.views.open({ trigger_id: late, view: modal() as never }))).error).toBe(
      'expired_trigger_id',
    );
    expect((await refusal(slack.views.open({ trigger_id: '1.2.3', view: modal() as never }))).error).toBe(
      'invalid_trigger_id',
    );
  });

  it('should refuse a modal whose title is over 24 characters, has over 100 blocks or inputs without submit', async () => {
    const slack = client();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ title: plain('Deny this destructive step now?') }, /\/view\/title\/text: must be at most 24/],
      [{ submit: plain('Deny this destructive step now') }, /\/view\/submit\/text: must be at most 24/],
      [
        { blocks: Array.from({ length: 101 }, () => ({ type: 'divider' })) },
        /\/view\/blocks: must hold at most 100 blocks/,
      ],
      [{ submit: undefined }, /\/view\/submit: is required when the view has input blocks/],
      [{ private_metadata: 'x'.repeat(3001) }, /\/view\/private_metadata: must be at most 3000/],
      [{ type: 'home' }, /\/view\/type: must be "modal"/],
    ];
    for (const [over, message] of cases) {
      const trigger = fake.issueTrigger(ALICE);
      const r = await refusal(slack.views.open({ trigger_id: trigger, view: modal(over) as never }));
      expect(r.error).toBe('invalid_arguments');
      expect(r.messages?.join('\n')).toMatch(message);
      // A refused view leaves the trigger usable: the caller may fix the view and send it again.
      await slack.views.open({ trigger_id: trigger, view: modal() as never });
    }
  });

  it('should refuse a view too large with view_too_large', async () => {
    const big = Array.from({ length: 99 }, () => ({
      type: 'section',
      text: { type: 'mrkdwn', text: 'x'.repeat(2990) },
    }));
    const r = await refusal(
      client().views.open({ trigger_id: fake.issueTrigger(ALICE), view: modal({ blocks: big }) as never }),
    );
    expect(r.error).toBe('view_too_large');
  });

  it('should replace a modal by id and refuse a stale hash or an unknown view', async () => {
    const slack = client();
    const opened = await slack.views.open({ trigger_id: fake.issueTrigger(ALICE), view: modal() as never });
    const id = opened.view?.id as string;
    const hash = opened.view?.hash as string;
    const updated = await slack.views.update({
      view_id: id,
      hash,
      view: modal({ title: plain('Loaded') }) as never,
    });
    expect(fake.modals()).toMatchObject([{ id, updates: 1, view: { title: { text: 'Loaded' } } }]);
    expect(updated.view?.hash).not.toBe(hash);
    expect((await refusal(slack.views.update({ view_id: id, hash, view: modal() as never }))).error).toBe(
      'hash_conflict',
    );
    expect((await refusal(slack.views.update({ view_id: 'V404', view: modal() as never }))).error).toBe(
      'not_found',
    );
  });

  it('should publish a Home tab per user and refuse inputs, a title or an unknown user', async () => {
    const slack = client();
    const home = { type: 'home', blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'hi' } }] };
    await slack.views.publish({ user_id: ALICE, view: home as never });
    await slack.views.publish({ user_id: ALICE, view: { ...home, blocks: [] } as never });
    expect(fake.home(ALICE)).toMatchObject({ type: 'home', updates: 1, view: { blocks: [] } });
    expect((await refusal(slack.views.publish({ user_id: 'U0NOBODY1', view: home as never }))).error).toBe(
      'user_not_found',
    );
    const r = await refusal(slack.views.publish({ user_id: ALICE, view: modal({ type: 'home' }) as never }));
    expect(r.messages?.join('\n')).toMatch(/a Home tab has no title/);
    expect(r.messages?.join('\n')).toMatch(/input blocks belong in modals/);
  });
});
