import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { RunEvent } from '../src/engine/events.js';
import { REDACTED } from '../src/redact.js';
import { RunTimeline, type TimelineEntry } from '../src/runs/timeline.js';
import { approvalRequest, recoverStarted, ref, stepOutput } from './support/events.js';
import { eventually } from './support/eventually.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const db = useTestRedis();

const clients = async () => (await db.redis.client('LIST')) as string;

/** Resolves once a connection with this name is blocked in XREAD, i.e. follow() is waiting for new entries. */
async function blockedFollower(name: string): Promise<void> {
  await eventually(
    `a blocked XREAD from ${name}`,
    async () =>
      (await clients()).split('\n').some((l) => l.includes(`name=${name} `) && /\bcmd=xread\b/.test(l))
        ? true
        : undefined,
    { timeoutMs: 5000, intervalMs: 2 },
  );
}

async function followerGone(name: string): Promise<void> {
  await eventually(
    `${name} to disconnect`,
    async () => ((await clients()).includes(`name=${name} `) ? undefined : true),
    { timeoutMs: 5000, intervalMs: 2 },
  );
}

const started = recoverStarted;
const RUN = started.runId;
const output = (line: string): RunEvent => stepOutput(ref('inspect', 1), line);
const finished: RunEvent = { type: 'run.finished', status: 'succeeded', message: 'done', durationMs: 1234 };

describe('RunTimeline.append/read', () => {
  it('should read events back in order with server timestamps when they were appended', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const before = Date.now();
    const ids = [
      await timeline.append(RUN, started),
      await timeline.append(RUN, output('hello')),
      await timeline.append(RUN, finished),
    ];
    const entries = await timeline.read(RUN);
    expect(entries.map((e) => e.id)).toEqual(ids);
    expect(entries.map((e) => e.event)).toEqual([started, output('hello'), finished]);
    for (const e of entries) {
      expect(Date.parse(e.at)).toBeGreaterThanOrEqual(before - 1000);
      expect(Date.parse(e.at)).toBeLessThanOrEqual(Date.now() + 1000);
      expect(e.at).toBe(new Date(Number(e.id.split('-')[0])).toISOString());
    }
    expect(await db.redis.type(timeline.streamKey(RUN))).toBe('stream');
  });

  it('should return only later entries, up to count, when afterId and count are given', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const first = await timeline.append(RUN, started);
    for (let i = 0; i < 5; i++) await timeline.append(RUN, output(`line ${i}`));
    const page = await timeline.read(RUN, first ?? undefined, 2);
    expect(page.map((e) => (e.event.type === 'step.output' ? e.event.line : e.event.type))).toEqual([
      'line 0',
      'line 1',
    ]);
    const rest = await timeline.read(RUN, page[1]?.id);
    expect(rest).toHaveLength(3);
    expect(await timeline.read('r-never-ran')).toEqual([]);
  });

  it('should redact secrets in every string when an event is stored', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const request = approvalRequest(ref('delete-lbs', 3), {
      commands: ['openstack --os-password hunter2hunter2 loadbalancer delete lb-a'],
      evidence: ['OS_PASSWORD=hunter2hunter2 was in the env'],
    });
    await timeline.append(RUN, output('password: hunter2hunter2'));
    await timeline.append(RUN, {
      ...ref('delete-lbs', 3),
      type: 'approval.requested',
      approvalId: 'approval~x',
      request,
    });
    const raw = JSON.stringify(await db.redis.xrange(timeline.streamKey(RUN), '-', '+'));
    expect(raw).not.toContain('hunter2');
    const [out, asked] = await timeline.read(RUN);
    expect(out?.event).toMatchObject({ line: `password: ${REDACTED}` });
    expect(asked?.event.type === 'approval.requested' && asked.event.request.evidence[0]).toBe(
      `OS_PASSWORD=${REDACTED}`,
    );
    expect(asked?.event.type === 'approval.requested' && asked.event.request.commands[0]).toBe(
      `openstack --os-password ${REDACTED} loadbalancer delete lb-a`,
    );
  });

  it('should store an event once when the same dedupeKey is appended 20 times in parallel', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const results = await Promise.all(
      Array.from({ length: 20 }, () => timeline.append(RUN, output('once'), 'inspect:out:1')),
    );
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(await timeline.read(RUN)).toHaveLength(1);
    // A different key is a different event.
    expect(await timeline.append(RUN, output('once'), 'inspect:out:2')).not.toBeNull();
    expect(await timeline.read(RUN)).toHaveLength(2);
  });

  it('should store an event once when two connections append the same dedupeKey', async () => {
    const other = new Redis(REDIS_URL);
    try {
      const a = new RunTimeline(db.redis, db.prefix);
      const b = new RunTimeline(other, db.prefix);
      const results = await Promise.all([
        ...Array.from({ length: 10 }, () => a.append(RUN, started, 'run.started')),
        ...Array.from({ length: 10 }, () => b.append(RUN, started, 'run.started')),
      ]);
      expect(results.filter((r) => r !== null)).toHaveLength(1);
      expect(await a.read(RUN)).toHaveLength(1);
    } finally {
      await other.quit();
    }
  });

  it('should keep one truncation line and count the rest when output exceeds maxOutputLinesPerRun', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix, { maxOutputLinesPerRun: 3 });
    await timeline.append(RUN, started);
    const ids: (string | null)[] = [];
    for (let i = 1; i <= 10; i++) {
      ids.push(await timeline.append(RUN, output(`line ${i}`)));
      if (i === 6) await timeline.append(RUN, { ...ref('inspect', 1), type: 'decision', message: 'mid' });
    }
    await timeline.append(RUN, finished);

    expect(ids.slice(0, 4).every((id) => id !== null)).toBe(true);
    expect(ids.slice(4)).toEqual([null, null, null, null, null, null]);
    const lines = (await timeline.read(RUN)).map((e) =>
      e.event.type === 'step.output' ? e.event.line : e.event.type,
    );
    expect(lines).toEqual([
      'run.started',
      'line 1',
      'line 2',
      'line 3',
      '[... output truncated: 7 more lines (43 bytes) not stored ...]',
      'decision',
      'run.finished',
    ]);
    expect(await db.redis.xlen(timeline.streamKey(RUN))).toBe(7);
  });

  it('should not count a re-emitted output line twice when it carries the same dedupeKey', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix, { maxOutputLinesPerRun: 2 });
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 1; i <= 3; i++) await timeline.append(RUN, output(`line ${i}`), `out:${i}`);
    }
    const lines = (await timeline.read(RUN)).map((e) => (e.event.type === 'step.output' ? e.event.line : ''));
    expect(lines).toEqual([
      'line 1',
      'line 2',
      '[... output truncated: 1 more lines (6 bytes) not stored ...]',
    ]);
  });

  it('should skip and report malformed entries when the stream holds foreign data', async () => {
    const reported: string[] = [];
    const timeline = new RunTimeline(db.redis, db.prefix, { onInvalid: (p) => reported.push(p.id) });
    const key = timeline.streamKey(RUN);
    await timeline.append(RUN, started);
    const noEvent = await db.redis.xadd(key, '*', 'x', 'y');
    const notJson = await db.redis.xadd(key, '*', 'e', '{not json');
    const wrongShape = await db.redis.xadd(key, '*', 'e', JSON.stringify({ type: 'step.output', line: 3 }));
    const unknownType = await db.redis.xadd(key, '*', 'e', JSON.stringify({ type: 'run.exploded' }));
    await timeline.append(RUN, finished);

    const entries = await timeline.read(RUN);
    expect(entries.map((e) => e.event.type)).toEqual(['run.started', 'run.finished']);
    expect(reported).toEqual([noEvent, notJson, wrongShape, unknownType]);
  });
});

