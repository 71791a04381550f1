import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../dev/net.js';
import { checkRedisForProduction, versionAtLeast } from '../src/runs/redis-checks.js';
import { REDIS_URL } from './support/redis.js';

interface OwnRedis {
  readonly port: number;
  stop(): Promise<void>;
}

/** A private redis-server, so the shared one's configuration is never touched. */
async function startRedis(args: readonly string[]): Promise<OwnRedis> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-redis-checks-'));
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${log}`)));
  });
  return {
    port,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('checkRedisForProduction', () => {
  let tuned: OwnRedis;
  let locked: OwnRedis;
  const clients: Redis[] = [];
  const connect = (port: number) => {
    const client = new Redis({ host: '127.0.0.1', port });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    [tuned, locked] = await Promise.all([
      startRedis(['--appendonly', 'yes', '--maxmemory-policy', 'allkeys-lru']),
      startRedis(['--appendonly', 'no', '--rename-command', 'CONFIG', '']),
    ]);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
    await Promise.all([tuned?.stop(), locked?.stop()]);
  });

  it('should warn about persistence only when Redis runs with --save "" and --appendonly no', async () => {
    const shared = new Redis(REDIS_URL);
    try {
      const [save, appendonly, policy] = await Promise.all(
        ['save', 'appendonly', 'maxmemory-policy'].map(
          async (name) => ((await shared.config('GET', name)) as string[])[1],
        ),
      );
      // The CI Redis; on another setup this test says what it saw instead of failing obscurely.
      expect({ save, appendonly, policy }).toEqual({ save: '', appendonly: 'no', policy: 'noeviction' });
      const warnings = await checkRedisForProduction(shared);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/^Redis persistence is off \(appendonly no and save ""\)/);
      expect(warnings[0]).toContain('appendonly yes');
    } finally {
      await shared.quit();
    }
  });

  it('should warn about the eviction policy when maxmemory-policy is not noeviction', async () => {
    const warnings = await checkRedisForProduction(connect(tuned.port));
    expect(warnings).toEqual([
      'Redis maxmemory-policy is allkeys-lru: under memory pressure Redis may evict queued jobs, locks and ' +
        'pending approvals; set "maxmemory-policy noeviction"',
    ]);
  });

  it('should return no warnings when Redis follows the guidance', async () => {
    const redis = connect(tuned.port);
    await redis.config('SET', 'maxmemory-policy', 'noeviction');
    expect(await checkRedisForProduction(redis)).toEqual([]);
  });

  it('should warn instead of throwing when CONFIG is disabled', async () => {
    const warnings = await checkRedisForProduction(connect(locked.port));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^cannot read the Redis configuration \(CONFIG GET was refused: /);
    expect(warnings[0]).toContain('maxmemory-policy is noeviction');
  });

  it('should warn when the Redis version is older than 6.2', async () => {
    const old = {
      config: async (_sub: string, name: string) => [name, name === 'appendonly' ? 'yes' : 'noeviction'],
      info: async () => '# Server\r\nredis_version:6.0.16\r\nredis_mode:standalone\r\n',
    } as unknown as Redis;
    expect(await checkRedisForProduction(old)).toEqual([
      'Redis 6.0.16 is older than 6.2.0, which BullMQ recommends; upgrade Redis',
    ]);
  });

  it('should throw when Redis cannot be reached', async () => {
    const down = new Redis({
      host: '127.0.0.1',
      port: await freePort(),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    down.on('error', () => undefined);
    try {
      await expect(checkRedisForProduction(down)).rejects.toThrow();
    } finally {
      down.disconnect();
    }
  });
});

describe('versionAtLeast', () => {
  it('should compare numerically when a part has two digits', () => {
    expect(versionAtLeast('6.10.0', '6.2.0')).toBe(true);
    expect(versionAtLeast('6.2.0', '6.2.0')).toBe(true);
    expect(versionAtLeast('6.2', '6.2.0')).toBe(true);
    expect(versionAtLeast('6.0.16', '6.2.0')).toBe(false);
    expect(versionAtLeast('7.0.15', '6.2.0')).toBe(true);
  });
});
