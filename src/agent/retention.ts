/**
 * Redis that does not fill up: every key of a finished run expires RUN_RETENTION after the run finished
 * (`capi-chatops export RUN` keeps a copy for a postmortem), and the runs index forgets ids whose record has
 * expired. The agent that finishes a run sets the expiry right after the final status (finishRecord); the
 * periodic sweep is the backstop for a run whose agent died in between, for runs finished before this
 * existed, and for the Slack cursor of a run mirrored only after it finished.
 */
import type { Logger } from 'pino';
import type { RedisClient } from '../redis/connection.js';
import type { ApprovalStore } from '../runs/approvals.js';
import type { AttemptJournal } from '../runs/attempts.js';
import { evalFenced, type Fence, type RunFences } from '../runs/fence.js';
import { isFinalStatus, type RunRecordStatus, type RunRegistry } from '../runs/registry.js';
import type { RunTimeline } from '../runs/timeline.js';
import type { CheckpointStore } from './checkpoints.js';

export interface RunRetentionOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly retentionMs: number;
  readonly registry: RunRegistry;
  readonly timeline: RunTimeline;
  readonly approvals: ApprovalStore;
  readonly attempts: AttemptJournal;
  readonly fences: RunFences;
  readonly checkpoints: CheckpointStore;
}

const EXPIRE_ALL = `
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[1]) end
return #KEYS
`;

/** Index entries read per round trip of a sweep. */
const SWEEP_PAGE = 500;

export class RunRetention {
  constructor(private readonly opts: RunRetentionOptions) {}

  /**
   * The thread poster's cursor (src/slack/thread-cursors.ts, `p:slack:<runId>`): it lives as long as the run it
   * mirrors.
   */
  private slackCursorKey(runId: string): string {
    return `${this.opts.prefix}:slack:${runId}`;
  }

  /** Every key of a run that exists without its approvals' own keys (those come from the run's index). */
  private fixedKeys(runId: string): string[] {
    const o = this.opts;
    return [
      o.registry.recordKey(runId),
      o.registry.runbookKey(runId),
      ...o.timeline.keys(runId),
      o.checkpoints.key(runId),
      o.attempts.key(runId),
      o.fences.key(runId),
      this.slackCursorKey(runId),
    ];
  }

  /**
   * Gives every key of a finished run its expiry, in one atomic step (under the owner's fence when given).
   * Later writes to these keys (run.finished appended, the poster's cursor) keep the expiry.
   */
  async expireRun(runId: string, fence?: Fence): Promise<void> {
    const keys = [...this.fixedKeys(runId), ...(await this.opts.approvals.keysOfRun(runId))];
    await evalFenced(this.opts.redis, EXPIRE_ALL, keys, [String(this.opts.retentionMs)], fence);
  }

  /**
   * One pass over the runs index, oldest first: ids whose record has expired are removed from it (and any
   * key of theirs written after the expiry was set is deleted); a finished run without an expiry gets one.
   */
  async sweep(): Promise<{ forgotten: number; expired: number }> {
    const { redis, registry } = this.opts;
    const index = `${this.opts.prefix}:runs`;
    const gone: string[] = [];
    let expired = 0;
    for (let start = 0; ; start += SWEEP_PAGE) {
      const ids = await redis.zrange(index, start, start + SWEEP_PAGE - 1);
      const pipeline = redis.pipeline();
      for (const id of ids) {
        pipeline.pttl(registry.recordKey(id));
        pipeline.hget(registry.recordKey(id), 'status');
      }
      const replies = (await pipeline.exec()) ?? [];
      for (const [i, id] of ids.entries()) {
        const [ttlErr, ttl] = replies[2 * i] ?? [];
        const [, status] = replies[2 * i + 1] ?? [];
        if (ttlErr) throw ttlErr;
        if (ttl === -2) gone.push(id);
        else if (ttl === -1 && typeof status === 'string' && isFinalStatus(status as RunRecordStatus)) {
          await this.expireRun(id);
          expired += 1;
        }
      }
      if (ids.length < SWEEP_PAGE) break;
    }
    for (const id of gone) {
      // Only what has no expiry of its own can be left: the record is gone, so is the run.
      await redis.unlink(...this.fixedKeys(id));
      await redis.zrem(index, id);
    }
    return { forgotten: gone.length, expired };
  }

  /** Sweeps every `intervalMs` until stopped; every agent does it, and doing it twice is harmless. */
  startSweeping(intervalMs: number, logger: Logger): () => void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      this.sweep()
        .then(
          (r) => {
            if (r.forgotten + r.expired > 0) logger.info(r, 'retention sweep');
          },
          (err: unknown) => logger.warn({ err }, 'retention sweep failed'),
        )
        .finally(() => {
          running = false;
        });
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
