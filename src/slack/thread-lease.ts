/**
 * One replica mirrors a run's thread at a time. Several `serve` replicas watch every open run; the one that
 * holds the run's lease posts, renewing it every third of its TTL; when that replica dies, its lease lapses
 * and another replica takes the thread over from the stored cursor (thread-cursors.ts). A replica that lost
 * its lease (a pause longer than the TTL, Redis away) stops before its next Slack call or cursor write.
 *
 * Key (`p` = prefix): `p:slack:lease:<runId>` string holding the holder's id, with a PX expiry (a run id
 * never holds `:`, so this key cannot be a run's cursor `p:slack:<runId>`).
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../redis/connection.js';

const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Thrown where a replica that no longer holds a thread's lease would have posted. */
export class LeaseLost extends Error {
  constructor(runId: string, why: string) {
    super(`the Slack thread of run ${runId} is no longer this replica's to mirror: ${why}`);
    this.name = 'LeaseLost';
  }
}

export interface HeldLease {
  /** Throws LeaseLost once the lease was lost, or could not be renewed for two thirds of its TTL. */
  assertHeld(): void;
  /** Stops renewing and gives the lease up (repeat-safe). */
  release(): Promise<void>;
}

export class ThreadLeases {
  /** This replica's id in the lease keys. */
  readonly holder = `${process.pid}-${randomBytes(4).toString('hex')}`;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly ttlMs: number,
  ) {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 30) throw new RangeError('the lease TTL must be >= 30 ms');
  }

  key(runId: string): string {
    return `${this.prefix}:slack:lease:${runId}`;
  }

  /** The lease, renewed on a timer until released or lost; undefined when another replica holds it. */
  async tryAcquire(runId: string): Promise<HeldLease | undefined> {
    const got = await this.redis.eval(ACQUIRE, 1, this.key(runId), this.holder, String(this.ttlMs));
    if (got !== 1) return undefined;
    let confirmed = Date.now();
    let lost: LeaseLost | undefined;
    let released: Promise<void> | undefined;
    const timer = setInterval(
      () => {
        this.redis.eval(RENEW, 1, this.key(runId), this.holder, String(this.ttlMs)).then(
          (ok) => {
            if (ok === 1) confirmed = Date.now();
            else lost ??= new LeaseLost(runId, 'another replica holds its lease');
          },
          // Redis away: retried at the next tick; assertHeld() stops posting if it lasts.
          () => undefined,
        );
      },
      Math.max(10, Math.floor(this.ttlMs / 3)),
    );
    timer.unref();
    return {
      assertHeld: () => {
        if (lost) throw lost;
        if (Date.now() - confirmed > (this.ttlMs * 2) / 3) {
          throw new LeaseLost(runId, `its lease could not be renewed for ${Date.now() - confirmed} ms`);
        }
      },
      release: () => {
        released ??= (async () => {
          clearInterval(timer);
          await this.redis.eval(RELEASE, 1, this.key(runId), this.holder).catch(() => undefined);
        })();
        return released;
      },
    };
  }
}
