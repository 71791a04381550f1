import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ParamError, RunFencedError } from '../src/errors.js';
import { RunFences } from '../src/runs/fence.js';
import { TargetLock, targetKey } from '../src/runs/lock.js';
import { eventually } from './support/eventually.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const db = useTestRedis();

const SITE = targetKey('site-a');
const MINUTE = 60_000;

describe('TargetLock', () => {
  it('should refuse a second run and name the holder when the target is locked', async () => {
    const lock = new TargetLock(db.redis, db.prefix);
    expect(await lock.acquire(SITE, 'r1', MINUTE)).toEqual({ acquired: true });
    expect(await lock.acquire(SITE, 'r2', MINUTE)).toEqual({ acquired: false, heldBy: 'r1', hold: false });
    expect(await lock.holder(SITE)).toBe('r1');
    expect(await db.redis.get(`${db.prefix}:lock:site:site-a`)).toBe('r1');
  });

  it('should refuse every other run while a hold for an unresolved attempt stands, and keep it past the lock', async () => {
    const lock = new TargetLock(db.redis, db.prefix);
    const fences = new RunFences(db.redis, db.prefix);
    await lock.acquire(SITE, 'r1', MINUTE);
    const hold = {
      runId: 'r1',
      step: 'zap',
      attemptId: 'r1~zap~1',
      command: 'zap it',
      sentAt: '2025-03-04T10:00:00.000Z',
      heldAt: '2025-03-04T10:01:00.000Z',
      message: 'OUTCOME UNKNOWN',
    };
    // Held first, then the run's own lock released: the target is never free in between.
    await lock.hold(SITE, hold, await fences.take('r1'));
    expect(await lock.release(SITE, 'r1')).toBe(true);
    expect(await lock.acquire(SITE, 'r2', MINUTE)).toEqual({ acquired: false, heldBy: 'r1', hold: true });
    expect(await db.redis.pttl(lock.holdKey(SITE))).toBe(-1);
    expect(await lock.holds(SITE)).toEqual([hold]);
    // A stale owner of the run cannot leave a hold.
    const stale = await fences.take('r3');
    await fences.take('r3');
    await expect(lock.hold(SITE, { ...hold, runId: 'r3' }, stale)).rejects.toBeInstanceOf(RunFencedError);

    expect(await lock.releaseHolds(SITE)).toEqual([hold]);
    expect(await lock.releaseHolds(SITE)).toEqual([]);
    expect(await lock.acquire(SITE, 'r2', MINUTE)).toEqual({ acquired: true });
  });

  it('should free the target when the holder releases it', async () => {
    const lock = new TargetLock(db.redis, db.prefix);
    await lock.acquire(SITE, 'r1', MINUTE);
    expect(await lock.release(SITE, 'r1')).toBe(true);
    expect(await lock.holder(SITE)).toBeNull();
    expect(await lock.acquire(SITE, 'r2', MINUTE)).toEqual({ acquired: true });
  });

  it('should let only the holder release or refresh when another run tries', async () => {
    const lock = new TargetLock(db.redis, db.prefix);
    await lock.acquire(SITE, 'r1', 5000);
    expect(await lock.release(SITE, 'r2')).toBe(false);
    expect(await lock.refresh(SITE, 'r2', MINUTE)).toBe(false);
    expect(await lock.holder(SITE)).toBe('r1');
    expect(await db.redis.pttl(lock.key(SITE))).toBeLessThanOrEqual(5000);

    expect(await lock.refresh(SITE, 'r1', MINUTE)).toBe(true);
    expect(await db.redis.pttl(lock.key(SITE))).toBeGreaterThan(5000);
    expect(await lock.release(SITE, 'r1')).toBe(true);
    expect(await lock.release(SITE, 'r1')).toBe(false);
    expect(await lock.refresh(SITE, 'r1', MINUTE)).toBe(false);
  });

  it('should expire by TTL when the holder stops refreshing', async () => {
    const lock = new TargetLock(db.redis, db.prefix);
    await lock.acquire(SITE, 'r1', 50);
    const pttl = await db.redis.pttl(lock.key(SITE));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(50);
    // Redis expires the key on its own clock; wait for that, not for a guessed delay.
    await eventually(
      'the lock to expire',
      async () => ((await lock.holder(SITE)) === null ? true : undefined),
      { timeoutMs: 5000, intervalMs: 5 },
    );
    expect(await lock.acquire(SITE, 'r2', MINUTE)).toEqual({ acquired: true });
  });

  it('should hand the lock back with a fresh TTL when the holding run acquires it again', async () => {
    const lock = new TargetLock(db.redis, db.prefix);
    await lock.acquire(SITE, 'r1', 1000);
    expect(await lock.acquire(SITE, 'r1', MINUTE)).toEqual({ acquired: true });
    expect(await db.redis.pttl(lock.key(SITE))).toBeGreaterThan(1000);
  });

  it('should give the lock to exactly one run when many acquire at once from two connections', async () => {
    const other = new Redis(REDIS_URL);
    try {
      const a = new TargetLock(db.redis, db.prefix);
      const b = new TargetLock(other, db.prefix);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).acquire(SITE, `r${i}`, MINUTE)),
      );
      const winners = results.filter((r) => r.acquired);
      expect(winners).toHaveLength(1);
      const holder = await a.holder(SITE);
      for (const r of results) if (!r.acquired) expect(r.heldBy).toBe(holder);
    } finally {
      await other.quit();
    }
  });

  it('should keep locks on different targets independent when two sites run at once', async () => {
    const lock = new TargetLock(db.redis, db.prefix);
    expect(await lock.acquire(targetKey('site-a'), 'r1', MINUTE)).toEqual({ acquired: true });
    expect(await lock.acquire(targetKey('site-b'), 'r2', MINUTE)).toEqual({ acquired: true });
  });

  it('should refuse a TTL that is not a positive whole number when acquiring', async () => {
    const lock = new TargetLock(db.redis, db.prefix);
    await expect(lock.acquire(SITE, 'r1', 0)).rejects.toThrow(RangeError);
    await expect(lock.acquire(SITE, 'r1', 1.5)).rejects.toThrow(RangeError);
    expect(await lock.holder(SITE)).toBeNull();
  });
});

describe('targetKey', () => {
  it('should name the site when only a site is given', () => {
    expect(targetKey('site-a')).toBe('site:site-a');
  });

  it('should name the site and the cluster when a cluster is given', () => {
    expect(targetKey('site-a', 'prod-k8s')).toBe('site:site-a:cluster:prod-k8s');
  });

  it('should encode separators when a name contains a colon', () => {
    expect(targetKey('a', 'b:cluster:c')).toBe('site:a:cluster:b%3Acluster%3Ac');
    expect(targetKey('a:cluster:b')).not.toBe(targetKey('a', 'b'));
  });

  it('should refuse an empty site when building a key', () => {
    expect(() => targetKey('')).toThrow(ParamError);
    expect(() => targetKey('site-a', '')).toThrow(ParamError);
  });
});
