import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App } from '@slack/bolt';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { createSlackApp } from '../src/slack/app.js';
import { type Harness, isType, quietLogger, startHarness, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { buttonClickBody, postToBolt, signedHeaders, slashCommandBody } from './support/slack-requests.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const TOKEN = ['xoxb', '1111111111', '2222222222222', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const SECRET = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';
const CHANNEL = 'C0INCIDENT';
const OPERATOR = 'U0OPERATOR';
const APPROVER = 'U0APPROVER';
const STRANGER = 'U0STRANGER';

const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;
let fake: FakeSlack | undefined;
let app: App | undefined;
let base = '';

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  await app?.stop();
  app = undefined;
  await h?.stop();
  h = undefined;
  await fake?.close();
  fake = undefined;
});

async function start(): Promise<{ harness: Harness; slack: FakeSlack }> {
  fake = await startFakeSlack({
    token: TOKEN,
    channels: [CHANNEL],
    users: {
      [OPERATOR]: { groups: [] },
      [APPROVER]: { groups: ['S0APPROVERS'] },
      [STRANGER]: { groups: [] },
    },
  });
  h = await startHarness({
    redis: db.redis,
    prefix: db.prefix,
    runbooks,
    scenarios: ['healthy'],
    approvers: ['S0APPROVERS'],
  });
  await h.startAgent();
  app = createSlackApp({
    slack: { botToken: TOKEN, signingSecret: SECRET, apiUrl: fake.url, port: 0 },
    approvers: ['S0APPROVERS'],
    operators: [OPERATOR],
    service: h.service,
    sites: h.sites,
    logger: quietLogger,
    webApiRetries: 0,
  });
  const server = (await app.start(0)) as Server;
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { harness: h, slack: fake };
}

const signed = (body: string, ts?: number, secret = SECRET) => signedHeaders(body, secret, ts);
const commandBody = (user: string, text: string) => slashCommandBody({ user, channel: CHANNEL, text });
const clickBody = (user: string, actionId: 'capi_approve' | 'capi_deny', value: string) =>
  buttonClickBody({ user, channel: CHANNEL, actionId, value });
const post = (body: string, headers = signed(body)) => postToBolt(base, body, headers);

/** The text of the next ephemeral the fake delivered to `user` (after call number `from`). */
function ephemeralTo(slack: FakeSlack, user: string, from = 0): Promise<string> {
  return eventually(`an ephemeral to ${user}`, () => {
    const hit = slack.calls
      .slice(from)
      .find((c) => c.method === 'chat.postEphemeral' && c.args.user === user && c.status === 200);
    return hit ? String(hit.args.text) : undefined;
  });
}

/** The runs queued so far, once there is one. */
const queuedRuns = (harness: Harness) =>
  eventually('a queued run', async () => {
    const list = await harness.service.listRuns({});
    return list.length > 0 ? list : undefined;
  });

describe('the Slack front over HTTP', () => {
  it('should reject requests whose signature is forged or stale', async () => {
    await start();
    const body = commandBody(OPERATOR, 'recover');
    expect((await post(body, signed(body, undefined, 'not-the-secret'))).status).toBe(401);
    expect((await post(body, signed(body, Math.floor(Date.now() / 1000) - 6 * 60))).status).toBe(401);
    expect(await db.redis.keys(`${db.prefix}:run:*`)).toEqual([]);
  });

  it('should ack at once and queue the run when an operator types /capi in the site channel', async () => {
    const { harness } = await start();
    const t0 = Date.now();
    const res = await post(commandBody(OPERATOR, 'diagnose'));
    expect(res.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(3000);
    const list = await queuedRuns(harness);
    expect(list[0]).toMatchObject({
      runbook: 'diagnose',
      site: 'site-0',
      requestedBy: OPERATOR,
      channel: CHANNEL,
    });
    const runId = list[0]?.runId as string;
    expect((await waitForEvent(harness.service, runId, isType('run.finished'))).status).toBe('succeeded');
  });

  it('should tell only the user what was wrong when the subcommand is not valid', async () => {
    const { slack } = await start();
    await post(commandBody(OPERATOR, 'image-check'));
    expect(await ephemeralTo(slack, OPERATOR)).toMatch(
      /`image-check` takes IMAGE: `\/capi image-check IMAGE`/,
    );
    const mark = slack.calls.length;
    await post(commandBody(OPERATOR, 'failover not-a-uuid'));
    expect(await ephemeralTo(slack, OPERATOR, mark)).toMatch(
      /Nothing was started: lb must be a lowercase UUID/,
    );
  });

  it('should keep destructive runbooks for operators and open diagnose to anyone', async () => {
    const { slack, harness } = await start();
    await post(commandBody(STRANGER, 'recover'));
    expect(await ephemeralTo(slack, STRANGER)).toMatch(/Only CAPI_OPERATORS may start or cancel runs/);
    expect(await harness.service.listRuns({})).toEqual([]);
    await post(commandBody(STRANGER, 'diagnose'));
    expect((await queuedRuns(harness))[0]?.runbook).toBe('diagnose');
  });

  it('should refuse a click from someone who may not approve and let the first approver decide', async () => {
    const { slack, harness } = await start();
    await post(commandBody(OPERATOR, 'park'));
    const runId = (await queuedRuns(harness))[0]?.runId as string;
    await waitForEvent(harness.service, runId, isType('approval.requested'));
    const [pending] = await harness.service.pendingApprovals(runId);
    const approvalId = pending?.approvalId as string;

    await post(clickBody(STRANGER, 'capi_approve', approvalId));
    expect(await ephemeralTo(slack, STRANGER)).toMatch(
      /Your click changed nothing: you are not in CAPI_APPROVERS/,
    );
    const refused = await waitForEvent(harness.service, runId, isType('approval.refused'));
    expect(refused).toMatchObject({ by: STRANGER, approvalId });
    expect((await harness.service.getApproval(approvalId))?.decision).toBeUndefined();

    await post(clickBody(APPROVER, 'capi_approve', approvalId));
    expect((await waitForEvent(harness.service, runId, isType('run.finished'))).status).toBe('succeeded');
    const mark = slack.calls.length;
    await post(clickBody(APPROVER, 'capi_deny', approvalId));
    expect(await ephemeralTo(slack, APPROVER, mark)).toMatch(/Already decided: approved by <@U0APPROVER>/);
  });
});
