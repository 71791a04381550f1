/**
 * Bounds on read-only runs (diagnose and its kind). They take no site lock, so that a loop of them can neither
 * refuse nor delay a recovery; without these bounds nothing else stops an alert storm or a script of
 * `/capi diagnose` from filling Redis and the jumphost.
 *
 * - One at a time per identical ask: a read-only run of the same runbook with the same arguments on the same
 *   site, asked for while one is queued or running, joins it instead of starting a second.
 * - Per person and per site: at most so many read-only runs started in a sliding window; a join starts
 *   nothing and counts nothing.
 *
 * Keys (`p` = prefix):
 * - `p:readonly:same:<sha256 of site, runbook, args>` string `<runId> <claimed at ms>`: the identical run
 * - `p:readonly:joined:<runId>` set: who joined the run (each is shown in its thread once)
 * - `p:readonly:person:<user>`, `p:readonly:site:<site>` sorted sets: start times (ms) in the window
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from '../redis/connection.js';

export interface ReadOnlyLimits {
  /** Read-only runs one person may start per window (CAPI_READONLY_PER_PERSON). */
  readonly perPerson: number;
  /** Read-only runs one site may have started per window, by anyone (CAPI_READONLY_PER_SITE). */
  readonly perSite: number;
  /** CAPI_READONLY_WINDOW. */
  readonly windowMs: number;
}

export const DEFAULT_READONLY_LIMITS: ReadOnlyLimits = { perPerson: 10, perSite: 30, windowMs: 10 * 60_000 };

/** A limit that refused a start: which one, and in how long a start is allowed again. */
export interface LimitHit {
  readonly limit: 'person' | 'site';
  readonly count: number;
  readonly windowMs: number;
  readonly retryInMs: number;
}

/**
 * KEYS: person window, site window. ARGV: now ms, window ms, person limit, site limit, member, count the person
 * (1/0). Returns {0} when taken (both windows count it), else {1 person | 2 site, ms until the oldest start
 * leaves the window}. One script, so two fronts at once cannot both take the last place.
 */
const TAKE = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local person = ARGV[6] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local function full(key, limit, code)
  if redis.call('ZCARD', key) >= tonumber(limit) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return {code, tonumber(oldest[2]) + window - now}
  end
  return nil
end
if person then
  local hit = full(KEYS[1], ARGV[3], 1)
  if hit then return hit end
end
local hit = full(KEYS[2], ARGV[4], 2)
if hit then return hit end
if person then
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], window)
end
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('PEXPIRE', KEYS[2], window)
return {0}
`;

/** KEYS: the identical-run key. ARGV: the value expected now ('' for none), the new value, ttl ms. */
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`;

/** KEYS: the identical-run key. ARGV: the value to remove only if it is still there. */
const UNCLAIM = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Who claimed the identical-run key, and when (ms). */
export interface Claim {
  readonly raw: string;
  readonly runId: string;
  readonly at: number;
}

export class ReadOnlyRuns {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    readonly limits: ReadOnlyLimits = DEFAULT_READONLY_LIMITS,
  ) {}

  /** The key of every identical ask: same site, runbook and arguments. */
  sameKey(site: string, runbook: string, args: readonly string[]): string {
    const digest = createHash('sha256')
      .update(JSON.stringify([site, runbook, args]))
      .digest('hex');
    return `${this.prefix}:readonly:same:${digest}`;
  }

  /** The run last claimed for this ask (it may have finished since); undefined when none. */
  async claimed(key: string): Promise<Claim | undefined> {
    const raw = await this.redis.get(key);
    const [runId, at] = (raw ?? '').split(' ');
    if (raw === null || runId === undefined || runId === '' || at === undefined) return undefined;
    return { raw, runId, at: Number(at) };
  }

  /** Claims the ask for `runId` if it still stands as `expected` (undefined: unclaimed). */
  async claim(
    key: string,
    expected: Claim | undefined,
    runId: string,
    ttlMs: number,
  ): Promise<Claim | undefined> {
    const at = Date.now();
    const raw = `${runId} ${at}`;
    const done = await this.redis.eval(CLAIM, 1, key, expected?.raw ?? '', raw, String(ttlMs));
    return done === 1 ? { raw, runId, at } : undefined;
  }

  /** Gives the ask up (the run did not start after all), unless someone claimed it since. */
  async unclaim(key: string, claim: Claim): Promise<void> {
    await this.redis.eval(UNCLAIM, 1, key, claim.raw);
  }

  /**
   * Counts one start of `member` against the site's window and, unless `person` is undefined (automation: an
   * alert names no person), the person's. Nothing is counted when a limit refuses.
   */
  async take(person: string | undefined, site: string, member: string): Promise<LimitHit | undefined> {
    const now = Date.now();
    const result = (await this.redis.eval(
      TAKE,
      2,
      this.windowKey('person', person ?? ''),
      this.windowKey('site', site),
      String(now),
      String(this.limits.windowMs),
      String(this.limits.perPerson),
      String(this.limits.perSite),
      member,
      person === undefined ? '0' : '1',
    )) as [number, number?];
    const [code, retryInMs = 0] = result;
    if (code === 0) return undefined;
    const limit = code === 1 ? 'person' : 'site';
    return {
      limit,
      count: limit === 'person' ? this.limits.perPerson : this.limits.perSite,
      windowMs: this.limits.windowMs,
      retryInMs: Math.max(1000, retryInMs),
    };
  }

  /** Takes a start back out of the windows (it did not start after all). */
  async untake(person: string | undefined, site: string, member: string): Promise<void> {
    if (person !== undefined) await this.redis.zrem(this.windowKey('person', person), member);
    await this.redis.zrem(this.windowKey('site', site), member);
  }

  /** Records that `who` joined the run; true the first time (so the thread shows each joiner once). */
  async joined(runId: string, who: string, ttlMs: number): Promise<boolean> {
    const key = `${this.prefix}:readonly:joined:${runId}`;
    const added = await this.redis.sadd(key, who);
    await this.redis.pexpire(key, ttlMs);
    return added === 1;
  }

  private windowKey(kind: 'person' | 'site', name: string): string {
    return `${this.prefix}:readonly:${kind}:${encodeURIComponent(name)}`;
  }
}

/** "3 min 20 s", "45 s": when to try again, as a person reads it. */
export function inWords(ms: number): string {
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  const rest = s % 60;
  if (m < 60) return rest === 0 ? `${m} min` : `${m} min ${rest} s`;
  const h = Math.floor(m / 60);
  return m % 60 === 0 ? `${h} h` : `${h} h ${m % 60} min`;
}
