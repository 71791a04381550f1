import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';
import { events, isType, waitForEvent } from './support/agent.js';
import { useTestRedis } from './support/redis.js';
import { useSlackFronts } from './support/slack-front.js';

/**
 * `sensitive: true` through the whole product: an agent runs the steps on a real sshd, the thread poster
 * mirrors the run to the (fake) Slack, and the words the steps printed are then looked for in every Slack call,
 * every log line and every key under the run's Redis prefix (timeline, checkpoint, record). The words are not
 * shaped like a secret, so redaction would not hide them: only the steps' `sensitive: true` does.
 */

const CHANNEL = 'C0INCIDENT';
const WORD = 'kangaroo-VIOLET-29';
const OTHER = 'wombat-AMBER-31';
// The runbook prints the words from two halves: the run stores a copy of its runbook, which must not be what
// makes the words show up under the run's Redis prefix.
const WORD_PARTS = 'kangaroo VIOLET-29';
const OTHER_PARTS = 'wombat AMBER-31';

const PEEK = `name: peek
summary: Reads a credential and checks another (test)
source: test
steps:
  - id: read
    title: Read the service credential
    sensitive: true
    run: |
      printf 'credential %s-%s\\nsecond line\\n' ${WORD_PARTS}
      printf 'note %s-%s\\n' ${WORD_PARTS} >&2
    parse: lines
    capture:
      first: out[0]
    summary: "read {len(out)} line(s)"
  - id: check
    title: Check the other credential
    sensitive: true
    run: |
      printf 'expected %s-%s\\n' ${OTHER_PARTS} >&2
      exit 3
`;

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capi-sensitive-'));
  await copyFile(new URL('../commands/scopes.yaml', import.meta.url), path.join(dir, 'scopes.yaml'));
  await writeFile(path.join(dir, 'peek.yaml'), PEEK);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every value under the test's Redis prefix, as text. */
async function redisText(prefix: string): Promise<string> {
  const parts: string[] = [];
  for (const key of await db.redis.keys(`${prefix}*`)) {
    const type = await db.redis.type(key);
    if (type === 'string') parts.push((await db.redis.get(key)) ?? '');
    else if (type === 'hash') parts.push(JSON.stringify(await db.redis.hgetall(key)));
    else if (type === 'stream') parts.push(JSON.stringify(await db.redis.xrange(key, '-', '+')));
    else if (type === 'list') parts.push(JSON.stringify(await db.redis.lrange(key, 0, -1)));
    else if (type === 'zset') parts.push(JSON.stringify(await db.redis.zrange(key, 0, -1)));
  }
  return parts.join('\n');
}

describe('a sensitive step', () => {
  it('should keep its output out of the timeline, Slack and the logs, and show only its summary', async () => {
    const logLines: string[] = [];
    const logger = createLogger({
      level: 'debug',
      destination: new Writable({
        write(chunk, _enc, done) {
          logLines.push(String(chunk));
          done();
        },
      }),
    });
    const front = await startSlackFront({
      runbooks: dir,
      channels: [CHANNEL],
      service: { logger },
      agent: { logger },
      logger,
      app: false,
    });
    const { fake, harness: h, poster } = front;

    const { runId } = await h.submit('peek', { channel: CHANNEL });
    poster.watch(runId);
    const finished = await waitForEvent(h.service, runId, isType('run.finished'), 60_000);
    await poster.settled(runId);

    // What people are told: the first step's summary, and why the second failed, without its output.
    expect(finished.status).toBe('failed');
    expect(finished.message).toBe('check: exited 3: (output not shown: the step is sensitive)');
    const timeline = events(await h.service.readTimeline(runId));
    expect(timeline.filter((e) => e.type === 'step.output')).toEqual([]);
    expect(timeline.find((e) => e.type === 'step.finished' && e.stepId === 'read')).toMatchObject({
      status: 'ok',
      summary: 'read 2 line(s)',
    });
    const slack = JSON.stringify(fake.calls.map((c) => c.args));
    expect(slack).toContain('read 2 line(s)');

    for (const [where, text] of [
      ['Slack API calls', slack],
      ['log lines', logLines.join('')],
      ['Redis (timeline, checkpoint, records)', await redisText(db.prefix)],
    ] as const) {
      expect(text.includes(WORD), `${where} hold the first step's output`).toBe(false);
      expect(text.includes(OTHER), `${where} hold the failed step's output`).toBe(false);
    }
  }, 90_000);
});
