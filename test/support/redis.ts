import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';

/** The Redis the tests share (127.0.0.1:6379 unless REDIS_URL says otherwise). */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestRedis {
  /** One connection for the whole file, opened in beforeAll and closed in afterAll. */
  readonly redis: Redis;
  /** A fresh `capi-test-<hex>` key prefix for each test; every key under it is deleted after the test. */
  readonly prefix: string;
}

/**
 * Registers the vitest hooks that give a test file a Redis connection and a per-test key prefix.
 * Call it once at the top of the file (or of a describe block) and read `redis` and `prefix` inside
 * tests and hooks only: they exist from the hooks on.
 */
export function useTestRedis(): TestRedis {
  let redis: Redis | undefined;
  let prefix: string | undefined;

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await redis?.quit();
  });
  beforeEach(() => {
    prefix = `capi-test-${randomBytes(6).toString('hex')}`;
  });
  afterEach(async () => {
    if (redis !== undefined && prefix !== undefined) await deleteKeys(redis, prefix);
  });

  return {
    get redis(): Redis {
      if (redis === undefined) throw new Error('useTestRedis: redis is only there inside tests and hooks');
      return redis;
    },
    get prefix(): string {
      if (prefix === undefined) throw new Error('useTestRedis: prefix is only there inside a test');
      return prefix;
    },
  };
}

async function deleteKeys(conn: Redis, keyPrefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await conn.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
    if (keys.length > 0) await conn.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}
