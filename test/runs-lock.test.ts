import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ParamError } from '../src/errors.js';
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
    expect(await lock.acquire(SITE, 'r2', MINUTE)).toEqual({ acquired: false, heldBy: 'r1' });
    expect(await lock.holder(SITE)).toBe('r1');
    expect(await db.redis.get(`${db.prefix}:lock:site:site-a`)).toBe('r1');
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
