import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WebClient } from '@slack/web-api';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMessage, type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { ThreadPoster } from '../src/slack/poster.js';
import {
  decideNext,
  type Harness,
  isType,
  quietLogger,
  startHarness,
  waitForEvent,
} from './support/agent.js';
import { useTestRedis } from './support/redis.js';
import { FAST_FAKE_SLACK, FAST_POSTER } from './support/slack-pace.js';

/**
 * Issue 22: the incident thread told as an on-call lead would tell it. Through the real agent, the simulated
 * cloud, the real ThreadPoster and the strict fake Slack: each approval message is its decision's whole
 * story, a step that only confirmed what was expected lives in the root's checklist, and items are named.
 */

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const TOKEN = ['xoxb', '2222222222', '3333333333333', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const CHANNEL = 'C0INCIDENT';
const LEAD = 'U0LEAD0001';
const APPROVER = 'U0APPROVER';

/** The outage with a third zombie amphora: recover asks four approvals (three deletions, one failover). */
const THREE_ZOMBIES = `
extends: outage
description: the outage, with a third zombie amphora server
servers:
  5e000000-0000-4000-8000-0000000000e3:
    name: amphora-a0000000-0000-4000-8000-0000000000e3
    project: services
    host: 4e000000-0000-4000-8000-000000000000
    flavor: f1000000-0000-4000-8000-0000000000a0
    image: 1e000000-0000-4000-8000-0000000000a0
    status: ERROR
    role: amphora
    age_s: 7000
`;

const db = useTestRedis();
let runbooks: RunbookSet;
let dir: string;
const stops: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
  dir = await mkdtemp(path.join(os.tmpdir(), 'capi-thread-story-'));
  await writeFile(path.join(dir, 'three-zombies.yaml'), THREE_ZOMBIES);
  return () => rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

interface World {
  readonly h: Harness;
  readonly fake: FakeSlack;
  readonly poster: ThreadPoster;
}

async function world(scenario: string): Promise<World> {
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
    runbooks,
    scenarios: [scenario],
    approvers: [APPROVER],
  });
  stops.push(() => h.stop());
  await h.startAgent();
  const poster = new ThreadPoster({
    client: new WebClient(TOKEN, {
      slackApiUrl: fake.url,
      rejectRateLimitedCalls: true,
      retryConfig: { retries: 0 },
    }),
    redis: db.redis,
    prefix: db.prefix,
    service: h.service,
    logger: quietLogger,
    ...FAST_POSTER,
  });
  stops.push(() => poster.close());
  return { h, fake, poster };
}

/** Every text a message shows: its fallback and each text of its blocks, as written. */
const text = (m: FakeMessage): string => {
  const texts: string[] = [m.text];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'text' && typeof x === 'string') texts.push(x);
        else walk(x);
      }
    }
  };
  walk(m.blocks);
  return texts.join('\n');
};

function threadOf(fake: FakeSlack): { root: FakeMessage; replies: FakeMessage[] } {
  const all = fake.messages(CHANNEL);
  const roots = all.filter((m) => m.thread_ts === undefined);
  expect(roots).toHaveLength(1);
  const root = roots[0] as FakeMessage;
  return { root, replies: all.filter((m) => m.thread_ts === root.ts) };
}

describe('the incident thread', () => {
  it('dump', async () => {
    const w = await world(path.join(dir, 'three-zombies.yaml'));
    const run = await w.h.submit('recover', { channel: CHANNEL, requestedBy: LEAD });
    w.poster.watch(run.runId);
    for (let i = 0; i < 4; i++) await decideNext(w.h.service, run.runId, true, APPROVER);
    const finished = await waitForEvent(w.h.service, run.runId, isType('run.finished'), 120_000);
    await w.poster.settled(run.runId);
    const { root, replies } = threadOf(w.fake);
    console.log(finished.status, '\nROOT:', text(root));
    for (const m of replies) console.log('-----', m.files ? `FILE ${m.files}` : '', '\n', text(m));
  }, 120_000);
});
