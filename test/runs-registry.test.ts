import { describe, expect, it } from 'vitest';
import { CapiError, ErrorCode } from '../src/errors.js';
import { type NewRunRecord, RunRegistry } from '../src/runs/registry.js';
import { useTestRedis } from './support/redis.js';

const db = useTestRedis();

/** A clock that moves one second per reading, so creation order is also time order. */
function steppingClock(start = Date.parse('2025-03-04T10:00:00.000Z')): () => Date {
  let t = start;
  return () => {
    t += 1000;
    return new Date(t);
  };
}

const newRun = (runId: string, extra: Partial<NewRunRecord> = {}): NewRunRecord => ({
  runId,
  runbook: 'stuck-delete',
  params: { cluster: 'prod-k8s' },
  site: 'site-a',
  queue: 'jobs',
  requestedBy: 'U0AAAAAAA',
  ...extra,
});

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(CapiError);
    return (err as CapiError).code;
  }
}

describe('RunRegistry.create/get', () => {
  it('should store a queued record and read it back when the run id is new', async () => {
    const registry = new RunRegistry(db.redis, db.prefix, {
      now: () => new Date('2025-03-04T10:00:00.000Z'),
    });
    const created = await registry.create(newRun('r1', { channel: 'C0123ABCD' }));
    expect(created).toEqual({
      ...newRun('r1', { channel: 'C0123ABCD' }),
      status: 'queued',
      createdAt: '2025-03-04T10:00:00.000Z',
      updatedAt: '2025-03-04T10:00:00.000Z',
    });
    expect(await registry.get('r1')).toEqual(created);
    expect(await db.redis.type(`${db.prefix}:run:r1`)).toBe('hash');
  });

  it('should refuse a second create and keep the first record when the run id exists', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    await registry.create(newRun('r1'));
    expect(await codeOf(registry.create(newRun('r1', { runbook: 'other' })))).toBe(ErrorCode.RunExists);
    expect((await registry.get('r1'))?.runbook).toBe('stuck-delete');
  });

  it('should let exactly one create win when the same run id is created in parallel', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => registry.create(newRun('r1'))));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('should return null when the run does not exist', async () => {
    expect(await new RunRegistry(db.redis, db.prefix).get('r-missing')).toBeNull();
  });

  it('should refuse a run id with a colon when it could collide with another key', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    expect(await codeOf(registry.create(newRun('r1:timeline')))).toBe(ErrorCode.RunIdInvalid);
    expect(await codeOf(registry.get('r1:timeline'))).toBe(ErrorCode.RunIdInvalid);
  });

  it('should throw StoredDataInvalid when the stored record is malformed', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    await registry.create(newRun('r1'));
    await db.redis.hset(`${db.prefix}:run:r1`, 'status', 'exploded', 'params', '{oops');
    const err = await registry.get('r1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapiError);
    expect((err as CapiError).code).toBe(ErrorCode.StoredDataInvalid);
    expect((err as CapiError).message).toContain('status');
    expect((err as CapiError).message).toContain('params');
  });
});

describe('RunRegistry.update', () => {
  it('should apply the patch and bump updatedAt when the run is active', async () => {
    const registry = new RunRegistry(db.redis, db.prefix, { now: steppingClock() });
    const created = await registry.create(newRun('r1'));
    const running = await registry.update('r1', { status: 'running', currentStep: 'inspect' });
    expect(running).toMatchObject({
      status: 'running',
      currentStep: 'inspect',
      createdAt: created.createdAt,
    });
    expect(Date.parse(running.updatedAt)).toBeGreaterThan(Date.parse(created.updatedAt));
    expect(running.finishedAt).toBeUndefined();
  });

  it('should set finishedAt when the status becomes final', async () => {
    const registry = new RunRegistry(db.redis, db.prefix, { now: steppingClock() });
    await registry.create(newRun('r1'));
    const done = await registry.update('r1', { status: 'succeeded', message: 'every step passed' });
    expect(done.finishedAt).toBe(done.updatedAt);
    // A later same-status patch keeps the original finish time.
    const corrected = await registry.update('r1', { message: 'every step passed (2 LBs deleted)' });
    expect(corrected.finishedAt).toBe(done.finishedAt);
    expect(corrected.message).toBe('every step passed (2 LBs deleted)');
  });

  it('should refuse another status with RunFinished when the run already finished', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    await registry.create(newRun('r1'));
    await registry.update('r1', { status: 'failed', message: 'inspect failed' });
    for (const status of ['running', 'succeeded', 'interrupted', 'cancelled'] as const) {
      expect(await codeOf(registry.update('r1', { status }))).toBe(ErrorCode.RunFinished);
    }
    expect((await registry.update('r1', { status: 'failed' })).status).toBe('failed');
    expect((await registry.get('r1'))?.message).toBe('inspect failed');
  });

  it('should let one final status win when two updates race to finish the run', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    await registry.create(newRun('r1'));
    const results = await Promise.allSettled([
      registry.update('r1', { status: 'succeeded' }),
      registry.update('r1', { status: 'cancelled' }),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect((await registry.get('r1'))?.status).toBe(won[0]?.status === 'fulfilled' && won[0].value.status);
  });

  it('should allow a run to resume when it was interrupted', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    await registry.create(newRun('r1'));
    await registry.update('r1', { status: 'interrupted' });
    expect((await registry.update('r1', { status: 'running' })).status).toBe('running');
  });

  it('should throw RunNotFound when the run does not exist', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    expect(await codeOf(registry.update('r-missing', { status: 'running' }))).toBe(ErrorCode.RunNotFound);
    expect(await db.redis.exists(`${db.prefix}:run:r-missing`)).toBe(0);
  });
});

