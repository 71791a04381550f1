/**
 * Where each run's Slack thread is, in Redis: the thread poster's own state (not the run's), so that a
 * restarted poster (any instance, same Redis) continues the same thread at the next event.
 *
 * Keys (`p` = prefix):
 * - `p:slack:<runId>`         hash, the run's cursor:
 *                             `channel`, `rootTs`          where the root message is (its ts is the thread)
 *                             `lastId`                     stream id of the last event handled (posted, or
 *                                                          nothing to post)
 *                             `rootId`, `rootUpdatedAt`    the event the root last showed, and when (epoch ms)
 *                             `approval:<approvalId>`      ts of the approval message
 *                             `decided:<approvalId>`       '1' once that message shows the decision (or closed
 *                                                          when the run ended without one); what follows (sent,
 *                                                          outcome) is edited in as its events are handled
 *                             `file`                       stream id of a step.finished whose log file is still
 *                                                          to upload (its message is posted); a `<from>..<to>`
 *                                                          range (an older version's catch-up file) is dropped
 *                             `ahead`                      stream id of an approval.requested posted ahead of
 *                                                          the events before it: their catch-up post is owed
 *                             `done`                       '1' once run.finished is posted and the root final
 * - `p:slack:runs:open`       set of the run ids being mirrored and not done: the poster's resumeAll()
 *                             finishes them (a run id never holds `:`, so this key cannot be a run's cursor)
 */
import type { RedisClient } from '../redis/connection.js';

/** A run's cursor as loaded; the poster keeps it in step with what it writes. */
export interface ThreadCursor {
  channel?: string;
  rootTs?: string;
  lastId?: string;
  rootId?: string;
  rootUpdatedAt: number;
  /** Approval id -> ts of its message. */
  readonly approvals: Map<string, string>;
  /** Approval ids whose message shows its final state. */
  readonly decided: Set<string>;
  file?: string;
  /** An approval request posted ahead of the events before it; their catch-up post is still owed. */
  ahead?: string;
  done: boolean;
}

export class ThreadCursors {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private key(runId: string): string {
    return `${this.prefix}:slack:${runId}`;
  }

  private get openKey(): string {
    return `${this.prefix}:slack:runs:open`;
  }

  async load(runId: string): Promise<ThreadCursor> {
    const hash = await this.redis.hgetall(this.key(runId));
    const cursor: ThreadCursor = {
      rootUpdatedAt: Number(hash.rootUpdatedAt ?? 0) || 0,
      approvals: new Map(),
      decided: new Set(),
      done: hash.done === '1',
    };
    if (hash.channel) cursor.channel = hash.channel;
    if (hash.rootTs) cursor.rootTs = hash.rootTs;
    if (hash.lastId) cursor.lastId = hash.lastId;
    if (hash.rootId) cursor.rootId = hash.rootId;
    if (hash.file) cursor.file = hash.file;
    if (hash.ahead) cursor.ahead = hash.ahead;
    for (const [field, value] of Object.entries(hash)) {
      if (field.startsWith('approval:')) cursor.approvals.set(field.slice('approval:'.length), value);
      else if (field.startsWith('decided:')) cursor.decided.add(field.slice('decided:'.length));
    }
    return cursor;
  }

  /** Writes cursor fields (see the keys above); nothing when `fields` is empty. */
  async save(runId: string, fields: Readonly<Record<string, string>>): Promise<void> {
    if (Object.keys(fields).length > 0) await this.redis.hset(this.key(runId), fields);
  }

  /** The log file is uploaded (or given up on). */
  async clearFile(runId: string): Promise<void> {
    await this.redis.hdel(this.key(runId), 'file');
  }

  /** The catch-up after an approval posted ahead is posted: writes `fields` and forgets `ahead` at once. */
  async caughtUp(runId: string, fields: Readonly<Record<string, string>>): Promise<void> {
    const replies = await this.redis
      .multi()
      .hset(this.key(runId), fields)
      .hdel(this.key(runId), 'ahead')
      .exec();
    for (const [err] of replies ?? []) if (err) throw err;
  }

  /** Runs being mirrored and not done, to finish after a restart. */
  openRuns(): Promise<string[]> {
    return this.redis.smembers(this.openKey);
  }

  async markOpen(runId: string): Promise<void> {
    await this.redis.sadd(this.openKey, runId);
  }

  /** Nothing (more) to mirror for this run. */
  async markClosed(runId: string): Promise<void> {
    await this.redis.srem(this.openKey, runId);
  }

  /** run.finished is posted and the root final: the thread is complete. */
  async markDone(runId: string): Promise<void> {
    await this.redis.hset(this.key(runId), 'done', '1');
    await this.markClosed(runId);
  }
}
