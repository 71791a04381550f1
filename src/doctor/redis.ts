/**
 * The deployment's Redis as doctor sees it: persistence (AOF on), `noeviction`, and a version with what the
 * product relies on (BullMQ's minimum, src/runs/redis-checks.ts). Stricter than the start-up warnings: RDB
 * snapshots alone lose every run, lock and approval written since the last one, so AOF off is a failure.
 */
import type { RedisClient } from '../redis/connection.js';
import { configGet, isReplyError, MIN_REDIS_VERSION, versionAtLeast } from '../runs/redis-checks.js';
import { durabilityOf } from '../runs/redis-durability.js';
import { type DoctorLine, line } from './report.js';

const ANSWER_MS = 5000;

/** A Redis command or `undefined` when Redis did not answer in time (a dead Redis must not hang doctor). */
async function answered<T>(command: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ANSWER_MS);
  });
  try {
    return await Promise.race([command, late]);
  } finally {
    clearTimeout(timer);
  }
}

const PRODUCTION =
  'README "Redis for production": appendonly yes, appendfsync everysec, maxmemory-policy noeviction';

export async function redisChecks(redis: RedisClient): Promise<DoctorLine[]> {
  const unreachable = (why: string) => [
    line(
      'redis reachable',
      'fail',
      why,
      'Check REDIS_URL (or REDIS_SENTINELS / REDIS_CLUSTER_NODES), the password, and that Redis runs.',
    ),
  ];
  let info: string | undefined;
  try {
    info = await answered(redis.info('server'));
    if (info === undefined) return unreachable(`no answer within ${ANSWER_MS / 1000} s`);
  } catch (err) {
    // Refused (an ACL without INFO) is an answer: Redis is there.
    if (!isReplyError(err)) return unreachable((err as Error).message);
  }
  const lines: DoctorLine[] = [];
  const version = info === undefined ? undefined : /^redis_version:(\S+)/m.exec(info)?.[1];
  // WAITAOF (7.2+) confirms a destructive attempt, a decision or a cancel on disk before anyone acts on it;
  // without it the jumphost's attempt marker still refuses a second send, so it is said, not failed.
  const durability = await answered(durabilityOf(redis)).catch(() => undefined);
  const confirms =
    durability === undefined
      ? ''
      : durability.waitaof
        ? '; WAITAOF confirms destructive attempts, decisions and cancels on disk'
        : '; no WAITAOF (Redis 7.2+): decisions and cancels are not confirmed on disk before people are told (the jumphost marker still refuses a second destructive send)';
  lines.push(
    version === undefined
      ? line(
          'redis version',
          'warn',
          'INFO server does not say (refused or renamed)',
          `Check by hand that Redis is ${MIN_REDIS_VERSION} or newer.`,
        )
      : versionAtLeast(version, MIN_REDIS_VERSION)
        ? line(
            'redis version',
            'ok',
            `${version} (at least ${MIN_REDIS_VERSION}, BullMQ's minimum)${confirms}`,
          )
        : line(
            'redis version',
            'fail',
            `${version}, older than ${MIN_REDIS_VERSION}, which BullMQ needs`,
            'Upgrade Redis.',
          ),
  );
  try {
    const [appendonly, fsync, save, policy] = await Promise.all(
      ['appendonly', 'appendfsync', 'save', 'maxmemory-policy'].map((name) =>
        answered(configGet(redis, name)),
      ),
    );
    lines.push(
      appendonly === 'yes'
        ? line('redis persistence', 'ok', `AOF on (appendfsync ${fsync ?? '?'})`)
        : line(
            'redis persistence',
            'fail',
            `AOF is off${save !== undefined && save.trim() !== '' ? ` (RDB snapshots "${save}" alone lose what was written since the last one)` : ' and so are RDB snapshots'}: a Redis restart loses runs, locks, approvals and attempt records`,
            `Set appendonly yes and appendfsync everysec (${PRODUCTION}).`,
          ),
      policy === 'noeviction'
        ? line('redis eviction', 'ok', 'maxmemory-policy noeviction')
        : line(
            'redis eviction',
            'fail',
            `maxmemory-policy is ${policy ?? 'unknown'}: under memory pressure Redis may evict queued jobs, locks and pending approvals`,
            `Set maxmemory-policy noeviction (${PRODUCTION}).`,
          ),
    );
  } catch (err) {
    if (!isReplyError(err)) throw err;
    lines.push(
      line(
        'redis persistence',
        'warn',
        `CONFIG GET was refused (${err.message}): persistence and eviction cannot be read`,
        `Check by hand: ${PRODUCTION}.`,
      ),
    );
  }
  return lines;
}
