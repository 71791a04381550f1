import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Job, Queue } from 'bullmq';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointStore } from '../src/agent/checkpoints.js';
import { RunRetention } from '../src/agent/retention.js';
import type { RunEvent } from '../src/engine/events.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { ApprovalStore } from '../src/runs/approvals.js';
import { AttemptJournal } from '../src/runs/attempts.js';
import { RunFences } from '../src/runs/fence.js';
import { RunRegistry } from '../src/runs/registry.js';
import { RunTimeline } from '../src/runs/timeline.js';
import { approveEverything, type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;
const HOUR = 3_600_000;
const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  await h?.stop();
  h = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

function retention(retentionMs: number): RunRetention {
  const { redis, prefix } = db;
  return new RunRetention({
    redis,
    prefix,
    retentionMs,
    registry: new RunRegistry(redis, prefix),
    timeline: new RunTimeline(redis, prefix),
    approvals: new ApprovalStore(redis, prefix),
    attempts: new AttemptJournal(redis, prefix),
    fences: new RunFences(redis, prefix),
    checkpoints: new CheckpointStore(redis, prefix),
  });
}

/** Runs park to the end, approving its step; the poster's cursor is written while it runs, as serve does. */
async function finishedPark(hh: Harness): Promise<string> {
  const run = await hh.service.submit({
    runbook: 'park',
    args: [],
    site: 'site-0',
    requestedBy: 'U_REQUESTER',
  });
  await db.redis.hset(`${db.prefix}:slack:${run.runId}`, 'rootTs', '1.000001');
  const approver = new AbortController();
  const approving = approveEverything(hh.service, run.runId, approver.signal);
  expect((await waitForEvent(hh.service, run.runId, isType('run.finished'))).status).toBe('succeeded');
  approver.abort();
  await approving;
  return run.runId;
}

describe('run retention', () => {
  it('should give every key of a finished run the retention as expiry, and export the run before it goes', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent({ retentionMs: 2 * HOUR });
    const runId = await finishedPark(h);

    const approvals = await new ApprovalStore(db.redis, db.prefix).allForRun(runId);
    expect(approvals).toHaveLength(1);
    const runKeys = [
      `${db.prefix}:run:${runId}`,
      `${db.prefix}:run:${runId}:timeline`,
      `${db.prefix}:run:${runId}:timeline:meta`,
      `${db.prefix}:run:${runId}:approvals`,
      `${db.prefix}:run:${runId}:approval-slots`,
      `${db.prefix}:run:${runId}:attempts`,
      `${db.prefix}:run:${runId}:fence`,
      `${db.prefix}:run:${runId}:runbook`,
      `${db.prefix}:slack:${runId}`,
      `${db.prefix}:approval:${approvals[0]?.approvalId}`,
    ];
    // Every key the run left outside BullMQ's own is one of those, and each expires within the retention.
    const left = (await db.redis.keys(`${db.prefix}:*`)).filter(
      (k) => !k.startsWith(`${db.prefix}:jobs`) && k !== `${db.prefix}:runs`,
    );
    expect(left.sort()).toEqual([...runKeys].sort());
    for (const key of runKeys) {
      const ttl = await db.redis.pttl(key);
      expect(ttl, key).toBeGreaterThan(2 * HOUR - 60_000);
      expect(ttl, key).toBeLessThanOrEqual(2 * HOUR);
    }

    const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-export-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [BIN, 'export', runId, '--out', path.join(dir, 'postmortems')],
      { env: { ...process.env, REDIS_URL, QUEUE_PREFIX: db.prefix } },
    );
    expect(stdout).toMatch(/expires from Redis on \d{4}-\d\d-\d\dT/);
    const md = await readFile(path.join(dir, 'postmortems', `${runId}.md`), 'utf8');
    expect(md).toContain(`# Run ${runId}: park on site-0`);
    expect(md).toContain('**run succeeded**');
    const json = JSON.parse(await readFile(path.join(dir, 'postmortems', `${runId}.json`), 'utf8'));
    expect(json.record).toMatchObject({ runId, status: 'succeeded', requestedBy: 'U_REQUESTER' });
    expect(json.approvals).toEqual([
      expect.objectContaining({ decision: expect.objectContaining({ approved: true, by: 'U0APPROVER' }) }),
    ]);
    expect(json.attempts).toEqual([
      expect.objectContaining({ stepId: 'stop-mgmt-vm', outcome: expect.objectContaining({ exitCode: 0 }) }),
    ]);
    expect(json.timeline.map((e: { event: RunEvent }) => e.event.type).at(-1)).toBe('run.finished');
  });

  it('should forget expired runs and expire finished runs that have no expiry when the index is swept', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    const newRun = async (runId: string, status?: 'succeeded') => {
      await registry.create({
        runId,
        runbook: 'park',
        params: {},
        site: 's',
        requestedBy: 'U1',
        queue: 'jobs',
      });
      if (status) await registry.update(runId, { status });
    };
    // Finished before retention existed: no expiry anywhere.
    await newRun('r-legacy', 'succeeded');
    await db.redis.xadd(`${db.prefix}:run:r-legacy:timeline`, '*', 'v', '1', 'e', '{}');
    // Expired: the record is gone, the index and a cursor written after the expiry are left.
    await newRun('r-expired', 'succeeded');
    await db.redis.del(`${db.prefix}:run:r-expired`);
    await db.redis.hset(`${db.prefix}:slack:r-expired`, 'done', '1');
    // Still running: left alone.
    await newRun('r-active');

    expect(await retention(HOUR).sweep()).toEqual({ forgotten: 1, expired: 1 });
    expect(await db.redis.zrange(`${db.prefix}:runs`, 0, -1)).toEqual(['r-legacy', 'r-active']);
    expect(await db.redis.exists(`${db.prefix}:slack:r-expired`)).toBe(0);
    expect(await db.redis.pttl(`${db.prefix}:run:r-legacy`)).toBeGreaterThan(HOUR - 60_000);
    expect(await db.redis.pttl(`${db.prefix}:run:r-legacy:timeline`)).toBeGreaterThan(HOUR - 60_000);
    expect(await db.redis.pttl(`${db.prefix}:run:r-active`)).toBe(-1);
    expect((await registry.list({ limit: 10 })).map((r) => r.runId).sort()).toEqual(['r-active', 'r-legacy']);
  });

  it('should sweep on a timer in every agent', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    const registry = new RunRegistry(db.redis, db.prefix);
    await registry.create({
      runId: 'r-gone',
      runbook: 'park',
      params: {},
      site: 's',
      requestedBy: 'U1',
      queue: 'jobs',
    });
    await db.redis.del(`${db.prefix}:run:r-gone`);
    await h.startAgent({ retentionSweepMs: 50 });
    await eventually('the sweep to forget r-gone', async () =>
      (await db.redis.zscore(`${db.prefix}:runs`, 'r-gone')) === null ? true : undefined,
    );
  });

  it("should keep only as many finished BullMQ jobs as the service's job retention says", async () => {
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks,
      scenarios: ['healthy'],
      service: { jobRetention: { ageSeconds: 3600, count: 1 } },
    });
    await h.startAgent();
    const first = await finishedPark(h);
    const second = await finishedPark(h);
    const queue = new Queue('jobs', { connection: db.redis, prefix: db.prefix });
    cleanups.push(() => queue.close());
    await eventually('BullMQ to drop the older job', async () =>
      (await Job.fromId(queue, first)) === undefined ? true : undefined,
    );
    expect(await (await Job.fromId(queue, second))?.isCompleted()).toBe(true);
  });
});

