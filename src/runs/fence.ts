/**
 * Fencing tokens: who owns a run right now. Every agent that starts (or takes over, or resumes) a run
 * takes a new token with INCR; every state write of the run and every destructive send checks, in the
 * same atomic step, that the token is still the newest. An agent that was only paused (GC, SIGSTOP, a
 * frozen VM) past its job lock wakes up holding an older token: its writes are refused and it stops.
 *
 * Keys (`p` = prefix): `p:run:<runId>:fence` string, the newest token.
 */

import { RunFencedError } from '../errors.js';
import type { RedisClient } from '../queue/redis.js';
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
    const token = await this.redis.incr(key);
    return { runId, key, token };
  }

  /** Throws RunFencedError when `fence` is no longer the newest. */
  async check(fence: Fence): Promise<void> {
    await evalFenced(this.redis, 'return 1', [], [], fence);
  }
}
