/**
 * BullMQ's production guidance, checked once at start-up. Only warnings: a dev box or a managed Redis may
 * legitimately differ, and refusing to start would be worse than saying what is at risk.
 *
 * A Redis that cannot be reached still throws: that is not a warning, nothing would work.
 */
import type { RedisClient } from '../queue/redis.js';

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
