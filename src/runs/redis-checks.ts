/**
 * BullMQ's production guidance, checked once at start-up. Only warnings: a dev box or a managed Redis may
 * legitimately differ, and refusing to start would be worse than saying what is at risk.
 *
 * A Redis that cannot be reached still throws: that is not a warning, nothing would work.
 */
import type { Logger } from 'pino';
import type { RedisTarget } from '../config/env.js';
import { describeRedis, type RedisClient } from '../redis/connection.js';
import { confirmPlan, durabilityOf, type RedisDurability } from './redis-durability.js';

export const MIN_REDIS_VERSION = '6.2.0';

/** Errors Redis itself answered with (unknown or renamed command, ACL NOPERM), as opposed to no answer at all. */
export function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

export async function configGet(redis: RedisClient, name: string): Promise<string | undefined> {
  const reply = (await redis.config('GET', name)) as unknown;
  if (!Array.isArray(reply)) return undefined;
  const at = reply.indexOf(name);
  return at === -1 ? undefined : String(reply[at + 1]);
}

/** Compares dotted versions numerically; `6.10.0` is newer than `6.2.0`. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map((p) => Number.parseInt(p, 10));
  const b = minimum.split('.').map((p) => Number.parseInt(p, 10));
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (Number.isNaN(x) || Number.isNaN(y)) return false;
    if (x !== y) return x > y;
  }
  return true;
}

export async function checkRedisForProduction(redis: RedisClient): Promise<string[]> {
  const warnings: string[] = [];

  try {
    const policy = await configGet(redis, 'maxmemory-policy');
    if (policy !== undefined && policy !== 'noeviction') {
      warnings.push(
        `Redis maxmemory-policy is ${policy}: under memory pressure Redis may evict queued jobs, locks and ` +
          'pending approvals; set "maxmemory-policy noeviction"',
      );
    }
    const appendonly = await configGet(redis, 'appendonly');
    const save = await configGet(redis, 'save');
    if (appendonly !== 'yes' && save !== undefined && save.trim() === '') {
      warnings.push(
        'Redis persistence is off (appendonly no and save ""): a Redis restart loses every queued run, lock, ' +
          'pending approval and timeline; set "appendonly yes" and "appendfsync everysec"',
      );
    }
  } catch (err) {
    if (!isReplyError(err)) throw err;
    warnings.push(
      `cannot read the Redis configuration (CONFIG GET was refused: ${err.message}); CONFIG is disabled or ` +
        'not allowed for this user, so check by hand that maxmemory-policy is noeviction and that AOF ' +
        'persistence (appendonly yes) is on',
    );
  }

  try {
    const info = await redis.info('server');
    const version = /^redis_version:(\S+)/m.exec(info)?.[1];
    if (version === undefined) {
      warnings.push(
        `cannot tell the Redis version from INFO server; BullMQ needs Redis ${MIN_REDIS_VERSION} or newer`,
      );
    } else if (!versionAtLeast(version, MIN_REDIS_VERSION)) {
      warnings.push(
        `Redis ${version} is older than ${MIN_REDIS_VERSION}, which BullMQ recommends; upgrade Redis`,
      );
    }
  } catch (err) {
    if (!isReplyError(err)) throw err;
    warnings.push(
      `cannot read INFO server (${err.message}); check by hand that Redis is ${MIN_REDIS_VERSION} or newer`,
    );
  }

  return warnings;
}

/**
 * What this deployment's Redis can lose, in one sentence an operator can act on, and why a destructive step
 * is still never sent twice. `d` is what the connection found (see durabilityOf).
 */
export function redisLossStatement(
  d: RedisDurability,
  target: Pick<RedisTarget, 'mode' | 'waitReplicas'>,
): string {
  const can: string[] = [];
  if (!d.aof) {
    can.push(
      d.save === ''
        ? 'everything, on a restart or a crash (AOF off and no RDB snapshots)'
        : 'every write since its last RDB snapshot, on a restart or a crash (AOF off)',
    );
  } else if (d.appendfsync !== 'always') {
    const window =
      d.appendfsync === 'no'
        ? 'the writes the OS had not flushed yet (appendfsync no: up to ~30 s)'
        : d.appendfsync === 'everysec'
          ? 'up to the last second of writes (appendfsync everysec)'
          : 'the writes not yet fsynced (appendfsync could not be read)';
    can.push(
      d.waitaof && target.mode !== 'cluster'
        ? `${window} when its host crashes, except destructive attempts, decisions and cancels: those wait for their fsync (WAITAOF)`
        : `${window} when its host crashes, destructive attempts, decisions and cancels included (WAITAOF needs Redis 7.2 and a single server or Sentinel; this is ${d.version ?? 'an unknown version'}${target.mode === 'cluster' ? ' in a Cluster' : ''})`,
    );
  }
  if (target.mode === 'cluster') {
    can.push(
      'on a shard failover, the writes its replica had not received (Cluster: nothing waits for a replica)',
    );
  } else if (target.mode === 'sentinel' || d.replicas > 0) {
    can.push(
      target.waitReplicas > 0
        ? `on a failover, the writes the new master had not received, except destructive attempts, decisions and cancels: those wait for ${target.waitReplicas} replica(s) (WAIT)`
        : 'on a failover, the writes the new master had not received (REDIS_WAIT_REPLICAS is 0: nothing waits for a replica)',
    );
  }
  can.push('on a restore from a backup, everything since the backup');
  return (
    `What Redis can lose here: ${can.join('; ')}. Whatever it loses, no destructive step is sent twice: ` +
    'the jumphost keeps a marker of every destructive send (~/.capi-chatops/attempts) and refuses a second ' +
    'one, and the run then ends OUTCOME UNKNOWN saying when the first was sent.'
  );
}

/**
 * Start-up (agent and serve), once: BullMQ's guidance as warnings, then what this Redis can lose. A warning
 * when nothing can be confirmed (no WAITAOF, no replicas to WAIT for), else for the record.
 */
export async function reportRedisAtStartup(
  redis: RedisClient,
  target: RedisTarget,
  logger: Logger,
): Promise<void> {
  const where = describeRedis(target);
  for (const warning of await checkRedisForProduction(redis)) logger.warn({ redis: where }, warning);
  const d = await durabilityOf(redis);
  const fields = {
    redis: where,
    version: d.version,
    aof: d.aof,
    appendfsync: d.appendfsync,
    waitaof: d.waitaof,
    replicas: d.replicas,
    waitReplicas: target.waitReplicas,
  };
  const confirms = !('none' in confirmPlan(d, { replicas: target.waitReplicas, timeoutMs: 0 }));
  logger[confirms ? 'info' : 'warn'](fields, redisLossStatement(d, target));
}
