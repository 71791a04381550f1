import { afterEach, describe, expect, it } from 'vitest';
import { type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { createSlackApp } from '../src/slack/app.js';
import { quietLogger } from './support/agent.js';

const BOT = ['xoxb', '7777777777', '8888888888888', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const APP_TOKEN = [
  'xapp',
  '1',
  'A0CAPI',
  '9999999999999',
  'fakefakefakefakefakefakefakefakefakefakefake',
].join('-');
let fake: FakeSlack | undefined;

afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

describe('Socket Mode', () => {
  it('should open a socket connection with the app token instead of listening for HTTP when SLACK_APP_TOKEN is set', async () => {
    fake = await startFakeSlack({ token: BOT, channels: ['C0INCIDENT'] });
    const app = createSlackApp({
      // No signing secret: Socket Mode has no signed HTTP requests to verify.
      slack: { botToken: BOT, appToken: APP_TOKEN, apiUrl: fake.url, port: 0 },
      approvers: [],
      operators: [],
      service: { runbooks: () => [] } as never,
      sites: new Map(),
      approvalPlaces: { approvalMessage: async () => undefined },
      logger: quietLogger,
      webApiRetries: 0,
    });
    // The fake has no WebSocket endpoint: the start fails after asking for one, which is what we check.
    await expect(app.start()).rejects.toThrow();
    const open = fake.calls.filter((c) => c.method === 'apps.connections.open');
    expect(open.length).toBeGreaterThan(0);
    // The fake knows only the bot token, so invalid_auth shows the call carried the app token.
    expect(open[0]?.response).toMatchObject({ ok: false, error: 'invalid_auth' });
  });

  it('should refuse to start in HTTP mode without a signing secret and say what to set', () => {
    expect(() =>
      createSlackApp({
        slack: { botToken: BOT, apiUrl: 'http://127.0.0.1:9/api/', port: 0 },
        approvers: [],
        operators: [],
        service: { runbooks: () => [] } as never,
        sites: new Map(),
        approvalPlaces: { approvalMessage: async () => undefined },
        logger: quietLogger,
      }),
    ).toThrow(/SLACK_SIGNING_SECRET is not set: .*or set SLACK_APP_TOKEN for Socket Mode/);
  });
});
