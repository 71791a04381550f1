/**
 * Fencing tokens: who owns a run right now. Every agent that starts (or takes over, or resumes) a run
 * takes a new token; every state write of the run and every destructive send checks, in the same atomic
 * step, that the token is still the newest. An agent that was only paused (GC, SIGSTOP, a frozen VM) past
 * its job lock wakes up holding an older token: its writes are refused and it stops.
 *
 * A token is never below one taken before it, even when Redis lost the counter since (restarted from an
 * older snapshot, restored from a backup, failed over onto a replica that lagged): the jumphost keeps the
 * newest token it has seen (remote-fence.ts) and refuses lower ones, so a counter that went back would
 * have the rightful owner's every command refused. See TAKE for how.
 *
 * Keys (`p` = prefix): `p:run:<runId>:fence` string, the newest token.
 */

import { RunFencedError } from '../errors.js';
import type { RedisClient } from '../redis/connection.js';
import { assertRunId } from './registry.js';

export interface Fence {
  readonly runId: string;
  readonly key: string;
  readonly token: number;
}

/**
 * Prepended to a script run through evalFenced: takes the fence key and token off the END of KEYS and
 * ARGV (so the script below sees exactly the keys and arguments it was written for) and refuses with
 * an error reply when the token is not the newest.
 */
const FENCE_PRELUDE = `
local capi_fence_key = table.remove(KEYS)
local capi_fence_token = table.remove(ARGV)
local capi_fence_now = redis.call('GET', capi_fence_key)
if capi_fence_now ~= capi_fence_token then
  return redis.error_reply('CAPI_FENCED token ' .. capi_fence_token .. ', newest ' .. tostring(capi_fence_now))
end
`;

const FENCED_REPLY = /^CAPI_FENCED (.*)$/;

/**
 * Runs `script` atomically with the fence check when a fence is given (plain EVAL otherwise). A refused
 * check throws RunFencedError; nothing of the script ran.
 */
export async function evalFenced(
  redis: RedisClient,
  script: string,
  keys: readonly string[],
  args: readonly (string | number)[],
  fence: Fence | undefined,
): Promise<unknown> {
  if (fence === undefined) return redis.eval(script, keys.length, ...keys, ...args);
  try {
    return await redis.eval(
      FENCE_PRELUDE + script,
      keys.length + 1,
      ...keys,
      fence.key,
      ...args,
      String(fence.token),
    );
  } catch (err) {
    const m = err instanceof Error ? FENCED_REPLY.exec(err.message) : null;
    if (m) throw new RunFencedError(fence.runId, `fencing ${m[1]}`);
    throw err;
  }
}

/**
 * The new token: max(INCR, the Redis server's clock in milliseconds since the epoch), in one script. While
 * Redis keeps its writes, INCR alone makes each token larger than the last. When Redis lost them, the
 * clock floor still does, and correctness needs only this: a take-over gets a larger token than any token
 * an earlier owner used on the jumphost. An earlier token is at most the floor of its own take plus the
 * takes within that same millisecond, so a later take is larger as long as the clock it reads is not behind
 * the clock the earlier take read by more than the time between the two takes.
 *
 * The clock is the Redis server's (TIME), never the agents': agents on different hosts may disagree by any
 * amount, and all of them take tokens through the one server that holds the key. Restarted from a snapshot,
 * it is the same host's clock, later. After a failover or a restore onto another host, it is that host's
 * clock, and the switch itself takes longer than NTP-kept hosts disagree (a Sentinel waits
 * down-after-milliseconds before it even starts; a restore takes minutes). Only a Redis host whose clock
 * went back (stepped by hand or by a broken NTP) can still yield a token the jumphost refuses; the run then
 * ends saying so (see JumphostAheadError), never silently.
 */
const TAKE = `
local n = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local floor = t[1] .. string.sub(string.format('%06d', tonumber(t[2])), 1, 3)
if n < tonumber(floor) then
  redis.call('SET', KEYS[1], floor)
  return floor
end
return tostring(n)
`;

export class RunFences {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  key(runId: string): string {
    assertRunId(runId);
    return `${this.prefix}:run:${runId}:fence`;
  }

  /** A new, newer token: every fence taken before it is stale from this moment. */
  async take(runId: string): Promise<Fence> {
    const key = this.key(runId);
    const token = Number(await this.redis.eval(TAKE, 1, key));
    return { runId, key, token };
  }

  /** Throws RunFencedError when `fence` is no longer the newest. */
  async check(fence: Fence): Promise<void> {
    await evalFenced(this.redis, 'return 1', [], [], fence);
  }
}
