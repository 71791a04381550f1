import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisTarget } from '../config/env.js';

/**
 * A connection to one Redis server, a Sentinel-monitored master or a Cluster. Both ioredis classes speak the
 * same commands; every store of the product takes either (BullMQ does too).
 */
export type RedisClient = Redis | Cluster;

/**
 * One factory, three roles (BullMQ's connection guidance): a producer fails fast when Redis is away,
 * so a chat command gets an answer; the worker and the agent's store retry until Redis is back.
 */
export type RedisRole = 'producer' | 'worker' | 'store';

export function connectRedis(target: RedisTarget, role: RedisRole, logger: Logger): RedisClient {
  const perRole: RedisOptions = {
    ...(role === 'producer' ? { enableOfflineQueue: false } : {}),
    // The store keeps retrying through a Redis restart or a failover: a run pauses on its next event
    // instead of losing it.
    ...(role !== 'producer' ? { maxRetriesPerRequest: null } : {}),
    connectionName: `capi-chatops:${role}`,
  };
  let redis: RedisClient;
  switch (target.mode) {
    case 'single':
      redis = new Redis(target.url, perRole);
      break;
    case 'sentinel':
      redis = new Redis({
        ...perRole,
        sentinels: target.sentinels.map((n) => ({ host: n.host, port: n.port })),
        name: target.name,
        ...(target.password !== undefined ? { password: target.password } : {}),
        ...(target.sentinelPassword !== undefined ? { sentinelPassword: target.sentinelPassword } : {}),
        ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
        // Subscribes to the sentinels' +switch-master: the new master is used as soon as they agree on it.
        failoverDetector: true,
        // A write that reached the old master after it came back as a replica: reconnect to the new master
        // and send it there.
        reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
      });
      break;
    case 'cluster':
      redis = new Cluster(
        target.nodes.map((n) => ({ host: n.host, port: n.port })),
        {
          ...(role === 'producer' ? { enableOfflineQueue: false } : {}),
          redisOptions: {
            ...perRole,
            ...(target.password !== undefined ? { password: target.password } : {}),
            ...(target.tls ? { tls: {} } : {}),
          },
        },
      );
      break;
  }
  // Without a listener ioredis prints unhandled-error noise for every reconnect attempt.
  redis.on('error', (err: Error) => logger.warn({ role, err }, 'redis connection error'));
  return redis;
}

/**
 * A second connection to the same Redis for a blocking command (XREAD BLOCK would stall every command queued
 * behind it on a shared connection). It queues while connecting, whatever the original's role.
 */
export function dedicatedConnection(redis: RedisClient, name: string): RedisClient {
  if (redis instanceof Cluster) {
    return redis.duplicate([], {
      enableOfflineQueue: true,
      redisOptions: { ...redis.options.redisOptions, connectionName: name },
    });
  }
  return redis.duplicate({ enableOfflineQueue: true, connectionName: name });
}

/** Where Redis is, for logs: hosts and names only, never a password. */
export function describeRedis(target: RedisTarget): string {
  switch (target.mode) {
    case 'single': {
      const url = new URL(target.url);
      return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
    }
    case 'sentinel':
      return `sentinel master ${target.name} via ${target.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
    case 'cluster':
      return `cluster ${target.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  }
}
