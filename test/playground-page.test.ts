import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isValidSlackRequest } from '@slack/bolt';
import { WebClient } from '@slack/web-api';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { APPROVER, CHANNEL, OPERATOR, PEOPLE, TEAM } from '../dev/playground/cast.js';
import { ChannelView } from '../dev/playground/channel.js';
import { type PlaygroundServer, startPlaygroundServer } from '../dev/playground/server.js';
import { FAKE_BOT, type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { launchChromium, type TestBrowser } from './support/browser.js';
import { eventually } from './support/eventually.js';

/**
 * The playground's page in a real browser, against the fake Slack and a stand-in app that records what
 * Slack would send it: how messages render (and what never renders as HTML), Slack's refusals in red, the
 * confirm dialog, and the requests a command and a click become.
 */

const TOKEN = ['xoxb', '7777777777', '8888888888888', 'pagePAGEpagePAGEpagePAGE'].join('-');
const SECRET = '3c4d5e6f708192a3b4c5d6e7f8091a2b';

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

let browser: TestBrowser;
const stops: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser.close();
});
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

interface World {
  readonly fake: FakeSlack;
  readonly bot: WebClient;
  readonly server: PlaygroundServer;
  readonly received: Received[];
  readonly page: Page;
  /** What the stand-in app does with each request; default: a 200 with no body, like Bolt's ack(). */
  answer: (r: Received) => Promise<{ status: number; body?: string }>;
}

async function world(): Promise<World> {
  const fake = await startFakeSlack({
    token: TOKEN,
    channels: [CHANNEL.id],
    users: Object.fromEntries(PEOPLE.map((p) => [p.id, { groups: p.groups }])),
  });
  stops.push(() => fake.close());
  const received: Received[] = [];
  const w: Partial<World> & { answer: World['answer'] } = { answer: async () => ({ status: 200 }) };
  const app: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(r);
      void w.answer(r).then(({ status, body }) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(body ?? '');
      });
    });
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  stops.push(async () => {
    app.closeAllConnections();
    app.close();
  });
  const view = new ChannelView({
    fake,
    channel: CHANNEL,
    people: PEOPLE,
    site: 'lab-page',
    scenario: 'none',
    scenarioDescription: 'no simulator in this test',
  });
  stops.push(async () => view.close());
  const server = await startPlaygroundServer({
    fake,
    view,
    channel: CHANNEL,
    requestUrl: `http://127.0.0.1:${(app.address() as AddressInfo).port}/slack/events`,
    signingSecret: SECRET,
  });
  stops.push(() => server.close());
  const page = await browser.context.newPage();
  stops.push(() => page.close());
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  stops.push(async () => expect(dialogs, 'no alert() may ever run').toEqual([]));
  await page.goto(server.url);
  return Object.assign(w, {
    fake,
    bot: new WebClient(TOKEN, { slackApiUrl: fake.url, retryConfig: { retries: 0 } }),
    server,
    received,
    page,
  }) as World;
}

const messages = (p: Page) => p.locator('#messages .message');

function payloadOf(r: Received): Record<string, unknown> {
  return JSON.parse(new URLSearchParams(r.body).get('payload') ?? '{}') as Record<string, unknown>;
}

function signedBySlack(r: Received): boolean {
  return isValidSlackRequest({
    signingSecret: SECRET,
    body: r.body,
    headers: {
      'x-slack-signature': String(r.headers['x-slack-signature']),
      'x-slack-request-timestamp': Number(r.headers['x-slack-request-timestamp']),
    },
  });
}

