import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSlack } from '../dev/slack/fake-slack.js';
import { createLogger } from '../src/log.js';
import { createAuditLog } from '../src/ops/audit.js';
import { loadRunbooks } from '../src/runbook/load.js';
import { createSlackApp } from '../src/slack/app.js';
import { threadApprovalPlaces } from '../src/slack/click-place.js';
import { pacedWebClient } from '../src/slack/paced-slack.js';
import { ThreadPoster } from '../src/slack/poster.js';
import { ThreadCursors } from '../src/slack/thread-cursors.js';
import { isType, startHarness, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import {
  AMPHORA_ID,
  CORPUS_KEEP,
  CORPUS_SECRETS,
  LB_ID,
  PROJECT_ID,
  SECRET_CORPUS,
  SERVER_NAME,
} from './support/secret-corpus.js';
import { FAST_FAKE_SLACK, FAST_POSTER } from './support/slack-pace.js';
import { buttonClickBody, postToBolt, signedHeaders, slashCommandBody } from './support/slack-requests.js';

/**
 * The corpus through the whole product: a runbook whose command prints every corpus entry on a real sshd,
 * captures the output and shows it as approval evidence; an agent runs it, the thread poster mirrors it to the
 * (fake) Slack, an approver clicks. Then everything the product stored or sent is scanned: every Slack post
 * and edit, every ephemeral, every uploaded log file, every log and audit line, and every key under the run's
 * Redis prefix (timeline, checkpoint, approvals, records, BullMQ's jobs).
 */

const TOKEN = ['xoxb', '7777777777', '8888888888888', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const SIGNING = 'b1c2d3e4f5a60718293a4b5c6d7e8f90';
const CHANNEL = 'C0INCIDENT';
const LEAD = 'U0LEAD0001';
const APPROVER = 'U0APPROVER';

const corpusText = `${SECRET_CORPUS.map((e) => e.output).join('\n')}\n`;
// All of them, the short ones too: they mix upper case with lower case and digits (or are 32 hex characters
// derived from their own seeds), which none of the run ids, keys and stream ids the product stores do.
const SECRETS = CORPUS_SECRETS;

// The corpus sits in a file the jumphost's command prints: the run stores a copy of its runbook, so the runbook
// itself must hold none of it.
const leakRunbook = (corpusFile: string) => `name: leak
summary: Prints the secret corpus (test)
source: test
steps:
  - id: dump
    title: Print the credentials
    run: cat '${corpusFile}'
    capture:
      dump: out
    # A finding gives the step its post in the thread, and its long output the log file scanned below.
    decide:
      - when: "true"
        say: the credentials were printed
  - id: rotate
    title: Rotate on ${SERVER_NAME}
    destructive: true
    guard:
      - run: "true"
        skip_when: "false"
        say: nothing to rotate
    approval:
      summary: Rotate the credentials of ${SERVER_NAME}
      targets: ["${LB_ID}", "${SERVER_NAME}", "amphora-${AMPHORA_ID}"]
      evidence: ["{dump}"]
    verify:
      run: "true"
      took_effect: "true"
      say: rotated
      check_by_hand: openstack server show ${SERVER_NAME}
    run: echo rotated
`;

const db = useTestRedis();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capi-corpus-'));
  await copyFile(new URL('../commands/scopes.yaml', import.meta.url), path.join(dir, 'scopes.yaml'));
  const corpusFile = path.join(dir, 'corpus.txt');
  await writeFile(corpusFile, corpusText);
  await writeFile(path.join(dir, 'leak.yaml'), leakRunbook(corpusFile));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every value under the test's Redis prefix, as text. */
async function redisText(prefix: string): Promise<string> {
  const keys = await db.redis.keys(`${prefix}*`);
  const parts: string[] = [];
  for (const key of keys) {
    const type = await db.redis.type(key);
    if (type === 'string') parts.push((await db.redis.get(key)) ?? '');
    else if (type === 'hash') parts.push(JSON.stringify(await db.redis.hgetall(key)));
    else if (type === 'stream') parts.push(JSON.stringify(await db.redis.xrange(key, '-', '+')));
    else if (type === 'list') parts.push(JSON.stringify(await db.redis.lrange(key, 0, -1)));
    else if (type === 'set') parts.push(JSON.stringify(await db.redis.smembers(key)));
    else if (type === 'zset') parts.push(JSON.stringify(await db.redis.zrange(key, 0, -1)));
    parts.push(key);
  }
  return parts.join('\n');
}

function expectNoSecret(where: string, text: string): void {
  const found = SECRETS.filter((s) => text.includes(s));
  expect(found, `${where} holds corpus secrets`).toEqual([]);
}

describe('the secret corpus through a real run', () => {
  it('should show ids and names and no secret in Slack, uploaded files, logs, audit, the timeline or Redis', async () => {
    const stops: (() => Promise<unknown>)[] = [];
    const logLines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        logLines.push(String(chunk));
        done();
      },
    });
    const logger = createLogger({ level: 'debug', destination: sink });
    const audit = createAuditLog({ destination: sink });
    try {
      const fake = await startFakeSlack({
        token: TOKEN,
        channels: [CHANNEL],
        users: { [LEAD]: { groups: [] }, [APPROVER]: { groups: [] } },
        ...FAST_FAKE_SLACK,
      });
      stops.push(() => fake.close());
      const h = await startHarness({
        redis: db.redis,
        prefix: db.prefix,
        runbooks: await loadRunbooks(dir),
        scenarios: ['healthy'],
        approvers: [APPROVER],
        service: { audit, logger },
      });
      stops.push(() => h.stop());
      await h.startAgent({ logger, audit });
      const poster = new ThreadPoster({
        client: pacedWebClient(TOKEN, { slackApiUrl: fake.url }),
        redis: db.redis,
        prefix: db.prefix,
        service: h.service,
        logger,
        ...FAST_POSTER,
      });
      stops.push(() => poster.close());
      const app = createSlackApp({
        slack: { botToken: TOKEN, signingSecret: SIGNING, apiUrl: fake.url, port: 0 },
        approvers: [APPROVER],
        operators: [LEAD],
        service: h.service,
        sites: h.sites,
        logger,
        threads: poster,
        approvalPlaces: threadApprovalPlaces(new ThreadCursors(db.redis, db.prefix)),
        webApiRetries: 0,
      });
      const server = (await app.start(0)) as Server;
      stops.push(() => app.stop());
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const send = async (body: string) =>
        expect((await postToBolt(base, body, signedHeaders(body, SIGNING))).status).toBe(200);

      await send(slashCommandBody({ user: LEAD, channel: CHANNEL, text: 'leak', slack: fake }));
      const approvalId = await eventually(
        'an approval with buttons in the channel',
        () =>
          fake
            .messages(CHANNEL)
            .map((m) => /"value":"(approval~[^"]+)"/.exec(JSON.stringify(m.blocks))?.[1])
            .find((id) => id !== undefined),
        { timeoutMs: 60_000 },
      );
      // Parked at the approval: the checkpoint holds what `dump` captured.
      const parked = await redisText(db.prefix);
      expect(parked).toContain(':checkpoint');
      expectNoSecret('Redis while the run waits for approval', parked);

      // The requester's own click is refused (an ephemeral and a timeline line), then the approver's goes;
      // both on the approval message, where a person clicks.
      const messageTs = await eventually('the approval message recorded', async () =>
        (
          await new ThreadCursors(db.redis, db.prefix).load(
            /approval~([^~]+)~/.exec(approvalId)?.[1] as string,
          )
        ).approvals.get(approvalId),
      );
      await send(
        buttonClickBody({
          user: LEAD,
          channel: CHANNEL,
          actionId: 'capi_approve',
          value: approvalId,
          messageTs,
        }),
      );
      await send(
        buttonClickBody({
          user: APPROVER,
          channel: CHANNEL,
          actionId: 'capi_approve',
          value: approvalId,
          messageTs,
        }),
      );
      const runId = /approval~([^~]+)~/.exec(approvalId)?.[1] as string;
      expect((await waitForEvent(h.service, runId, isType('run.finished'), 60_000)).status).toBe('succeeded');
      await poster.settled(runId);
      await send(slashCommandBody({ user: LEAD, channel: CHANNEL, text: `status ${runId}`, slack: fake }));
      await send(slashCommandBody({ user: LEAD, channel: CHANNEL, text: `timeline ${runId}`, slack: fake }));
      await eventually('the timeline upload', () =>
        fake.files().find((f) => f.filename.endsWith('-timeline.md')),
      );

      const posts = JSON.stringify(fake.messages(CHANNEL));
      const calls = JSON.stringify(fake.calls.map((c) => c.args));
      const ephemerals = JSON.stringify(fake.ephemerals(CHANNEL));
      const files = fake.files().map((f) => `${f.filename}\n${f.title}\n${f.bytes.toString('utf8')}`);
      expect(files.some((f) => f.includes('-dump.log'))).toBe(true);
      expectNoSecret('Slack posts', posts);
      expectNoSecret('Slack API calls (every edit included)', calls);
      expectNoSecret('ephemerals', ephemerals);
      for (const f of files) expectNoSecret(`the uploaded file ${f.split('\n')[0]}`, f);
      expectNoSecret('log and audit lines', logLines.join(''));
      expectNoSecret('Redis after the run', await redisText(db.prefix));

      // False positives in check: what operators act on is still there.
      expect(posts).toContain(LB_ID);
      expect(posts).toContain(SERVER_NAME);
      expect(posts).toContain(AMPHORA_ID);
      const dumpLog = files.find((f) => f.includes('-dump.log')) ?? '';
      for (const keep of CORPUS_KEEP) expect(dumpLog, `${keep} lost from the step log`).toContain(keep);
      expect(dumpLog).toContain(PROJECT_ID);
      expect(logLines.some((l) => l.includes('"audit":true'))).toBe(true);
    } finally {
      for (const stop of stops.reverse()) await stop();
    }
  }, 120_000);
});
