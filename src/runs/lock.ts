/**
 * One run per target. BullMQ's per-group concurrency is a Pro feature, so the agent takes this lock before a
 * run touches a site and keeps refreshing it while the run goes on; a SIGKILLed agent's lock lapses by TTL.
 *
 * A run that ended while one of its destructive commands may have landed (OUTCOME UNKNOWN) leaves a hold on
 * its site: no run that can change the cloud takes the site until an operator, having checked by hand,
 * releases it with a reason (RunService.release). A hold has no expiry: nobody's silence resolves it.
 *
 * Keys (`p` = prefix): `p:lock:<target>` string holding the holder's run id, with a PX expiry;
 * `p:hold:<target>` hash: run id -> SiteHold JSON, one per run that left an attempt unresolved.
 */

import { z } from 'zod';
import { ParamError } from '../errors.js';
import type { RedisClient } from '../redis/connection.js';
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

/**
 * Re-entrant: the run that already holds the lock (a resumed run) gets it again, with a fresh TTL. A site
 * held for another run's unresolved attempt is refused whoever asks (KEYS[2], the holds).
 */
const ACQUIRE = `
for _, held in ipairs(redis.call('HKEYS', KEYS[2])) do
  if held ~= ARGV[1] then return {0, held, 'hold'} end
end
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

// KEYS: holds. ARGV: run id, hold JSON. The first hold a run leaves stays: it says what was sent first.
const HOLD = `
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return 1
`;

// KEYS: holds. Every hold of the target, gone in the same step as it is read: two operators releasing at once
// release once.
const RELEASE_HOLDS = `
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
`;

/** Why a site stays locked after its run ended: the destructive command that may have landed. */
export const siteHoldSchema = z.object({
  runId: z.string().min(1),
  /** The step (stepSlot) and its attempt. */
  step: z.string().min(1),
  attemptId: z.string().min(1),
  /** The exact command as the approver saw it. */
  command: z.string(),
  /** ISO times: when the command was sent, when the run ended holding the site. */
  sentAt: z.string(),
  heldAt: z.string(),
  /** What the run said when it ended: OUTCOME UNKNOWN, and how to check by hand. */
  message: z.string(),
});
export type SiteHold = z.infer<typeof siteHoldSchema>;

/**
 * `hold`: the site is held for `heldBy`'s unresolved attempt (TargetLock.holds says what was sent); else
 * `heldBy` is the run holding the lock.
 */
export type AcquireResult = { acquired: true } | { acquired: false; heldBy: string; hold: boolean };

export class TargetLock {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  key(target: string): string {
    return `${this.prefix}:lock:${target}`;
  }

  holdKey(target: string): string {
    return `${this.prefix}:hold:${target}`;
  }

  /** With a fence, only the run's newest owner can take (or re-take) the lock. */
  async acquire(target: string, runId: string, ttlMs: number, fence?: Fence): Promise<AcquireResult> {
    checkTtl(ttlMs);
    const [ok, holder, kind] = (await evalFenced(
      this.redis,
      ACQUIRE,
      [this.key(target), this.holdKey(target)],
      [runId, String(ttlMs)],
      fence,
    )) as [number, string?, string?];
    return ok === 1
      ? { acquired: true }
      : { acquired: false, heldBy: holder ?? 'unknown', hold: kind === 'hold' };
  }

  /**
   * Holds the target for a run that ends with an unresolved destructive attempt, under its owner's fence; done
   * before the run's own lock is released, so the target is never free in between.
   */
  async hold(target: string, hold: SiteHold, fence: Fence): Promise<void> {
    await evalFenced(this.redis, HOLD, [this.holdKey(target)], [hold.runId, JSON.stringify(hold)], fence);
  }

  /** The target's holds, oldest run first; empty when nothing holds it. */
  async holds(target: string): Promise<SiteHold[]> {
    return parseHolds(this.holdKey(target), await this.redis.hgetall(this.holdKey(target)));
  }

  /** Removes every hold of the target and returns them (empty when there was none). */
  async releaseHolds(target: string): Promise<SiteHold[]> {
    const flat = (await this.redis.eval(RELEASE_HOLDS, 1, this.holdKey(target))) as string[];
    const hash: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i] as string] = flat[i + 1] as string;
    return parseHolds(this.holdKey(target), hash);
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

/** The refusal of a run on a held site: what may have landed, and how the site is freed. */
export function heldSiteMessage(site: string, holds: readonly SiteHold[]): string {
  const what = holds.map((h) => `run ${h.runId}: ${h.message}`).join(' | ');
  return (
    `site ${site} is held: a run ended without knowing whether its destructive command landed (${what || 'see its timeline'}). ` +
    `Check it by hand; then an operator frees the site, saying what was checked: capi-chatops release ${site} --reason TEXT`
  );
}

/** A hold that does not parse still holds (and is still reported on release): its run id is all that is sure. */
function parseHolds(key: string, hash: Record<string, string>): SiteHold[] {
  return Object.entries(hash)
    .map(([runId, text]) => {
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        raw = undefined;
      }
      const parsed = siteHoldSchema.safeParse(raw);
      if (parsed.success) return parsed.data;
      return {
        runId,
        step: 'unknown',
        attemptId: 'unknown',
        command: 'unknown',
        sentAt: '',
        heldAt: '',
        message: `${key} holds an unreadable record for run ${runId}: read its attempts (capi-chatops export ${runId})`,
      };
    })
    .sort((a, b) => a.heldAt.localeCompare(b.heldAt));
}

function checkTtl(ttlMs: number): void {
  // A lock without expiry would outlive a killed agent and block the site until someone deletes it by hand.
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RangeError('ttlMs must be a whole number > 0');
}
