/**
 * Serve's agent runs on a thread of its own: with the agent thread's event loop blocked (a test hook in
 * agent-thread-main.ts), the Slack front still acks a signed /capi and its readiness says the agent does not
 * answer. Were the agent on the front's loop, the ack would never come while the loop is blocked.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort } from '../dev/net.js';
import { startSimJumphost } from '../dev/sim/jumphost.js';
import { startFakeSlack } from '../dev/slack/fake-slack.js';
import { testDecisionKeys } from './support/decision-keys.js';
import { eventually } from './support/eventually.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';
import { signedHeaders, slashCommandBody } from './support/slack-requests.js';

const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;
const TOKEN = ['xoxb', '3333333333', '4444444444444', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const SECRET = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const CHANNEL = 'C0INCIDENT';
/** Long enough for an ack and a readiness check on a loaded machine; the test waits for its end. */
const BLOCK_MS = 15_000;
const db = useTestRedis();
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** serve on a simulated site with the fake Slack, `extraEnv` added; its stdout is collected. */
async function startServe(extraEnv: Record<string, string>) {
  const fake = await startFakeSlack({
    token: TOKEN,
    channels: [CHANNEL],
    users: { U0OPERATOR: { groups: [] } },
  });
  cleanups.push(() => fake.close());
  const sim = await startSimJumphost({ scenario: 'healthy', timeScale: 0.002 });
  cleanups.push(() => sim.stop());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-serve-thread-'));
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
      CAPI_OPERATORS: 'U0OPERATOR',
      CAPI_APPROVERS: 'U0APPROVER',
      CAPI_DECISION_SIGNING_KEY: testDecisionKeys().privateFile,
      ...extraEnv,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  let log = '';
  child.stdout.on('data', (d) => {
    log += d;
  });
  return { child, exited, port, opsPort, fake, log: () => log };
}

describe("serve's agent thread", () => {
  it("should ack /capi while the agent thread's event loop is blocked, and stop cleanly after", async () => {
    const {
      child,
      exited,
      port,
      opsPort,
      fake,
      log: output,
    } = await startServe({
      CAPI_TEST_BLOCK_AGENT_THREAD_MS: String(BLOCK_MS),
    });
    await eventually('serve to be up with its agent thread blocked', () =>
      output().includes('capi-chatops ready') && output().includes('the agent thread blocks its event loop')
        ? true
        : undefined,
    );

    const body = slashCommandBody({ user: 'U0OPERATOR', channel: CHANNEL, text: 'help', slack: fake });
    const res = await fetch(`http://127.0.0.1:${port}/slack/events`, {
      method: 'POST',
      headers: signedHeaders(body, SECRET),
      body,
    });
    // Bolt answers 200 once the listener acked (an unacked command gets no answer, then an error).
    expect(res.status).toBe(200);

    // Still blocked after the ack: the agent does not answer, so the ack did not wait for it.
    const ops = `http://127.0.0.1:${opsPort}`;
    const blocked = await fetch(`${ops}/readyz`);
    expect(blocked.status).toBe(503);
    expect(((await blocked.json()) as { checks: Record<string, unknown> }).checks.agent).toEqual({
      ok: false,
      reason: expect.stringMatching(/agent thread did not answer/),
    });

    // Unblocked, the agent answers again and its metrics are in serve's.
    await eventually(
      'the agent thread to answer readiness again',
      async () => ((await fetch(`${ops}/readyz`)).status === 200 ? true : undefined),
      { timeoutMs: BLOCK_MS + 30_000 },
    );
    const metrics = await (await fetch(`${ops}/metrics`)).text();
    expect(metrics).toMatch(/^capi_agent_workers_running\{queue="jobs-readonly"\} 1$/m);
    expect(metrics).toMatch(/^process_resident_memory_bytes \d+/m);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output()).toMatch(/shutting down/);
  });

  it('should stop serve with exit code 1, saying why, when its agent thread fails', async () => {
    const { exited, log } = await startServe({ CAPI_TEST_CRASH_AGENT_THREAD: '1' });
    expect(await exited).toBe(1);
    expect(log()).toMatch(/"msg":"the agent thread stopped with code 1 without being asked to"/);
    expect(log()).toMatch(/"msg":"serve stopped because its agent thread stopped"/);
  });
});
