import { JumphostAheadError, JumphostFencedError, RunFencedError } from '../errors.js';
import type { Fence, RunFences } from '../runs/fence.js';
import type { TargetLock } from '../runs/lock.js';
import type { RemoteExecutor } from '../ssh/types.js';

/**
 * What a running agent holds while it runs a run: its fence and (for a run that can change the cloud) the
 * site lock. Both are confirmed on a timer, not at step boundaries, so a 30-minute poll keeps the site
 * locked; a confirmation that fails, or that could not be made for most of a TTL (Redis unreachable
 * while SSH still works), ends the lease and stops the run before its next command.
 */
export class RunLease {
  private lastConfirmed = Date.now();
  private lost: RunFencedError | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: {
      readonly fence: Fence;
      readonly fences: RunFences;
      /** Absent for a read-only run: it takes no site lock. */
      readonly siteLock?: { readonly lock: TargetLock; readonly target: string };
      readonly ttlMs: number;
      readonly onLost: (err: RunFencedError) => void;
    },
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.confirm(), Math.max(50, Math.floor(this.opts.ttlMs / 3)));
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Throws when the lease was lost, or could not be confirmed for two thirds of its TTL. */
  assertHeld(): void {
    if (this.lost) throw this.lost;
    const age = Date.now() - this.lastConfirmed;
    if (age > (this.opts.ttlMs * 2) / 3) {
      this.lose(`ownership could not be confirmed for ${Math.round(age / 1000)}s (is Redis reachable?)`);
      throw this.lost;
    }
  }

  /** Whether Redis names this lease's fence the run's newest right now; false when it cannot say. */
  async ownerInRedis(): Promise<boolean> {
    try {
      await this.opts.fences.check(this.opts.fence);
      return true;
    } catch {
      return false;
    }
  }

  private async confirm(): Promise<void> {
    if (this.lost) return;
    const { fence, fences, siteLock, ttlMs } = this.opts;
    try {
      if (siteLock) {
        const held = await siteLock.lock.refresh(siteLock.target, fence.runId, ttlMs, fence);
        if (!held) return this.lose(`the site lock ${siteLock.target} is no longer this run's`);
      } else {
        await fences.check(fence);
      }
      this.lastConfirmed = Date.now();
    } catch (err) {
      if (err instanceof RunFencedError) this.lose(err.message);
      // Anything else (Redis away) is retried at the next tick; assertHeld() stops the run if it lasts.
    }
  }

  private lose(why: string): void {
    if (this.lost) return;
    this.lost = new RunFencedError(this.opts.fence.runId, why);
    this.stop();
    this.opts.onLost(this.lost);
  }
}

/**
 * Every command of the run carries the run's fence to the jumphost, and none is sent once the lease is
 * gone: the jumphost refuses an older owner even if this agent's Redis check was made before a pause.
 *
 * A refusal means another agent took the run over, unless Redis still names this agent the owner: then the
 * jumphost's newer token is one Redis has forgotten, and stopping quietly would leave the run to nobody (or
 * hand it to the next agent, refused the same way). It becomes JumphostAheadError, which ends the run with
 * the cause and what to do.
 */
export function leasedExecutor(inner: RemoteExecutor, fence: Fence, lease: RunLease): RemoteExecutor {
  return {
    async exec(req) {
      lease.assertHeld();
      try {
        return await inner.exec({ ...req, fence: { scope: fence.runId, token: fence.token } });
      } catch (err) {
        if (err instanceof JumphostFencedError && (await lease.ownerInRedis())) {
          throw new JumphostAheadError(fence.runId, err.token, err.seen);
        }
        throw err;
      }
    },
    close: () => inner.close(),
  };
}
