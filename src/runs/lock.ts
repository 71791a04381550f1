/**
 * One run per target. BullMQ's per-group concurrency is a Pro feature, so the agent takes this lock before a
 * run touches a site and keeps refreshing it while the run goes on; a SIGKILLed agent's lock lapses by TTL.
 *
 * Key (`p` = prefix): `p:lock:<target>` string holding the holder's run id, with a PX expiry.
 */

import { ParamError } from '../errors.js';
import type { RedisClient } from '../queue/redis.js';
import { evalFenced, type Fence } from './fence.js';

/**
 * The lock target for a run. THE RULE: every run takes `targetKey(site)`, whatever its runbook and cluster,
 * because every runbook on a site drives the same management VM, the same jumphost HOME and the same load
 * balancers; two runs on different clusters of one site still race on those. `targetKey(site, cluster)` is
 * only for a narrower exclusion taken IN ADDITION to the site lock, never instead of it.
 *
 * Parts are percent-encoded so that no site/cluster pair can spell another pair's key.
 */
export function targetKey(site: string, cluster?: string): string {
  if (site === '') throw new ParamError('site', 'a lock target needs a site name');
  if (cluster === '') throw new ParamError('cluster', 'a cluster lock target needs a cluster name');
  const siteKey = `site:${encodeURIComponent(site)}`;
  return cluster === undefined ? siteKey : `${siteKey}:cluster:${encodeURIComponent(cluster)}`;
}

/** Re-entrant: the run that already holds the lock (a resumed run) gets it again, with a fresh TTL. */
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1}
end
return {0, holder}
`;

const REFRESH = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

// KEYS: lock, run record. ARGV: runId, ttl ms. For a run nobody is running right now (queued, parked at an
// approval, handed over at shutdown): any agent keeps its lock alive, but only while the run still holds it
// and is still in such a state; a running run's owner renews its own lock.
const REFRESH_IDLE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'queued' or status == 'waiting_approval' or status == 'interrupted' then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export type AcquireResult = { acquired: true } | { acquired: false; heldBy: string };

export class TargetLock {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  key(target: string): string {
    return `${this.prefix}:lock:${target}`;
  }

  /** With a fence, only the run's newest owner can take (or re-take) the lock. */
  async acquire(target: string, runId: string, ttlMs: number, fence?: Fence): Promise<AcquireResult> {
    checkTtl(ttlMs);
    const [ok, holder] = (await evalFenced(
      this.redis,
      ACQUIRE,
      [this.key(target)],
      [runId, String(ttlMs)],
      fence,
    )) as [number, string?];
    return ok === 1 ? { acquired: true } : { acquired: false, heldBy: holder ?? 'unknown' };
  }

  /** False when this run no longer holds the lock (it lapsed, or another run took it): stop touching the target. */
  async refresh(target: string, runId: string, ttlMs: number, fence?: Fence): Promise<boolean> {
    checkTtl(ttlMs);
    return (await evalFenced(this.redis, REFRESH, [this.key(target)], [runId, String(ttlMs)], fence)) === 1;
  }

  /** Keeps the lock of a run that no agent is running right now (see REFRESH_IDLE). */
  async refreshIdle(target: string, runId: string, recordKey: string, ttlMs: number): Promise<boolean> {
    checkTtl(ttlMs);
    return (await this.redis.eval(REFRESH_IDLE, 2, this.key(target), recordKey, runId, String(ttlMs))) === 1;
  }

  /**
   * False when this run was not the holder; the other run's lock is left alone. With a fence, a stale
   * owner of the same run cannot release the lock its successor relies on.
   */
  async release(target: string, runId: string, fence?: Fence): Promise<boolean> {
    return (await evalFenced(this.redis, RELEASE, [this.key(target)], [runId], fence)) === 1;
  }

  async holder(target: string): Promise<string | null> {
    return this.redis.get(this.key(target));
  }
}

function checkTtl(ttlMs: number): void {
  // A lock without expiry would outlive a killed agent and block the site until someone deletes it by hand.
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RangeError('ttlMs must be a whole number > 0');
}