describe('the playground page', () => {
  it('should draw mrkdwn and Block Kit as Slack does, with the bot text never parsed as HTML', async () => {
    const w = await world();
    const epoch = Math.floor(Date.now() / 1000);
    await w.bot.chat.postMessage({
      channel: CHANNEL.id,
      text: 'fallback',
      blocks: [
        { type: 'header', text: { type: 'plain_text', text: 'Approval needed: <b>x</b>' } },
        {
          type: 'section',
          text: {
            type: 'mrkdwn',
            text:
              `*bold* _it_ ~gone~ \`inline\` <https://example.org/runbooks|the runbook> <@${APPROVER.id}> ` +
              `<!subteam^S0APPROVERS> <!date^${epoch}^{date_num}|fallback> :rocket: :not_an_emoji: ` +
              '&lt;img src=x onerror=alert(1)&gt; <javascript:alert(2)|not a link>\n```\nline 1\n  <script>alert(3)</script>\n```',
          },
          fields: [{ type: 'mrkdwn', text: '*Site*\nlab1' }],
        },
        { type: 'divider' },
        { type: 'context', elements: [{ type: 'mrkdwn', text: 'requested by <@U0OPERATOR1>' }] },
      ],
    });
    const m = messages(w.page).first();
    await m.waitFor();
    expect(await m.locator('.bk-header').textContent()).toBe('Approval needed: <b>x</b>');
    expect(await m.locator('strong').first().textContent()).toBe('bold');
    expect(await m.locator('em').textContent()).toBe('it');
    expect(await m.locator('s').textContent()).toBe('gone');
    expect(await m.locator('code.inline-code').textContent()).toBe('inline');
    expect(await m.locator('a[href="https://example.org/runbooks"]').textContent()).toBe('the runbook');
    expect(await m.locator('.mention').allTextContents()).toEqual(['@arjun', '@capi-approvers', '@olivia']);
    expect(await m.locator('time').textContent()).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    // Slack's emoji: the character, its shortcode on hover; a name Slack does not know stays text.
    expect(await m.locator('.emoji').textContent()).toBe('🚀');
    expect(await m.locator('.emoji').getAttribute('title')).toBe(':rocket:');
    expect(await m.locator('.bk-section').textContent()).toContain('🚀 :not_an_emoji: ');
    expect(await m.locator('pre').textContent()).toBe('line 1\n  <script>alert(3)</script>');
    expect(await m.textContent()).toContain('<img src=x onerror=alert(1)> not a link');
    // Nothing the bot wrote became an element: no image, no script, no link but the https one.
    expect(await w.page.locator('#messages img, #messages script, #messages b').count()).toBe(0);
    expect(await w.page.locator('#messages a').count()).toBe(1);
    expect(await m.locator('.bk-fields').textContent()).toBe('Sitelab1');
    expect(await m.locator('hr.bk-divider').count()).toBe(1);
  });

  it('should show a message Slack refused in red with Slack error, where it would have appeared', async () => {
    const w = await world();
    await w.bot.chat.postMessage({ channel: CHANNEL.id, text: 'before' });
    await expect(
      w.bot.chat.postMessage({
        channel: CHANNEL.id,
        text: 'too long',
        blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'x'.repeat(3001) } }],
      }),
    ).rejects.toThrow(/invalid_blocks/);
    await w.bot.chat.postMessage({ channel: CHANNEL.id, text: 'after' });
    await messages(w.page).nth(2).waitFor();
    expect(await messages(w.page).allTextContents()).toEqual([
      expect.stringContaining('before'),
      expect.stringContaining('x'.repeat(100)),
      expect.stringContaining('after'),
    ]);
    const refusal = messages(w.page).nth(1).locator('.refusal');
    expect(await refusal.textContent()).toContain('Slack refused this chat.postMessage: invalid_blocks');
    expect(await refusal.textContent()).toContain(
      '/blocks/0/text/text: must be at most 3000 characters (got 3001)',
    );
    // Runs in the page, where getComputedStyle exists (this file is typed for Node).
    const color = await refusal.evaluate(
      (el) =>
        (globalThis as unknown as { getComputedStyle(e: unknown): { color: string } }).getComputedStyle(el)
          .color,
    );
    expect(color).toBe('rgb(176, 0, 52)');

    // An edit Slack refuses leaves the message as it was, with the refusal under it.
    const before = w.fake.messages(CHANNEL.id)[0];
    await expect(
      w.bot.chat.update({
        channel: CHANNEL.id,
        ts: before?.ts as string,
        text: 'edited',
        blocks: [{ type: 'header', text: { type: 'mrkdwn', text: '*not plain*' } }] as never,
      }),
    ).rejects.toThrow(/invalid_blocks/);
    const edit = messages(w.page).first().locator('.refusal');
    await edit.waitFor();
    expect(await edit.textContent()).toContain('Slack refused an edit of this message: invalid_blocks');
    expect(await messages(w.page).first().locator('.content').textContent()).toBe('before');
  });

  it('should take up to five replies on a response_url, check them against the Block Kit limits, and refuse an unknown one', async () => {
    const w = await world();
    await w.page.fill('#message-box', '/capi status');
    await w.page.press('#message-box', 'Enter');
    await eventually('the slash command at the app', () => w.received[0]);
    const url = new URLSearchParams((w.received[0] as Received).body).get('response_url') ?? '';
    const reply = (body: unknown) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });

    const broken = await reply({ text: 'x', blocks: [{ type: 'divider', block_id: 'b'.repeat(256) }] });
    expect(broken.status).toBe(400);
    expect(await broken.json()).toMatchObject({ ok: false, error: 'invalid_blocks' });
    await w.page
      .locator('.message-refused', { hasText: 'Slack refused this response_url: invalid_blocks' })
      .waitFor();

    for (let n = 1; n <= 5; n++) expect((await reply({ text: `reply ${n}` })).status).toBe(200);
    const sixth = await reply({ text: 'reply 6' });
    expect([sixth.status, await sixth.json()]).toEqual([404, { ok: false, error: 'used_url' }]);
    await w.page.locator('.message-ephemeral', { hasText: 'reply 5' }).waitFor();
    expect(await w.page.locator('.message-ephemeral').count()).toBe(5);

    const unknown = await fetch(`${w.server.url}response/${'A'.repeat(24)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'x' }),
    });
    expect(unknown.status).toBe(404);
  });

  it('should send /capi as a signed slash command from the chosen user and show Slack notices to that user only', async () => {
    const w = await world();
    await w.page.selectOption('#as-user', APPROVER.id);
    await w.page.fill('#message-box', '/capi status');
    await w.page.press('#message-box', 'Enter');
    await eventually('the slash command at the app', () => w.received[0]);
    const sent = w.received[0] as Received;
    expect(signedBySlack(sent)).toBe(true);
    expect(Object.fromEntries(new URLSearchParams(sent.body))).toMatchObject({
      command: '/capi',
      text: 'status',
      user_id: APPROVER.id,
      user_name: APPROVER.handle,
      channel_id: CHANNEL.id,
      channel_name: CHANNEL.name,
      team_id: TEAM.id,
      response_url: expect.stringMatching(new RegExp(`^${w.server.url}response/`)),
      trigger_id: expect.stringMatching(/^\d+\.\d+\.[0-9a-f]+$/),
    });

    // An app that fails: Slack tells the one who typed it, in Slack's words.
    w.answer = async () => ({ status: 500 });
    await w.page.fill('#message-box', '/capi help');
    await w.page.press('#message-box', 'Enter');
    const notice = w.page.locator('.message-notice', {
      hasText: '/capi failed with the error "dispatch_failed"',
    });
    await notice.waitFor();
    expect(await notice.locator('.only-you').textContent()).toContain('Only visible to you');
    await w.page.selectOption('#as-user', OPERATOR.id);
    await notice.waitFor({ state: 'detached' });
  });

  it('should ask the confirm dialog before a click, send nothing on Go back, and send a complete signed block_actions on confirm', async () => {
    const w = await world();
    const root = await w.bot.chat.postMessage({ channel: CHANNEL.id, text: 'run root' });
    await w.bot.chat.postMessage({
      channel: CHANNEL.id,
      thread_ts: root.ts as string,
      text: 'Approval needed',
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: '*Stop the VM*' } },
        {
          type: 'actions',
          block_id: 'capi_approval',
          elements: [
            {
              type: 'button',
              action_id: 'capi_approve',
              text: { type: 'plain_text', text: 'Approve' },
              style: 'primary',
              value: 'approval~r1~stop~0',
              confirm: {
                title: { type: 'plain_text', text: 'Approve this destructive step?' },
                text: { type: 'mrkdwn', text: '*Stop the VM*\nIt runs once.' },
                confirm: { type: 'plain_text', text: 'Approve' },
                deny: { type: 'plain_text', text: 'Go back' },
                style: 'danger',
              },
            },
          ],
        },
      ],
    });
    await w.page.getByRole('button', { name: '1 reply' }).click();
    const approve = w.page.locator('#thread-messages').getByRole('button', { name: 'Approve' });
    await approve.click();
    const dialog = w.page.getByRole('dialog');
    await dialog.waitFor();
    expect(await dialog.locator('h2').textContent()).toBe('Approve this destructive step?');
    expect(await dialog.locator('strong').textContent()).toBe('Stop the VM');
    await dialog.getByRole('button', { name: 'Go back' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(w.received).toEqual([]);

    // The app answers through response_url, as Bolt's respond() would.
    w.answer = async (r) => {
      const url = String(payloadOf(r).response_url);
      await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'Your click changed *nothing*' }),
      });
      return { status: 200 };
    };
    await approve.click();
    await dialog.getByRole('button', { name: 'Approve' }).click();
    await eventually('the click at the app', () => w.received[0]);
    const click = w.received[0] as Received;
    expect(signedBySlack(click)).toBe(true);
    const approval = w.fake.messages(CHANNEL.id)[1];
    expect(payloadOf(click)).toMatchObject({
      type: 'block_actions',
      user: { id: OPERATOR.id, username: OPERATOR.handle, team_id: TEAM.id },
      team: { id: TEAM.id },
      channel: { id: CHANNEL.id, name: CHANNEL.name },
      container: {
        type: 'message',
        message_ts: approval?.ts,
        channel_id: CHANNEL.id,
        thread_ts: root.ts,
        is_ephemeral: false,
      },
      message: { ts: approval?.ts, thread_ts: root.ts, user: FAKE_BOT.userId, text: 'Approval needed' },
      actions: [
        {
          type: 'button',
          block_id: 'capi_approval',
          action_id: 'capi_approve',
          value: 'approval~r1~stop~0',
          style: 'primary',
        },
      ],
    });
    const reply = w.page.locator('#thread-messages .message-ephemeral');
    await reply.waitFor();
    expect(await reply.textContent()).toContain('Your click changed nothing');
    expect(await reply.locator('strong').textContent()).toBe('nothing');
    expect(await reply.locator('.only-you').textContent()).toContain(
      `Only visible to you · ${OPERATOR.name}`,
    );
  });
  it("should show the modal the bot opens with the request's trigger, update it in place, keep it open with the app's errors and close it on an empty answer", async () => {
    const w = await world();
    const plain = (text: string) => ({ type: 'plain_text', text });
    const loading = {
      type: 'modal',
      callback_id: 'pick',
      private_metadata: '{"site":"lab"}',
      title: plain('Fail over an LB'),
      close: plain('Cancel'),
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'Looking for *<b>load balancers</b>*…' } }],
    };
    const filled = {
      ...loading,
      submit: plain('Start'),
      blocks: [
        {
          type: 'input',
          block_id: 'lb',
          label: plain('Load balancer'),
          element: {
            type: 'static_select',
            action_id: 'pick',
            options: [
              { text: plain('lb-a (ERROR)'), value: 'lb-a' },
              { text: plain('lb-b (ERROR)'), value: 'lb-b' },
            ],
          },
        },
        {
          type: 'input',
          block_id: 'why',
          label: plain('Why?'),
          element: { type: 'plain_text_input', action_id: 'reason', multiline: true },
        },
      ],
    };
    const submissions: Record<string, unknown>[] = [];
    let views = 0;
    w.answer = async (r) => {
      const form = new URLSearchParams(r.body);
      if (form.get('command') === '/capi') {
        // As the bot does: open at once with the trigger, fill in when the list arrives.
        const opened = (await w.bot.apiCall('views.open', {
          trigger_id: String(form.get('trigger_id')),
          view: loading,
        })) as { view?: { id?: string } };
        views += 1;
        void w.bot.apiCall('views.update', { view_id: String(opened.view?.id), view: filled });
        return { status: 200 };
      }
      const payload = payloadOf(r);
      if (payload.type === 'view_submission') {
        submissions.push(payload);
        return submissions.length === 1
          ? {
              status: 200,
              body: JSON.stringify({ response_action: 'errors', errors: { why: 'Say <i>more</i>' } }),
            }
          : { status: 200 };
      }
      return { status: 400 };
    };

    await w.page.selectOption('#as-user', APPROVER.id);
    await w.page.fill('#message-box', '/capi failover');
    await w.page.press('#message-box', 'Enter');
    const dialog = w.page.getByRole('dialog', { name: 'Fail over an LB' });
    await dialog.waitFor();
    const select = dialog.getByLabel('Load balancer');
    await select.waitFor();
    expect(views).toBe(1);
    await select.selectOption('lb-b');

    // A required input left empty: Slack's own client says so and sends nothing.
    await dialog.getByRole('button', { name: 'Start' }).click();
    await dialog.getByText('Please complete this required field.').waitFor();
    expect(submissions).toEqual([]);

    await dialog.getByLabel('Why?').fill('<script>x</script> it is down');
    await dialog.getByRole('button', { name: 'Start' }).click();
    await dialog.getByText('Say <i>more</i>').waitFor();
    expect(await dialog.locator('i').count()).toBe(0);
    expect(await dialog.getByLabel('Why?').inputValue()).toBe('<script>x</script> it is down');
    const stored = w.fake.modals()[0];
    const first = submissions[0] as Record<string, unknown>;
    expect(signedBySlack(w.received.at(-1) as Received)).toBe(true);
    expect(first).toMatchObject({
      type: 'view_submission',
      user: { id: APPROVER.id, team_id: TEAM.id },
      team: { id: TEAM.id },
      trigger_id: expect.stringMatching(/^\d+\.\d+\.[0-9a-f]+$/),
      view: {
        id: stored?.id,
        hash: stored?.hash,
        callback_id: 'pick',
        private_metadata: '{"site":"lab"}',
        state: {
          values: {
            lb: {
              pick: {
                type: 'static_select',
                selected_option: { text: plain('lb-b (ERROR)'), value: 'lb-b' },
              },
            },
            why: { reason: { type: 'plain_text_input', value: '<script>x</script> it is down' } },
          },
        },
      },
    });

    await dialog.getByRole('button', { name: 'Start' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(submissions).toHaveLength(2);

    // Cancel closes it without a word to the app.
    const before = w.received.length;
    await w.page.fill('#message-box', '/capi failover');
    await w.page.press('#message-box', 'Enter');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(w.received).toHaveLength(before + 1);
  });

  it('should open the Home tab as Slack does (app_home_opened) and show what the bot published for that person', async () => {
    const w = await world();
    w.answer = async (r) => {
      const event = (JSON.parse(r.body) as { event: { type: string; user: string } }).event;
      if (event.type === 'app_home_opened' && signedBySlack(r)) {
        await w.bot.views.publish({
          user_id: event.user,
          view: {
            type: 'home',
            blocks: [{ type: 'section', text: { type: 'mrkdwn', text: `*Runs for <@${event.user}>*` } }],
          },
        });
      }
      return { status: 200 };
    };
    await w.page.selectOption('#as-user', APPROVER.id);
    await w.page.getByRole('button', { name: 'Home · capi-chatops' }).click();
    const home = w.page.getByRole('complementary', { name: 'Home' });
    await home.locator('strong', { hasText: `Runs for @${APPROVER.handle}` }).waitFor();
    expect(w.received[0]?.headers['content-type']).toBe('application/json');
  });
});
