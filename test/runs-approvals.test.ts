import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { ApprovalRequest } from '../src/engine/events.js';
import { itemKey } from '../src/engine/slot.js';
import { CapiError, ErrorCode, RunFencedError } from '../src/errors.js';
import { ApprovalStore, approvalId, type DecideResult } from '../src/runs/approvals.js';
import { RunFences } from '../src/runs/fence.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const db = useTestRedis();

const RUN = 'r1test';
const T0 = new Date('2025-03-04T10:00:00.000Z');
const later = (ms: number) => new Date(T0.getTime() + ms);
const MINUTE = 60_000;
/** The identity key of load balancer n (what the engine derives from the values a loop binds). */
const lb = (n: number) => itemKey({}, { LB_ID: `lb-${n}` });

const request = (
  stepId = 'delete-lbs',
  summary = 'Delete 2 load balancers',
  n?: number,
  digest = 'd1gest',
): ApprovalRequest => ({
  runId: RUN,
  runbook: 'stuck-delete',
  step: {
    stepId,
    index: 2,
    total: 3,
    ...(n === undefined ? {} : { iteration: { n, of: 2, label: `lb-${n}`, key: lb(n) } }),
  },
  title: 'Delete stale load balancers',
  summary,
  commands: ['openstack loadbalancer delete --cascade lb-a'],
  targets: ['lb-a'],
  evidence: ['provisioning_status=ERROR'],
  requestedBy: 'U0AAAAAAA',
  digest,
});

/** Opens a request the way the agent does; returns what was stored. */
async function create(store: ApprovalStore, req: ApprovalRequest, timeoutMs: number, now?: Date) {
  const opened = await store.open(req, { timeoutMs, ...(now ? { now } : {}) });
  return opened.approval;
}

function decisionOf(result: DecideResult) {
  return result.outcome === 'not_found' ? undefined : result.approval.decision;
}

describe('approvalId', () => {
  it('should give the same id when called again for the same run and step', () => {
    expect(approvalId(RUN, 'delete-lbs')).toBe(approvalId(RUN, 'delete-lbs'));
    expect(approvalId(RUN, 'delete-lbs/delete', lb(2))).toBe(approvalId(RUN, 'delete-lbs/delete', lb(2)));
  });

  it('should be usable as a BullMQ job id when the step is inside a loop', () => {
    for (const id of [approvalId(RUN, 'delete-lbs'), approvalId('123', 'a:b/c d', lb(1))]) {
      expect(id).not.toContain(':');
      expect(id).not.toMatch(/^\d+$/);
    }
    expect(approvalId(RUN, 'delete-lbs/delete', lb(2))).toBe(`approval~r1test~delete-lbs%2Fdelete~${lb(2)}`);
  });

  it('should give different ids when run, step or item differ', () => {
    const ids = new Set([
      approvalId(RUN, 'a'),
      approvalId(RUN, 'a', lb(1)),
      approvalId(RUN, 'a', lb(2)),
      approvalId(RUN, 'a~1'),
      approvalId(RUN, 'b'),
      approvalId('r2test', 'a'),
    ]);
    expect(ids.size).toBe(6);
  });

  it('should refuse a run id that is not key-safe, and an item named by its position', () => {
    expect(() => approvalId('r1:x', 'a')).toThrow(CapiError);
    expect(() => approvalId(RUN, 'a', '2')).toThrow(RangeError);
  });
});

describe('ApprovalStore.open/get', () => {
  it('should store the request with its expiry when created', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    const created = await create(store, request(), 30 * MINUTE, T0);
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
    const first = await create(store, request('delete-lbs', 'first'), 30 * MINUTE, T0);
    const again = await create(store, request('delete-lbs', 'second'), 90 * MINUTE, later(10 * MINUTE));
    expect(again).toEqual(first);
    expect((await store.get(id))?.request.summary).toBe('first');
    expect(await db.redis.zcard(`${db.prefix}:run:${RUN}:approvals`)).toBe(1);
  });

  it('should use the Redis clock when no time is given', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const before = Date.now();
    const created = await create(store, request(), MINUTE);
    const requestedAt = Date.parse(created.requestedAt);
    // Redis and this process share a host here; allow for rounding only.
    expect(requestedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(requestedAt).toBeLessThanOrEqual(Date.now() + 1000);
    expect(Date.parse(created.expiresAt) - requestedAt).toBe(MINUTE);
  });

  it('should throw StoredDataInvalid when the stored request is malformed', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await create(store, request(), MINUTE, T0);
    await db.redis.hset(store.key(id), 'request', JSON.stringify({ runId: RUN }));
    const err = await store.get(id).catch((e: unknown) => e);
    expect((err as CapiError).code).toBe(ErrorCode.StoredDataInvalid);
  });
});