describe('the per-run output bound in bytes', () => {
  it('should stop storing output once a run has stored its bytes, say how much was left out, and keep later events', async () => {
    const timeline = new RunTimeline(db.redis, db.prefix, { maxOutputBytesPerRun: 4096 });
    const ref = { stepId: 'dump', index: 1, total: 1 };
    const line = 'x'.repeat(1000);
    for (let i = 0; i < 10; i++) {
      await timeline.append('r1', { ...ref, type: 'step.output', stream: 'stdout', line: `${i} ${line}` });
    }
    await timeline.append('r1', {
      type: 'run.finished',
      status: 'succeeded',
      message: 'done',
      durationMs: 1,
    });
    const events = (await timeline.read('r1')).map((e) => e.event);
    const lines = events.flatMap((e) => (e.type === 'step.output' ? [e.line] : []));
    // Three lines of about 1.1 kB each fit in 4 kB; the fourth would not.
    expect(lines.slice(0, 3).map((l) => l.split(' ')[0])).toEqual(['0', '1', '2']);
    // Lines 3-9 were dropped: 1002 bytes each.
    expect(lines.slice(3)).toEqual(['[... output truncated: 7 more lines (7014 bytes) not stored ...]']);
    expect(events.at(-1)?.type).toBe('run.finished');
    expect(
      Number(await db.redis.hget(`${db.prefix}:run:r1:timeline:meta`, 'outputBytes')),
    ).toBeLessThanOrEqual(4096);
  });
});
