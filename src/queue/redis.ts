import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * One factory, three roles (BullMQ's connection guidance): a producer fails fast when Redis is away,
 * so a chat command gets an answer; the worker and the agent's store retry until Redis is back.
 */
export type RedisRole = 'producer' | 'worker' | 'store';

export function connectRedis(url: string, role: RedisRole, logger: Logger): Redis {
  const redis = new Redis(url, {
    ...(role === 'producer' ? { enableOfflineQueue: false } : {}),
    // The store keeps retrying through a Redis restart: a run pauses on its next event instead of losing it.
    ...(role !== 'producer' ? { maxRetriesPerRequest: null } : {}),
    connectionName: `capi-chatops:${role}`,
  });
  // Without a listener ioredis prints unhandled-error noise for every reconnect attempt.
  redis.on('error', (err) => logger.warn({ role, err: err.message }, 'redis connection error'));
  return redis;
}
