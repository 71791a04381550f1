import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { redisEnvShape, resolveRedisTarget } from '../src/config/redis-target.js';
import { ConfigError } from '../src/errors.js';

const redisEnv = z.object(redisEnvShape);

/** What loadConfig does with the REDIS_* variables: each checked alone, then their combination. */
function target(env: Record<string, string>, queuePrefix?: string) {
  return resolveRedisTarget(redisEnv.parse(env), queuePrefix);
}

function issues(env: Record<string, string>, queuePrefix?: string): readonly string[] {
  try {
    target(env, queuePrefix);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveRedisTarget', () => {
  it('should use the local server and wait for no replica when nothing is set', () => {
    expect(target({})).toEqual({ mode: 'single', url: 'redis://127.0.0.1:6379', waitReplicas: 0 });
  });

  it('should keep REDIS_URL as given when one server is named', () => {
    expect(target({ REDIS_URL: 'rediss://:pw@redis.example.org:6380', REDIS_WAIT_REPLICAS: '2' })).toEqual({
      mode: 'single',
      url: 'rediss://:pw@redis.example.org:6380',
      waitReplicas: 2,
    });
  });

  it('should read a cluster with TLS and its password when REDIS_CLUSTER_NODES is set', () => {
    expect(
      target(
        { REDIS_CLUSTER_NODES: 'r1:7000 [fe80::1]:7001', REDIS_PASSWORD: 'pw', REDIS_TLS: 'true' },
        '{capi}',
      ),
    ).toEqual({
      mode: 'cluster',
      nodes: [
        { host: 'r1', port: 7000 },
        { host: 'fe80::1', port: 7001 },
      ],
      password: 'pw',
      tls: true,
      waitReplicas: 0,
    });
  });

  it('should name every conflict at once when the topologies are mixed', () => {
    expect(
      issues({ REDIS_URL: 'redis://a:6379', REDIS_SENTINELS: 's:26379', REDIS_CLUSTER_NODES: 'r:7000' }),
    ).toEqual([
      'REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set: set one of them',
      'REDIS_URL and REDIS_SENTINELS are both set: unset REDIS_URL (it names a single server)',
      'REDIS_SENTINEL_NAME: must be set with REDIS_SENTINELS: the master name the sentinels monitor, e.g. mymaster',
    ]);
  });

  it('should ask for a hash tag when the queue prefix has no braces under a cluster', () => {
    expect(issues({ REDIS_CLUSTER_NODES: 'r:7000' }, 'ops')[0]).toMatch(
      /^QUEUE_PREFIX: must be a hash tag in braces under Redis Cluster, e\.g\. \{ops\}/,
    );
  });

  it('should refuse a node list entry without a port and say the form', () => {
    const result = redisEnv.safeParse({ REDIS_SENTINELS: 's1:26379,s2' });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => i.message)).toEqual([
      '"s2" is not host:port; list them comma separated, e.g. sentinel-1:26379,sentinel-2:26379,sentinel-3:26379',
    ]);
  });
});
