/** The benchmark's own redis-server on a spare loopback port, and what it holds per key prefix. */
import { Redis } from 'ioredis';
import { freePort } from '../../dev/net.js';
import type { Children } from './processes.js';
import { until } from './processes.js';

export interface BenchRedis {
  readonly url: string;
  readonly client: Redis;
  readonly version: string;
  /** Bytes Redis accounts to every key under `prefix:` (MEMORY USAGE, all nested values sampled). */
  bytesUnder(prefix: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startRedis(dir: string, children: Children): Promise<BenchRedis> {
  const port = await freePort();
  const child = children.spawn(
    'redis-server',
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'noeviction',
      '--dir',
      dir,
      '--logfile',
      `${dir}/redis.log`,
    ],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const client = await until(
    `redis-server on 127.0.0.1:${port}`,
    async () => {
      const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
      c.on('error', () => {
        // Reported through the failing connect or command; without a listener ioredis logs every retry.
      });
      try {
        await c.connect();
        await c.ping();
        return c;
      } catch {
        c.disconnect();
        return undefined;
      }
    },
    10_000,
  ).catch(async (err: unknown) => {
    await children.stop(child, 1000);
    throw err;
  });
  const info = await client.info('server');
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  return {
    url,
    client,
    version,
    async bytesUnder(prefix) {
      let cursor = '0';
      let total = 0;
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length === 0) continue;
        const pipeline = client.pipeline();
        for (const k of keys) pipeline.memory('USAGE', k, 'SAMPLES', 0);
        for (const [err, bytes] of (await pipeline.exec()) ?? []) if (!err) total += Number(bytes ?? 0);
      } while (cursor !== '0');
      return total;
    },
    async stop() {
      client.disconnect();
      await children.stop(child, 3000);
    },
  };
}