describe('RunRegistry.requestCancel', () => {
  it('should record the first person who asked when cancel is requested twice', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    await registry.create(newRun('r1'));
    await registry.update('r1', { status: 'running' });
    expect((await registry.requestCancel('r1', 'U0BBBBBBB')).cancelRequestedBy).toBe('U0BBBBBBB');
    expect((await registry.requestCancel('r1', 'U0CCCCCCC')).cancelRequestedBy).toBe('U0BBBBBBB');
    expect((await registry.get('r1'))?.status).toBe('running');
  });

  it('should refuse with RunFinished when the run already finished', async () => {
    const registry = new RunRegistry(db.redis, db.prefix);
    await registry.create(newRun('r1'));
    await registry.update('r1', { status: 'succeeded' });
    expect(await codeOf(registry.requestCancel('r1', 'U0BBBBBBB'))).toBe(ErrorCode.RunFinished);
    expect(await codeOf(registry.requestCancel('r-missing', 'U0BBBBBBB'))).toBe(ErrorCode.RunNotFound);
  });
});

describe('RunRegistry.list', () => {
  async function seed(registry: RunRegistry): Promise<void> {
    // Created in this order, one second apart: r1 oldest, r6 newest.
    for (const id of ['r1', 'r2', 'r3', 'r4', 'r5', 'r6']) await registry.create(newRun(id));
    await registry.update('r1', { status: 'running' });
    await registry.update('r2', { status: 'succeeded' });
    await registry.update('r3', { status: 'waiting_approval' });
    await registry.update('r4', { status: 'failed' });
    await registry.update('r5', { status: 'cancelled' });
    // r6 stays queued.
  }

  it('should list active runs first, then finished ones, newest first when no filter is given', async () => {
    const registry = new RunRegistry(db.redis, db.prefix, { now: steppingClock() });
    await seed(registry);
    expect((await registry.list()).map((r) => r.runId)).toEqual(['r6', 'r3', 'r1', 'r5', 'r4', 'r2']);
    expect((await registry.list({ limit: 4 })).map((r) => r.runId)).toEqual(['r6', 'r3', 'r1', 'r5']);
    expect((await registry.list({ limit: 2 })).map((r) => r.runId)).toEqual(['r6', 'r3']);
  });

  it('should list only active or only finished runs when active is set', async () => {
    const registry = new RunRegistry(db.redis, db.prefix, { now: steppingClock() });
    await seed(registry);
    expect((await registry.list({ active: true })).map((r) => r.runId)).toEqual(['r6', 'r3', 'r1']);
    expect((await registry.list({ active: false })).map((r) => r.runId)).toEqual(['r5', 'r4', 'r2']);
    expect((await registry.list({ active: false, limit: 1 })).map((r) => r.runId)).toEqual(['r5']);
  });

  it('should skip and report a malformed record when listing', async () => {
    const reported: string[] = [];
    const registry = new RunRegistry(db.redis, db.prefix, {
      now: steppingClock(),
      onInvalid: (p) => reported.push(p.key),
    });
    await registry.create(newRun('r1'));
    await registry.create(newRun('r2'));
    await db.redis.hdel(`${db.prefix}:run:r1`, 'site');
    expect((await registry.list()).map((r) => r.runId)).toEqual(['r2']);
    expect(reported).toEqual([`${db.prefix}:run:r1`]);
  });
});