describe('one approval, one exact action', () => {
  it('should supersede the request and ask in a new round when the rebuilt action differs', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const first = await store.open(request('delete-lbs', 'server A', 1, 'digest-A'), { timeoutMs: MINUTE });
    await store.decide(first.approval.approvalId, { approved: true, by: 'U0BBBBBBB' });
    const second = await store.open(request('delete-lbs', 'server B', 1, 'digest-B'), { timeoutMs: MINUTE });
    expect(second.created).toBe(true);
    expect(second.approval.approvalId).toBe(approvalId(RUN, 'delete-lbs', lb(1), 2));
    expect(second.approval.decision).toBeUndefined();
    expect(second.superseded).toEqual({ approvalId: first.approval.approvalId, why: 'changed' });
    // The old request takes no decision any more, and the approval given for server A is gone with it.
    const late = await store.decide(first.approval.approvalId, { approved: true, by: 'U0CCCCCCC' });
    expect(late.outcome).toBe('superseded');
    expect((await store.get(first.approval.approvalId))?.superseded?.why).toBe('changed');
    expect((await store.pendingForRun(RUN)).map((a) => a.approvalId)).toEqual([second.approval.approvalId]);
  });

  it('should return the same request with its decision when the same action is opened again', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const first = await store.open(request(), { timeoutMs: 30 * MINUTE, now: T0 });
    await store.decide(first.approval.approvalId, { approved: true, by: 'U0BBBBBBB' }, later(MINUTE));
    const again = await store.open(request(), { timeoutMs: 30 * MINUTE, now: later(2 * MINUTE) });
    expect(again.created).toBe(false);
    expect(again.approval.approvalId).toBe(first.approval.approvalId);
    expect(again.approval.decision).toMatchObject({ approved: true, by: 'U0BBBBBBB' });
  });

  it('should ask again when the approval was given longer ago than the approval timeout', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const first = await store.open(request(), { timeoutMs: 30 * MINUTE, now: T0 });
    await store.decide(first.approval.approvalId, { approved: true, by: 'U0BBBBBBB' }, later(MINUTE));
    const again = await store.open(request(), { timeoutMs: 30 * MINUTE, now: later(40 * MINUTE) });
    expect(again.created).toBe(true);
    expect(again.superseded).toEqual({ approvalId: first.approval.approvalId, why: 'stale' });
    expect(again.approval.decision).toBeUndefined();
  });

  it('should refuse to open or supersede a request for an agent whose fence is stale', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const fences = new RunFences(db.redis, db.prefix);
    const stale = await fences.take(RUN);
    await fences.take(RUN);
    await expect(store.open(request(), { timeoutMs: MINUTE, fence: stale })).rejects.toBeInstanceOf(
      RunFencedError,
    );
    expect(await store.pendingForRun(RUN)).toEqual([]);
  });
});

describe('ApprovalStore.decide', () => {
  it('should record the decision with who and when when the request is open', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await create(store, request(), 30 * MINUTE, T0);
    const result = await store.decide(id, { approved: true, by: 'U0BBBBBBB', via: 'slack' }, later(MINUTE));
    expect(result.outcome).toBe('decided');
    expect(decisionOf(result)).toEqual({ approved: true, by: 'U0BBBBBBB', at: '2025-03-04T10:01:00.000Z' });
    expect((await store.get(id))?.decidedVia).toBe('slack');
  });

  it('should store a denial with its reason and note when the approver denies', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await create(store, request(), 30 * MINUTE, T0);
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
    await create(store, request(), 30 * MINUTE, T0);
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
      await create(stores[0] as ApprovalStore, request(), 30 * MINUTE);
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
    await create(store, request(), 30 * MINUTE, T0);
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
    await create(store, request(), 30 * MINUTE, T0);
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
    await create(store, request(), 30 * MINUTE, T0);
    const result = await store.expireIfDue(id, later(29 * MINUTE));
    expect(result.outcome).toBe('pending');
    expect((await store.get(id))?.decision).toBeUndefined();
  });

  it('should record the expiry as a denial when it is due and undecided', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const id = approvalId(RUN, 'delete-lbs');
    await create(store, request(), 30 * MINUTE, T0);
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
    await create(store, request(), 30 * MINUTE, T0);
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
    const a = approvalId(RUN, 'delete-lbs/delete', lb(1));
    const b = approvalId(RUN, 'delete-lbs/delete', lb(2));
    await create(store, request('delete-lbs/delete', 'one', 1), 30 * MINUTE, T0);
    await create(store, request('delete-lbs/delete', 'two', 2), 30 * MINUTE, later(MINUTE));
    await create(store, { ...request('x'), runId: 'r2test' }, MINUTE, T0);
    expect((await store.pendingForRun(RUN)).map((p) => p.approvalId)).toEqual([a, b]);
    await store.decide(a, { approved: true, by: 'U0BBBBBBB' }, later(2 * MINUTE));
    expect((await store.pendingForRun(RUN)).map((p) => p.approvalId)).toEqual([b]);
    expect(await store.pendingForRun('r-none')).toEqual([]);
  });
});
