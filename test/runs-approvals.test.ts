import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { ApprovalRequest } from '../src/engine/events.js';
import { CapiError, ErrorCode } from '../src/errors.js';
import { ApprovalStore, approvalId, type DecideResult } from '../src/runs/approvals.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const db = useTestRedis();

const RUN = 'r1test';
const T0 = new Date('2025-03-04T10:00:00.000Z');
const later = (ms: number) => new Date(T0.getTime() + ms);
const MINUTE = 60_000;

const request = (stepId = 'delete-lbs', summary = 'Delete 2 load balancers'): ApprovalRequest => ({
  runId: RUN,
  runbook: 'stuck-delete',
  step: { stepId, index: 2, total: 3 },
  title: 'Delete stale load balancers',
  summary,
  commands: ['openstack loadbalancer delete --cascade lb-a'],
  targets: ['lb-a'],
  evidence: ['provisioning_status=ERROR'],
  requestedBy: 'U0AAAAAAA',
});

function decisionOf(result: DecideResult) {
  return result.outcome === 'not_found' ? undefined : result.approval.decision;
}

describe('approvalId', () => {
  it('should give the same id when called again for the same run and step', () => {
    expect(approvalId(RUN, 'delete-lbs')).toBe(approvalId(RUN, 'delete-lbs'));
    expect(approvalId(RUN, 'delete-lbs/delete', 2)).toBe(approvalId(RUN, 'delete-lbs/delete', 2));
  });

  it('should be usable as a BullMQ job id when the step is inside a loop', () => {
    for (const id of [approvalId(RUN, 'delete-lbs'), approvalId('123', 'a:b/c d', 1)]) {
      expect(id).not.toContain(':');
      expect(id).not.toMatch(/^\d+$/);
    }
    expect(approvalId(RUN, 'delete-lbs/delete', 2)).toBe('approval~r1test~delete-lbs%2Fdelete~2');
  });

  it('should give different ids when run, step or iteration differ', () => {
    const ids = new Set([
      approvalId(RUN, 'a'),
      approvalId(RUN, 'a', 1),
      approvalId(RUN, 'a', 2),
      approvalId(RUN, 'a~1'),
      approvalId(RUN, 'b'),
      approvalId('r2test', 'a'),
    ]);
    expect(ids.size).toBe(6);
  });

  it('should refuse a run id that is not key-safe', () => {
    expect(() => approvalId('r1:x', 'a')).toThrow(CapiError);
  });
});

describe('ApprovalStore.create/get', () => {
  it('should store the request with its expiry when created', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    const created = await store.create(id, request(), 30 * MINUTE, T0);
    expect(created).toEqual({
      approvalId: id,
      runId: RUN,
      stepId: 'delete-lbs',
      request: request(),
      requestedAt: '2025-03-04T10:00:00.000Z',
      expiresAt: '2025-03-04T10:30:00.000Z',
    });
    expect(await store.get(id)).toEqual(created);
    expect(await store.get('approval~nope')).toBeNull();
  });

  it('should keep the first request and its expiry when created twice with the same id', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    const first = await store.create(id, request('delete-lbs', 'first'), 30 * MINUTE, T0);
    const again = await store.create(id, request('delete-lbs', 'second'), 90 * MINUTE, later(10 * MINUTE));
    expect(again).toEqual(first);
    expect((await store.get(id))?.request.summary).toBe('first');
    expect(await db.redis.zcard(`${db.prefix}:run:${RUN}:approvals`)).toBe(1);
  });

  it('should use the Redis clock when no time is given', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const before = Date.now();
    const created = await store.create(approvalId(RUN, 'delete-lbs'), request(), MINUTE);
    const requestedAt = Date.parse(created.requestedAt);
    // Redis and this process share a host here; allow for rounding only.
    expect(requestedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(requestedAt).toBeLessThanOrEqual(Date.now() + 1000);
    expect(Date.parse(created.expiresAt) - requestedAt).toBe(MINUTE);
  });

  it('should throw StoredDataInvalid when the stored request is malformed', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await store.create(id, request(), MINUTE, T0);
    await db.redis.hset(store.key(id), 'request', JSON.stringify({ runId: RUN }));
    const err = await store.get(id).catch((e: unknown) => e);
    expect((err as CapiError).code).toBe(ErrorCode.StoredDataInvalid);
  });
});