describe('RunTimeline.follow', () => {
  it('should yield entries appended after it started and end at run.finished', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const startId = await timeline.append(RUN, started);
    const seen: TimelineEntry[] = [];
    const done = (async () => {
      for await (const entry of timeline.follow(RUN, startId ?? '0', new AbortController().signal)) {
        seen.push(entry);
      }
    })();
    await blockedFollower(`${db.prefix}:follow:${RUN}`);
    await timeline.append(RUN, output('one'));
    await timeline.append(RUN, output('two'));
    await timeline.append(RUN, finished);
    await done;
    expect(seen.map((e) => e.event.type)).toEqual(['step.output', 'step.output', 'run.finished']);
    // The follower's own connection is closed once the run is over.
    await followerGone(`${db.prefix}:follow:${RUN}`);
  });

  it('should only yield new entries when afterId is $', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    await timeline.append(RUN, started);
    await timeline.append(RUN, output('old'));
    const iterator = timeline.follow(RUN, '$', new AbortController().signal)[Symbol.asyncIterator]();
    const next = iterator.next();
    await blockedFollower(`${db.prefix}:follow:${RUN}`);
    await timeline.append(RUN, output('new'));
    const first = await next;
    expect(first.done).toBe(false);
    expect(first.value).toMatchObject({ event: { line: 'new' } });
    await iterator.return?.();
  });

  it('should replay the stored entries and end at once when the run already finished', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    await timeline.append(RUN, started);
    await timeline.append(RUN, finished);
    const seen: string[] = [];
    for await (const e of timeline.follow(RUN, '0', new AbortController().signal)) seen.push(e.event.type);
    expect(seen).toEqual(['run.started', 'run.finished']);
  });

  it('should end without error when the signal aborts while it waits', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix);
    const controller = new AbortController();
    const seen: TimelineEntry[] = [];
    const done = (async () => {
      for await (const e of timeline.follow(RUN, '0', controller.signal)) seen.push(e);
    })();
    await blockedFollower(`${db.prefix}:follow:${RUN}`);
    controller.abort();
    await expect(done).resolves.toBeUndefined();
    expect(seen).toEqual([]);
    await followerGone(`${db.prefix}:follow:${RUN}`);
    // The shared connection was never blocked.
    expect(await db.redis.ping()).toBe('PONG');
  });
});
