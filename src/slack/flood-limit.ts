/**
 * Per-user flood limits for what a Slack user can make the bot store or send without doing anything useful:
 * refused clicks and commands (each leaves an ephemeral, an audit line, a timeline entry) and `/capi timeline`
 * uploads (a file each). Past a limit the user gets ONE "slow down", and then nothing at all is done, stored
 * or sent for them until the window ends: their clicks and commands are acknowledged (Slack needs that) and
 * dropped.
 *
 * Counters live in Redis (every `serve` replica shares them) and are read and bumped in one script, so two
 * replicas answering the same flood cannot both let the limit-crossing request through.
 */
import type { RedisClient } from '../redis/connection.js';

export type FloodKind = 'refusal' | 'upload';

/** `ok`: go on; `slow_down`: this request crossed the limit, say so once; `silent`: say and store nothing. */
export type FloodVerdict = 'ok' | 'slow_down' | 'silent';

export interface FloodLimits {
  /** Refused clicks and commands per user per window (SLACK_FLOOD_REFUSALS). */
  readonly refusals: number;
  /** `/capi timeline` uploads per user per window (SLACK_FLOOD_UPLOADS). */
  readonly uploads: number;
  /** SLACK_FLOOD_WINDOW. */
  readonly windowMs: number;
}

export const DEFAULT_FLOOD_LIMITS: FloodLimits = { refusals: 5, uploads: 3, windowMs: 60_000 };

/**
 * KEYS: counter, block flag. ARGV: limit, window ms. Returns 0 (ok), 1 (crossed now: slow down) or 2 (already
 * blocked). The counter's window starts at its first hit; the block lasts one window from the crossing.
 */
const HIT = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return 1
end
return 0
`;

export class FloodLimit {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    readonly limits: FloodLimits = DEFAULT_FLOOD_LIMITS,
  ) {}

  private key(userId: string, what: string): string {
    // Slack ids are [A-Z0-9]; anything else is encoded so it cannot reach another user's key.
    return `${this.prefix}:slack:flood:${encodeURIComponent(userId)}:${what}`;
  }

  /** True while the user is past a limit: drop their request, store and send nothing. */
  async blocked(userId: string): Promise<boolean> {
    return (await this.redis.exists(this.key(userId, 'blocked'))) === 1;
  }

  /** Counts one refusal or upload of `userId` and says what to do with it. */
  async hit(userId: string, kind: FloodKind): Promise<FloodVerdict> {
    const limit = kind === 'refusal' ? this.limits.refusals : this.limits.uploads;
    const verdict = await this.redis.eval(
      HIT,
      2,
      this.key(userId, kind),
      this.key(userId, 'blocked'),
      String(limit),
      String(this.limits.windowMs),
    );
    return verdict === 0 ? 'ok' : verdict === 1 ? 'slow_down' : 'silent';
  }

  /**
   * Counts one `kind` of `userId` and says whether to go on with it (answer the refusal, send the upload);
   * the hit that crosses the limit is told "slow down" through `tell`, the ones after it nothing.
   */
  async allow(userId: string, kind: FloodKind, tell: (text: string) => Promise<void>): Promise<boolean> {
    const verdict = await this.hit(userId, kind);
    if (verdict === 'slow_down') await tell(this.slowDown());
    return verdict === 'ok';
  }

  /** The one message a flooding user gets. */
  slowDown(): string {
    const seconds = Math.ceil(this.limits.windowMs / 1000);
    return `Slow down: too many refused requests or uploads. For the next ${seconds} s your /capi commands and button clicks are ignored.`;
  }
}
