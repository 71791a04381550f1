/**
 * Where Redis is, from the REDIS_* variables: one server (REDIS_URL), a Sentinel-monitored master
 * (REDIS_SENTINELS + REDIS_SENTINEL_NAME) or a Cluster (REDIS_CLUSTER_NODES). The topology is chosen by which
 * variables are set; mixing them is an error naming both. Messages never echo a value: REDIS_URL and the
 * passwords are secrets.
 */
import { z } from 'zod';
import { ConfigError, ErrorCode } from '../errors.js';
import { booleanSchema } from './env-fields.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/**
 * `waitReplicas`: how many replicas must hold a destructive attempt's record before its command is sent (WAIT),
 * so a failover cannot lose it and send the command twice.
 */
export type RedisTarget =
  | { readonly mode: 'single'; readonly url: string; readonly waitReplicas: number }
  | {
      readonly mode: 'sentinel';
      readonly sentinels: readonly RedisNode[];
      readonly name: string;
      readonly password?: string;
      readonly sentinelPassword?: string;
      readonly tls: boolean;
      readonly waitReplicas: number;
    }
  | {
      readonly mode: 'cluster';
      readonly nodes: readonly RedisNode[];
      readonly password?: string;
      readonly tls: boolean;
      readonly waitReplicas: 0;
    };

/** `host:port,host:port` (IPv6 in brackets): the sentinels or the cluster's seed nodes. */
export function nodeListSchema(example: string) {
  return z.string().transform((value, ctx) => {
    const nodes: RedisNode[] = [];
    let bad = false;
    for (const entry of value.split(/[\s,]+/)) {
      if (entry === '') continue;
      const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
      const port = Number(m?.[2]);
      if (!m || port < 1 || port > 65535) {
        bad = true;
        ctx.addIssue({
          code: 'custom',
          message: `"${entry}" is not host:port; list them comma separated, e.g. ${example}`,
        });
        continue;
      }
      nodes.push({ host: (m[1] as string).replace(/^\[|\]$/g, ''), port });
    }
    if (nodes.length === 0 && !bad) {
      ctx.addIssue({ code: 'custom', message: `lists no host:port, e.g. ${example}` });
    }
    return nodes;
  });
}

function isRedisUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return ['redis:', 'rediss:'].includes(url.protocol) && url.hostname !== '';
  } catch {
    return false;
  }
}

/** The REDIS_* variables, each checked on its own; `resolveRedisTarget` checks how they combine. */
export const redisEnvShape = {
  REDIS_URL: z
    .string()
    .refine(isRedisUrl, {
      error: `must be a redis:// or rediss:// URL, e.g. ${DEFAULT_REDIS_URL} (with a password: redis://:PASSWORD@host:6379)`,
    })
    .optional(),
  REDIS_SENTINELS: nodeListSchema('sentinel-1:26379,sentinel-2:26379,sentinel-3:26379').optional(),
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/, { error: 'must be the master name the sentinels monitor, e.g. mymaster' })
    .optional(),
  REDIS_SENTINEL_PASSWORD: z.string().optional(),
  REDIS_CLUSTER_NODES: nodeListSchema('redis-1:6379,redis-2:6379,redis-3:6379').optional(),
  REDIS_PASSWORD: z.string().optional(),
  REDIS_TLS: booleanSchema.optional(),
  REDIS_WAIT_REPLICAS: z
    .string()
    .regex(/^\d{1,2}$/, { error: 'must be a whole number of replicas, e.g. 1 (0 turns the wait off)' })
    .transform(Number)
    .optional(),
};

export type RedisEnv = z.infer<z.ZodObject<typeof redisEnvShape>>;

/**
 * One Redis topology from the parsed REDIS_* variables. `queuePrefix` is QUEUE_PREFIX as set, checked here
 * because a Cluster needs it to be a hash tag. Throws ConfigError listing every conflict.
 */
export function resolveRedisTarget(e: RedisEnv, queuePrefix: string | undefined): RedisTarget {
  const issues: string[] = [];
  const chosen = (['REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const).filter((n) => e[n] !== undefined);
  if (chosen.length === 2)
    issues.push('REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set: set one of them');
  if (chosen.length > 0 && e.REDIS_URL !== undefined) {
    issues.push(`REDIS_URL and ${chosen[0]} are both set: unset REDIS_URL (it names a single server)`);
  }
  const sentinels = e.REDIS_SENTINELS;
  const clusterNodes = e.REDIS_CLUSTER_NODES;
  if (sentinels !== undefined && e.REDIS_SENTINEL_NAME === undefined) {
    issues.push(
      'REDIS_SENTINEL_NAME: must be set with REDIS_SENTINELS: the master name the sentinels monitor, e.g. mymaster',
    );
  }
  if (sentinels === undefined && e.REDIS_SENTINEL_NAME !== undefined) {
    issues.push('REDIS_SENTINEL_NAME is set without REDIS_SENTINELS: list the sentinels as host:port,...');
  }
  if (clusterNodes !== undefined) {
    if (queuePrefix !== undefined && !queuePrefix.startsWith('{')) {
      issues.push(
        `QUEUE_PREFIX: must be a hash tag in braces under Redis Cluster, e.g. {${queuePrefix}}, so that every key (BullMQ's and the run store's) lands in one slot and every multi-key script works`,
      );
    }
    if ((e.REDIS_WAIT_REPLICAS ?? 0) > 0) {
      issues.push('REDIS_WAIT_REPLICAS: is not supported with REDIS_CLUSTER_NODES; leave it unset');
    }
  }
  if (chosen.length === 0) {
    for (const n of ['REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD', 'REDIS_TLS'] as const) {
      if (e[n] !== undefined) {
        issues.push(
          `${n} is only used with REDIS_SENTINELS or REDIS_CLUSTER_NODES; with one server put it in REDIS_URL`,
        );
      }
    }
  }
  if (issues.length > 0) throw new ConfigError(ErrorCode.ConfigInvalid, 'environment', issues);

  const auth = e.REDIS_PASSWORD !== undefined ? { password: e.REDIS_PASSWORD } : {};
  if (sentinels !== undefined) {
    return {
      mode: 'sentinel',
      sentinels,
      name: e.REDIS_SENTINEL_NAME as string,
      ...auth,
      ...(e.REDIS_SENTINEL_PASSWORD !== undefined ? { sentinelPassword: e.REDIS_SENTINEL_PASSWORD } : {}),
      tls: e.REDIS_TLS ?? false,
      // Replication is asynchronous: a failover may lose the last writes unless a replica confirmed them.
      waitReplicas: e.REDIS_WAIT_REPLICAS ?? 1,
    };
  }
  if (clusterNodes !== undefined) {
    return { mode: 'cluster', nodes: clusterNodes, ...auth, tls: e.REDIS_TLS ?? false, waitReplicas: 0 };
  }
  return { mode: 'single', url: e.REDIS_URL ?? DEFAULT_REDIS_URL, waitReplicas: e.REDIS_WAIT_REPLICAS ?? 0 };
}
