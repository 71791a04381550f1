import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort } from '../dev/net.js';
import { type SimJumphost, startSimJumphost } from '../dev/sim/jumphost.js';
import { FAKE_BOT, type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { testDecisionKeys } from './support/decision-keys.js';
import { eventually } from './support/eventually.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;
const TOKEN = ['xoxb', '3333333333', '4444444444444', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const SECRET = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const CHANNEL = 'C0INCIDENT';
const db = useTestRedis();
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('npm start', () => {
  it('should answer /capi from Slack, mirror the run into a thread, serve health, metrics and audit on the ops port only, and stop cleanly on SIGTERM', async () => {
    const fake: FakeSlack = await startFakeSlack({
      token: TOKEN,
      channels: [CHANNEL],
      users: { U0OPERATOR: { groups: [] } },
    });
    cleanups.push(() => fake.close());
    const sim: SimJumphost = await startSimJumphost({ scenario: 'healthy', timeScale: 0.002 });
    cleanups.push(() => sim.stop());
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-serve-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const siteFile = path.join(dir, 'site.yaml');
    await writeFile(siteFile, stringify({ ...sim.site, name: 'lab1', slack_channels: [CHANNEL] }));
    const port = await freePort();
    const opsPort = await freePort();

    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: {
        ...process.env,
        SITE_FILE: siteFile,
        REDIS_URL,
        QUEUE_PREFIX: db.prefix,
        SLACK_BOT_TOKEN: TOKEN,
        SLACK_SIGNING_SECRET: SECRET,
        SLACK_API_URL: fake.url,
        PORT: String(port),
        METRICS_PORT: String(opsPort),
        ALERT_WEBHOOK_TOKEN: 'alertmanager-token-0123456789abcdef0123456789',
        CAPI_OPERATORS: 'U0OPERATOR',
        CAPI_APPROVERS: 'U0APPROVER',
        CAPI_DECISION_SIGNING_KEY: testDecisionKeys().privateFile,
        LOG_LEVEL: 'info',
        AUDIT_LOG_FILE: path.join(dir, 'audit.jsonl'),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    let log = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d) => {
        log += d;
        if (log.includes('capi-chatops ready')) resolve();
      });
    });

    const body = new URLSearchParams({
      command: '/capi',
      // A short read-only runbook: the thread poster paces posts (about 1 s each), so diagnose's two
      // dozen steps would make this test a minute long.
      text: 'image-check ubuntu-jammy-kube-v1.32.13',
      user_id: 'U0OPERATOR',
      user_name: 'operator',
      channel_id: CHANNEL,
      channel_name: 'incident',
      team_id: FAKE_BOT.teamId,
      team_domain: 'ops',
      api_app_id: 'A0CAPI',
      token: 'legacy',
      response_url: 'http://127.0.0.1:9/unused',
      trigger_id: '1.2.3',
    }).toString();
    const ts = Math.floor(Date.now() / 1000);
    const res = await fetch(`http://127.0.0.1:${port}/slack/events`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-slack-request-timestamp': String(ts),
        'x-slack-signature': `v0=${createHmac('sha256', SECRET).update(`v0:${ts}:${body}`).digest('hex')}`,
      },
      body,
    });
    expect(res.status).toBe(200);
    // Health and readiness on the ops port: Redis answers, auth.test passed, the agent's workers run.
    const ops = `http://127.0.0.1:${opsPort}`;
    expect(await (await fetch(`${ops}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${ops}/readyz`);
    expect(await ready.json()).toEqual({
      status: 'ready',
      checks: { redis: { ok: true }, slack: { ok: true }, agent: { ok: true } },
    });
    expect(ready.status).toBe(200);
    // Never next to /slack/events, which faces the internet; and the ops port answers on loopback only.
    for (const route of ['/healthz', '/readyz', '/metrics']) {
      expect((await fetch(`http://127.0.0.1:${port}${route}`)).status, route).toBe(404);
    }
    const unsigned = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' };
    expect((await fetch(`http://127.0.0.1:${port}/alerts/alertmanager`, unsigned)).status).toBe(404);
    expect((await fetch(`${ops}/alerts/alertmanager`, unsigned)).status).toBe(401);
    await expect(fetch(`http://127.0.0.2:${opsPort}/healthz`)).rejects.toThrow();

    // The run's root message ends in its final state; the thread under it holds the run. Posts go at
    // Slack's real pace here (about one a second), so the whole thread takes most of the test's minute.
    await eventually(
      'the root message to show the run succeeded',
      () => {
        const root = fake.messages(CHANNEL).find((m) => m.thread_ts === undefined);
        return root && /succeeded/i.test(root.text) ? root : undefined;
      },
      { timeoutMs: 50_000 },
    );
    const messages = fake.messages(CHANNEL);
    const root = messages.find((m) => m.thread_ts === undefined);
    expect(root?.text).toMatch(/image-check/);
    expect(JSON.stringify(root?.blocks)).toMatch(/run id: /);
    // What the check found, then the run's end (its steps that only read what was expected are in the root's
    // checklist).
    const thread = messages.filter((m) => m.thread_ts === root?.ts);
    expect(thread.length).toBeGreaterThanOrEqual(2);
    expect(thread.at(-1)?.text).toMatch(/^Run succeeded after /);
    expect(thread.map((m) => m.text).join('\n')).toMatch(
      /all good: ubuntu-jammy-kube-v1\.32\.13 .* carries kube_version=v1\.32\.13/,
    );

    // The agent runs on serve's agent thread and logs there, the same JSON on the same stdout.
    await eventually('the agent thread to log the end of the run', () =>
      log.split('\n').find((l) => l.includes('"thread":"agent"') && l.includes('"msg":"run finished"')),
    );
    const metrics = await (await fetch(`${ops}/metrics`)).text();
    expect(metrics).toMatch(/^capi_runs_finished_total\{runbook="image-check",status="succeeded"\} 1$/m);
    expect(metrics).toMatch(/^capi_slack_api_calls_total\{method="auth.test",result="ok"\} [1-9]/m);
    expect(metrics).toMatch(/^capi_slack_api_calls_total\{method="chat.postMessage",result="ok"\} [1-9]/m);
    expect(metrics).not.toMatch(/result="error"/);
    expect(metrics).toMatch(/^capi_queue_workers\{queue="jobs-readonly"\} 1$/m);
    const audit = (await readFile(path.join(dir, 'audit.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(audit[0]).toMatchObject({
      audit: true,
      event: 'run.requested',
      runbook: 'image-check',
      requestedBy: 'U0OPERATOR',
      channel: CHANNEL,
    });
    expect(audit.at(-1)).toMatchObject({ audit: true, event: 'run.finished', status: 'succeeded' });

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