describe('ApprovalStore.decide', () => {
  it('should record the decision with who and when when the request is open', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await store.create(id, request(), 30 * MINUTE, T0);
    const result = await store.decide(id, { approved: true, by: 'U0BBBBBBB', via: 'slack' }, later(MINUTE));
    expect(result.outcome).toBe('decided');
    expect(decisionOf(result)).toEqual({ approved: true, by: 'U0BBBBBBB', at: '2025-03-04T10:01:00.000Z' });
    expect((await store.get(id))?.decidedVia).toBe('slack');
  });

  it('should store a denial with its reason and note when the approver denies', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await store.create(id, request(), 30 * MINUTE, T0);
    const result = await store.decide(id, { approved: false, by: 'U0BBBBBBB', note: 'wrong cluster' }, T0);
    expect(decisionOf(result)).toEqual({
      approved: false,
      by: 'U0BBBBBBB',
      at: T0.toISOString(),
      reason: 'denied',
      note: 'wrong cluster',
    });
  });

  it('should let exactly one decision win when two decide at once', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await store.create(id, request(), 30 * MINUTE, T0);
    const results = await Promise.all([
      store.decide(id, { approved: true, by: 'U0BBBBBBB' }, later(MINUTE)),
      store.decide(id, { approved: false, by: 'U0CCCCCCC' }, later(MINUTE)),
    ]);
    const outcomes = results.map((r) => r.outcome).sort();
    expect(outcomes).toEqual(['already_decided', 'decided']);
    const winner = results.find((r) => r.outcome === 'decided');
    const loser = results.find((r) => r.outcome === 'already_decided');
    // The loser is told who won, so the front can say "already approved by <@U…>".
    expect(decisionOf(loser as DecideResult)).toEqual(decisionOf(winner as DecideResult));
    expect((await store.get(id))?.decision).toEqual(decisionOf(winner as DecideResult));
  });

  it('should let exactly one decision win when two connections decide at once', async () => {
    const connections = [db.redis, new Redis(REDIS_URL), new Redis(REDIS_URL)];
    try {
      const stores = connections.map((c) => new ApprovalStore(c, db.prefix));
      const id = approvalId(RUN, 'delete-lbs');
      // No times given: creation and every decision use the Redis clock.
      await stores[0]?.create(id, request(), 30 * MINUTE);
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          (stores[i % stores.length] as ApprovalStore).decide(id, {
            approved: i % 2 === 0,
            by: `U0APPROVER${i}`,
          }),
        ),
      );
      expect(results.filter((r) => r.outcome === 'decided')).toHaveLength(1);
      expect(results.filter((r) => r.outcome === 'already_decided')).toHaveLength(11);
      const winner = decisionOf(results.find((r) => r.outcome === 'decided') as DecideResult);
      for (const r of results) expect(decisionOf(r)).toEqual(winner);
    } finally {
      await Promise.all(connections.slice(1).map((c) => c.quit()));
    }
  });

  it('should record the expiry instead of the decision when it comes after expiresAt', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await store.create(id, request(), 30 * MINUTE, T0);
    const result = await store.decide(id, { approved: true, by: 'U0BBBBBBB' }, later(30 * MINUTE));
    expect(result.outcome).toBe('expired');
    const expiry = {
      approved: false,
      by: 'expiry',
      at: '2025-03-04T10:30:00.000Z',
      reason: 'expired',
    };
    expect(decisionOf(result)).toEqual(expiry);
    expect((await store.get(id))?.decision).toEqual(expiry);
    // Later clicks keep hearing that it expired, not that someone decided.
    const again = await store.decide(id, { approved: true, by: 'U0CCCCCCC' }, later(31 * MINUTE));
    expect(again.outcome).toBe('expired');
    expect(decisionOf(again)).toEqual(expiry);
  });

  it('should keep a decision taken in time when someone clicks after expiresAt', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await store.create(id, request(), 30 * MINUTE, T0);
    await store.decide(id, { approved: true, by: 'U0BBBBBBB' }, later(MINUTE));
    const late = await store.decide(id, { approved: false, by: 'U0CCCCCCC' }, later(40 * MINUTE));
    expect(late.outcome).toBe('already_decided');
    expect(decisionOf(late)).toMatchObject({ approved: true, by: 'U0BBBBBBB' });
  });

  it('should answer not_found when the approval does not exist', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    expect(await store.decide('approval~missing', { approved: true, by: 'U0BBBBBBB' })).toEqual({
      outcome: 'not_found',
    });
    expect(await db.redis.exists(store.key('approval~missing'))).toBe(0);
  });
});

describe('ApprovalStore.expireIfDue', () => {
  it('should leave the request pending when it is not due yet', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await store.create(id, request(), 30 * MINUTE, T0);
    const result = await store.expireIfDue(id, later(29 * MINUTE));
    expect(result.outcome).toBe('pending');
    expect((await store.get(id))?.decision).toBeUndefined();
  });

  it('should record the expiry as a denial when it is due and undecided', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await store.create(id, request(), 30 * MINUTE, T0);
    const result = await store.expireIfDue(id, later(30 * MINUTE));
    expect(result.outcome).toBe('expired');
    expect((await store.get(id))?.decision).toEqual({
      approved: false,
      by: 'expiry',
      at: '2025-03-04T10:30:00.000Z',
      reason: 'expired',
    });
  });

  it('should keep the human decision when the request was decided before it was due', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await store.create(id, request(), 30 * MINUTE, T0);
    await store.decide(id, { approved: false, by: 'U0BBBBBBB' }, later(MINUTE));
    const result = await store.expireIfDue(id, later(60 * MINUTE));
    expect(result.outcome).toBe('already_decided');
    expect(result.outcome !== 'not_found' && result.approval.decision?.by).toBe('U0BBBBBBB');
    expect((await store.expireIfDue('approval~missing')).outcome).toBe('not_found');
  });
});

describe('ApprovalStore.pendingForRun', () => {
  it('should list only the undecided requests of the run when some were decided', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const a = approvalId(RUN, 'delete-lbs/delete', 1);
    const b = approvalId(RUN, 'delete-lbs/delete', 2);
    await store.create(a, request('delete-lbs/delete'), 30 * MINUTE, T0);
    await store.create(b, request('delete-lbs/delete'), 30 * MINUTE, later(MINUTE));
    await store.create(approvalId('r2test', 'x'), { ...request('x'), runId: 'r2test' }, MINUTE, T0);
    expect((await store.pendingForRun(RUN)).map((p) => p.approvalId)).toEqual([a, b]);
    await store.decide(a, { approved: true, by: 'U0BBBBBBB' }, later(2 * MINUTE));
    expect((await store.pendingForRun(RUN)).map((p) => p.approvalId)).toEqual([b]);
    expect(await store.pendingForRun('r-none')).toEqual([]);
  });
});
