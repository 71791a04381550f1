import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LogLevel, WebClient } from '@slack/web-api';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort } from '../dev/net.js';
import { startFakeSlack } from '../dev/slack/fake-slack.js';
import { opsRoutes, redisCheck, startOpsServer } from '../src/ops/http.js';
import { Metrics, meteredFetch } from '../src/ops/metrics.js';
import { connectRedis } from '../src/redis/connection.js';
import { quietLogger, spawnAgent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';
import { sampleSiteData } from './support/site.js';

const db = useTestRedis();

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('/healthz, /readyz and /metrics', () => {
  it('should name each readiness check, answer 503 while one fails and serve Prometheus text', async () => {
    const metrics = new Metrics();
    metrics.runsStarted.inc({ runbook: 'park' });
    const up = connectRedis({ mode: 'single', url: REDIS_URL, waitReplicas: 0 }, 'producer', quietLogger);
    const down = connectRedis(
      { mode: 'single', url: `redis://127.0.0.1:${await freePort()}`, waitReplicas: 0 },
      'producer',
      quietLogger,
    );
    cleanups.push(async () => {
      up.disconnect();
      down.disconnect();
    });
    // A producer connection fails fast instead of queueing, so the check is asked once it is connected.
    await eventually('the producer connection to be ready', () => (up.status === 'ready' ? true : undefined));
    let slack: true | string = 'auth.test has not answered yet';
    const server = await startOpsServer(
      opsRoutes({
        metrics,
        checks: {
          redis: redisCheck(up),
          slack: async () => slack,
          agent: async () => {
            throw new Error('workers closed');
          },
        },
      }),
      { host: '127.0.0.1', port: 0 },
      quietLogger,
    );
    cleanups.push(() => server.close());
    const base = `http://127.0.0.1:${server.port}`;

    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({
      status: 'not ready',
      checks: {
        redis: { ok: true },
        slack: { ok: false, reason: 'auth.test has not answered yet' },
        agent: { ok: false, reason: 'workers closed' },
      },
    });

    const metricsRes = await fetch(`${base}/metrics`);
    expect(metricsRes.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await metricsRes.text();
    expect(text).toMatch(/^capi_runs_started_total\{runbook="park"\} 1$/m);
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect((await fetch(`${base}/nope`)).status).toBe(404);

    slack = true;
    const other = await startOpsServer(
      opsRoutes({ metrics, checks: { redis: redisCheck(down), slack: async () => slack } }),
      { host: '127.0.0.1', port: 0 },
      quietLogger,
    );
    cleanups.push(() => other.close());
    const redisDown = await fetch(`http://127.0.0.1:${other.port}/readyz`);
    expect(redisDown.status).toBe(503);
    const body = (await redisDown.json()) as { checks: Record<string, { ok: boolean; reason?: string }> };
    expect(body.checks.redis?.ok).toBe(false);
    expect(body.checks.slack).toEqual({ ok: true });
  });
});

describe('capi-chatops agent with METRICS_PORT', () => {
  it('should serve readiness and metrics on METRICS_PORT and go away on SIGTERM', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-agent-ops-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const siteFile = path.join(dir, 'site.yaml');
    // A deployable site (the agent refuses one without a pinned jumphost); nothing connects to it here.
    const jumphost = {
      host: '127.0.0.1',
      user: 'ops',
      private_key_path: path.join(dir, 'id'),
      host_key: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    };
    await writeFile(siteFile, stringify(sampleSiteData({ name: 'lab1', jumphost })));
    const port = await freePort();
    const agent = await spawnAgent({
      siteFile,
      prefix: db.prefix,
      env: { METRICS_PORT: String(port), METRICS_HOST: '127.0.0.1' },
    });
    cleanups.push(() => agent.stop());
    const ready = await eventually(
      'the agent to answer /readyz',
      async () => {
        try {
          return await fetch(`http://127.0.0.1:${port}/readyz`);
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 20_000 },
    );
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'ready',
      checks: { redis: { ok: true }, agent: { ok: true } },
    });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^capi_agent_workers_running\{queue="jobs"\} 1$/m);
    expect(metrics).toMatch(/^capi_queue_jobs\{queue="jobs",state="waiting"\} 0$/m);
    // The site pins no mgmt VM host key: the agent says once how it is trusted instead.
    const trust = agent
      .logs()
      .split('\n')
      .filter((l) => l.includes('trusted on first use'));
    expect(trust).toHaveLength(1);
    expect(JSON.parse(trust[0] as string)).toMatchObject({
      level: 40,
      site: 'lab1',
      msg: expect.stringMatching(
        /^site lab1: mgmt_host_key is not pinned, .* ~\/\.capi-chatops\/known_hosts\/lab1 /,
      ),
    });
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
  });
});

describe('Slack API call metrics', () => {
  it('should count every Web API call by method and result: ok, 429, 5xx and error', async () => {
    const token = 'test-bot-token';
    const fake = await startFakeSlack({ token, channels: ['C0OPS0001'] });
    cleanups.push(() => fake.close());
    const metrics = new Metrics({ processMetrics: false });
    const client = new WebClient(token, {
      slackApiUrl: fake.url,
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      logLevel: LogLevel.ERROR,
      fetch: meteredFetch(metrics),
    });
    await client.auth.test();
    fake.failNext('chat.postMessage', { status: 429, retryAfterS: 1 });
    await expect(client.chat.postMessage({ channel: 'C0OPS0001', text: 'a' })).rejects.toThrow();
    fake.failNext('chat.postMessage', { status: 503 });
    await expect(client.chat.postMessage({ channel: 'C0OPS0001', text: 'b' })).rejects.toThrow();
    await client.chat.postMessage({ channel: 'C0OPS0001', text: 'c' });
    await expect(client.chat.postMessage({ channel: 'C0NOWHERE', text: 'd' })).rejects.toThrow(
      /channel_not_found/,
    );
    // A /capi reply through the command's response_url is counted as one, its token-like path never a label.
    const respond = meteredFetch(metrics);
    const url = fake.issueResponseUrl('U0ALICE01', 'C0OPS0001');
    const post = (text: string) =>
      respond(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text }),
      });
    for (let i = 0; i < 6; i++) await post(`reply ${i}`);

    const { values } = await metrics.slackCalls.get();
    const counts = Object.fromEntries(values.map((v) => [`${v.labels.method} ${v.labels.result}`, v.value]));
    expect(counts).toEqual({
      'auth.test ok': 1,
      'chat.postMessage 429': 1,
      'chat.postMessage 5xx': 1,
      'chat.postMessage ok': 1,
      'chat.postMessage error': 1,
      'response_url ok': 5,
      'response_url error': 1,
    });
  });
});
