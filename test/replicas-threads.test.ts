/**
 * Two `serve` replicas on one Redis: each run's Slack thread is mirrored by exactly one of them (a lease
 * in Redis); when that replica is SIGKILLed, the other takes the thread over from the stored cursor.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort } from '../dev/net.js';
import { startSimJumphost } from '../dev/sim/jumphost.js';
import { startFakeSlack } from '../dev/slack/fake-slack.js';
import { RunTimeline } from '../src/runs/timeline.js';
import { APPROVE_ACTION_ID } from '../src/slack/blocks.js';
import { testDecisionKeys } from './support/decision-keys.js';
import { eventually } from './support/eventually.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';
import { buttonClickBody, postToBolt, signedHeaders, slashCommandBody } from './support/slack-requests.js';
import { expectedPosts } from './support/thread.js';

const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;
const TOKEN = ['xoxb', '5555555555', '6666666666666', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const SECRET = '1f2e3d4c5b6a79887766554433221100';
const CHANNEL = 'C0INCIDENT';
const db = useTestRedis();
const trace = (what: string) =>
  process.env.CAPI_DEBUG_CHILD && process.stderr.write(`[replicas] ${new Date().toISOString()} ${what}\n`);
const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Replica {
  readonly child: ChildProcess;
  readonly base: string;
  readonly exited: Promise<unknown>;
}

async function startServe(env: Record<string, string>): Promise<Replica> {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'serve'], {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  cleanups.push(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d) => {
      log += d;
      if (log.includes('capi-chatops ready')) resolve();
    });
    child.once('exit', () => reject(new Error(`serve exited before it was ready:\n${log}`)));
  });
  return { child, base: `http://127.0.0.1:${port}`, exited };
}

describe('two serve replicas', () => {
  it('should keep one root and post each thread message once when the replica mirroring it is SIGKILLed', {
    timeout: 150_000,
  }, async () => {
    const fake = await startFakeSlack({
      token: TOKEN,
      channels: [CHANNEL],
      users: { U0OPERATOR: { groups: [] }, U0APPROVER: { groups: [] } },
    });
    cleanups.push(() => fake.close());
    const sim = await startSimJumphost({ scenario: 'healthy', timeScale: 0.002 });
    cleanups.push(() => sim.stop());
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-replicas-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const siteFile = path.join(dir, 'site.yaml');
    await writeFile(siteFile, stringify({ ...sim.site, name: 'lab1', slack_channels: [CHANNEL] }));
    const env = {
      SITE_FILE: siteFile,
      REDIS_URL,
      QUEUE_PREFIX: db.prefix,
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: fake.url,
      CAPI_OPERATORS: 'U0OPERATOR',
      CAPI_APPROVERS: 'U0APPROVER',
      CAPI_DECISION_SIGNING_KEY: testDecisionKeys().privateFile,
      THREAD_LEASE_TTL: '1500ms',
      LOG_LEVEL: 'info',
    };
    const replicas = [await startServe(env), await startServe(env)];
    trace('replicas up');
    const [first] = replicas as [Replica, Replica];

    const command = slashCommandBody({ user: 'U0OPERATOR', channel: CHANNEL, text: 'park', slack: fake });
    expect((await postToBolt(first.base, command, signedHeaders(command, SECRET))).status).toBe(200);
    const approval = await eventually(
      'the approval message in the thread',
      () => fake.messages(CHANNEL).find((m) => m.thread_ts !== undefined && /Approval needed/.test(m.text)),
      { timeoutMs: 40_000 },
    );
    const root = fake.messages(CHANNEL).find((m) => m.thread_ts === undefined);
    trace('approval seen');
    const runId = /run id: (\w+)/.exec(JSON.stringify(root?.blocks))?.[1];
    if (!runId) throw new Error('no run id in the root message');

    // The run waits for a human. Once the mirroring replica has recorded where the approval message is (clicks
    // count only there), kill it; approve on the other one.
    const approvalAt = /"value":"(approval~[^"]+)"/.exec(JSON.stringify(approval.blocks))?.[1];
    await eventually('the approval message recorded in the thread cursor', () =>
      db.redis.hget(`${db.prefix}:slack:${runId}`, `approval:${approvalAt}`).then((v) => v ?? undefined),
    );
    const holder = await eventually('a replica to hold the thread', () =>
      db.redis.get(`${db.prefix}:slack:lease:${runId}`).then((v) => v ?? undefined),
    );
    const victim = replicas.find((r) => holder.startsWith(`${r.child.pid}-`));
    const survivor = replicas.find((r) => r !== victim);
    if (!victim || !survivor) throw new Error(`no replica holds ${holder}`);
    victim.child.kill('SIGKILL');
    trace('killing holder');
    await victim.exited;
    const approvalId = /"value":"(approval~[^"]+)"/.exec(JSON.stringify(approval.blocks))?.[1];
    if (!approvalId) throw new Error('no approval id on the buttons');
    const click = buttonClickBody({
      user: 'U0APPROVER',
      channel: CHANNEL,
      actionId: APPROVE_ACTION_ID,
      value: approvalId,
      messageTs: approval.ts,
    });
    expect((await postToBolt(survivor.base, click, signedHeaders(click, SECRET))).status).toBe(200);

    await eventually(
      'the root message to show the run succeeded',
      () => {
        const r = fake.messages(CHANNEL).find((m) => m.thread_ts === undefined);
        return r && /succeeded/i.test(r.text) ? r : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const messages = fake.messages(CHANNEL);
    trace('run succeeded');
    expect(messages.filter((m) => m.thread_ts === undefined)).toHaveLength(1);
    // Every event worth a post is in the thread exactly once, and so is the approval request.
    const entries = await new RunTimeline(db.redis, db.prefix).read(runId);
    // What one poster writes for each event, in order (step.finished names its step's title; a catch-up post
    // stands for the posts that waited behind the approval request).
    const requests = new Set(
      entries.flatMap((e) => (e.event.type === 'approval.requested' ? [e.event.approvalId] : [])),
    );
    const thread = messages.filter((m) => m.thread_ts === root?.ts);
    const posted = thread.filter((m) => !/Approval needed|Approved/.test(m.text)).map((m) => m.text);
    const expected = expectedPosts(entries, posted).map((p) => p.text);
    expect(thread.length).toBe(expected.length + requests.size);
    expect(posted).toEqual(expected);
    expect((await sim.journal()).filter((j) => j.ok && j.action === 'server.stop')).toHaveLength(1);
  });
});
