/**
 * One run's timeline, mirrored into a Slack thread: a root message (the live checklist, edited in place) in
 * the run's channel, and under it a post when something was found or changed (a step's findings, a step
 * that failed, the run's end; blocks.ts threadPost decides), each approval request with its buttons, edited
 * in place as its decision's story goes on (decided, sent, outcome: approval-story.ts), and a log file after
 * a post whose step printed more than the post can show.
 *
 * Exactly once, in order, across restarts: each run has one serial worker that reads its timeline in stream
 * order and posts one message at a time; a post's place in the timeline (the cursor) is written to Redis only
 * AFTER Slack confirmed it, so a restarted poster (any instance, same Redis) continues the same thread at the
 * next event. The one unavoidable edge of at-least-once: a crash between Slack's `ok` and the cursor write
 * posts that one message again after the restart. Nothing is ever skipped by a crash.
 *
 * Urgent first: when the thread is behind the run (Slack's pace is about one post a second), an approval
 * request does not wait its turn: it is posted at once, and the posts still waiting before it follow as one
 * catch-up post that says they came before the approval (the cursor remembers that the catch-up is owed).
 *
 * The parts: thread-cursors.ts (the cursors in Redis), paced-slack.ts (the calls to Slack, with their
 * pacing, 429 and retry rules), log-file.ts (raw outputs as files); this file runs one worker per run.
 *
 * No secrets: every message comes from blocks.ts, which redacts; log files come from the timeline (redacted
 * when stored) and are redacted again here.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import type { RunEvent } from '../engine/events.js';
import type { RedisClient } from '../redis/connection.js';
import type { RunService, StoredApproval, TimelineEntry } from '../service/run-service.js';
import { approvalStory } from './approval-story.js';
import {
  approvalMessage,
  catchUpMessage,
  outputPlace,
  postsInThread,
  rootMessage,
  type SlackMessage,
  threadMessage,
  threadPost,
} from './blocks.js';
import { stepLogFile } from './log-file.js';
import { Closed, PacedSlack, RETRY_DELAYS_MS, sleepUnlessClosed } from './paced-slack.js';
import { foldRunView } from './run-view.js';
import { type ThreadCursor, ThreadCursors } from './thread-cursors.js';
import { type HeldLease, LeaseLost, ThreadLeases } from './thread-lease.js';

export interface ThreadPosterOptions {
  /**
   * Created by the caller with `rejectRateLimitedCalls: true` and `retryConfig: { retries: 0 }`: this poster
   * does its own waiting and retrying (see the file comment).
   */
  readonly client: WebClient;
  /** For the poster's own cursors: one server, a Sentinel-monitored master or a Cluster. */
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly service: RunService;
  readonly logger: Logger;
  /** Per channel pacing of chat.postMessage (and file shares); default 1100 (Slack: ~1 message/s/channel). */
  readonly minPostIntervalMs?: number;
  /** Coalescing of chat.update on the root message: at most one per interval; default 2000. */
  readonly rootUpdateIntervalMs?: number;
  /**
   * chat.update calls per window for this whole poster, every run together (Slack: Tier 3, 50 a minute); a
   * root refresh only takes a free slot, approval edits wait for one. Default { count: 50, perMs: 60000 }.
   */
  readonly updateLimit?: { readonly count: number; readonly perMs: number };
  /**
   * Waits between the tries of a call that failed with a 5xx or a network error; after the last one the
   * message is skipped. Default [1000, 3000, 8000, 18000]: 5 tries over about 30 s.
   */
  readonly retryDelaysMs?: readonly number[];
  /** The clock messages are rendered with (elapsed times, expiry); pacing always uses the real clock. */
  readonly now?: () => Date;
  /**
   * How long a replica's hold on a thread lasts unrenewed (thread-lease.ts): after its holder died, another
   * replica takes the thread over within about this long. Default 15000.
   */
  readonly leaseTtlMs?: number;
  /** How often every open run is looked at again, to take over threads whose replica died. Default 10000. */
  readonly rescanIntervalMs?: number;
  /** Told of every event of a run this poster mirrors, as it handles it (the App Home tab republishes). */
  readonly onRunEvent?: (runId: string, type: string) => void;
}

/** How often undecided approval messages are checked against the store (a decision taken elsewhere). */
const APPROVAL_CHECK_MS = 5000;
/** After an unexpected failure (Redis down), a run's worker starts again from its cursor after this long. */
const RESTART_DELAY_MS = 5000;
const FOLLOW_RETRY_MS = 1000;
/** Where approvalAhead() stops looking: an approval request, or an event that edits or ends the thread. */
const AHEAD_SCAN_STOPS: ReadonlySet<string> = new Set([
  'approval.requested',
  'approval.decided',
  'approval.superseded',
  'run.finished',
]);

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: Error): void;
  state: 'pending' | 'resolved' | 'rejected';
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting: a rejection must not become an unhandled one.
  promise.catch(() => {});
  const d: Deferred = {
    promise,
    state: 'pending',
    resolve() {
      if (d.state !== 'pending') return;
      d.state = 'resolved';
      resolve();
    },
    reject(err) {
      if (d.state !== 'pending') return;
      d.state = 'rejected';
      reject(err);
    },
  };
  return d;
}

/** One watched run: its timeline as read so far, and where the worker is in it. */
interface RunState {
  readonly runId: string;
  readonly log: Logger;
  entries: TimelineEntry[];
  /** Index in `entries` of the first event not handled yet. */
  next: number;
  /** Set when run.finished was read: nothing more will come, stop following. */
  sawFinished: boolean;
  /** Set when run.finished was handled (posted or skipped). */
  finishedHandled: boolean;
  cursor: ThreadCursor;
  /** This replica's hold on the thread: checked before every Slack call and cursor write. */
  readonly lease: HeldLease;
  channel: string;
  /** How the run was asked for when not from Slack (`terminal as alice`): the root message says so. */
  readonly requestedVia: string | undefined;
  /** The cursor's lastId was advanced past events with nothing to post and not written yet. */
  cursorDirty: boolean;
  rootDirty: boolean;
  /** Approval ids whose message should be checked for a decision now. */
  readonly refresh: Set<string>;
  /** Resolves `approvalDecided()` callers once their approval was refreshed. */
  readonly refreshWaiters: Map<string, Deferred[]>;
  lastApprovalCheck: number;
  /** How far approvalAhead() looked for an approval request (or an event it stops at). */
  scanned: number;
  /** An approval request whose post ahead of its backlog failed: it is posted in its turn instead. */
  notAhead: string | undefined;
  /** Approval id -> the message it was last edited to (this worker's memory: saves repeating an edit). */
  readonly shown: Map<string, string>;
  waker: (() => void) | undefined;
  follower: AbortController | undefined;
}

/** `ms-seq` stream ids, compared as numbers. */
function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}

export class ThreadPoster {
  private readonly service: RunService;
  private readonly logger: Logger;
  private readonly rootUpdateIntervalMs: number;
  private readonly now: () => Date;
  private readonly slack: PacedSlack;
  private readonly cursors: ThreadCursors;
  private readonly leases: ThreadLeases;
  private readonly leaseTtlMs: number;
  private readonly rescanIntervalMs: number;
  private readonly onRunEvent: ((runId: string, type: string) => void) | undefined;
  private rescan: NodeJS.Timeout | undefined;

  private readonly runs = new Map<string, RunState>();
  private readonly workers = new Map<string, Promise<void>>();
  private readonly settledBy = new Map<string, Deferred>();
  private readonly stop = new AbortController();
  private closing: Promise<void> | undefined;

  constructor(opts: ThreadPosterOptions) {
    this.service = opts.service;
    this.logger = opts.logger;
    const minPostIntervalMs = opts.minPostIntervalMs ?? 1100;
    this.rootUpdateIntervalMs = opts.rootUpdateIntervalMs ?? 2000;
    const retryDelaysMs = opts.retryDelaysMs ?? RETRY_DELAYS_MS;
    this.now = opts.now ?? (() => new Date());
    for (const [name, value] of [
      ['minPostIntervalMs', minPostIntervalMs],
      ['rootUpdateIntervalMs', this.rootUpdateIntervalMs],
    ] as const) {
      if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a number >= 0`);
    }
    if (!retryDelaysMs.every((ms) => Number.isFinite(ms) && ms >= 0)) {
      throw new RangeError('retryDelaysMs must hold numbers >= 0');
    }
    const updateLimit = opts.updateLimit ?? { count: 50, perMs: 60_000 };
    if (!(Number.isInteger(updateLimit.count) && updateLimit.count > 0 && updateLimit.perMs > 0)) {
      throw new RangeError('updateLimit needs a count >= 1 and perMs > 0');
    }
    // Every wait of every run's worker (its channel's pacing, an update slot, a Retry-After, a lease, a restart)
    // ends at once on close(): one listener on this signal per waiting worker, so as many as runs are mirrored
    // (a region-wide incident: 20-50). Each is removed when its wait ends; the count is bounded by the runs,
    // which Node's default of 10 (a leak warning past it) is not.
    setMaxListeners(0, this.stop.signal);
    this.slack = new PacedSlack({
      client: opts.client,
      minPostIntervalMs,
      retryDelaysMs,
      updateLimit,
      signal: this.stop.signal,
    });
    this.cursors = new ThreadCursors(opts.redis, opts.prefix);
    this.leaseTtlMs = opts.leaseTtlMs ?? 15_000;
    this.rescanIntervalMs = opts.rescanIntervalMs ?? 10_000;
    this.leases = new ThreadLeases(opts.redis, opts.prefix, this.leaseTtlMs);
    this.onRunEvent = opts.onRunEvent;
  }

  private get closed(): boolean {
    return this.stop.signal.aborted;
  }

  /** Starts mirroring a run that has a channel (RunRecord.channel); idempotent per run. */
  watch(runId: string): void {
    if (this.closed) {
      this.logger.warn({ runId }, 'thread poster is closed: run not watched');
      return;
    }
    if (this.workers.has(runId)) return;
    const worker = this.supervise(runId).finally(() => {
      this.workers.delete(runId);
      this.runs.delete(runId);
    });
    this.workers.set(runId, worker);
  }

  /**
   * At start and then every rescanIntervalMs: watch every active run that has a channel, and finish the
   * last posts (run.finished, the final root update) of the threads left open, even of runs that ended
   * since. Each thread is mirrored by the one replica holding its lease; the others wait to take it over.
   */
  async resumeAll(): Promise<void> {
    await this.scan();
    this.rescan ??= setInterval(() => {
      this.scan().catch((err: unknown) =>
        this.logger.warn({ err }, 'looking for threads to take over failed'),
      );
    }, this.rescanIntervalMs);
  }

  private async scan(): Promise<void> {
    const open = await this.cursors.openRuns();
    const active = await this.service.listRuns({ active: true, limit: 10_000 });
    for (const record of active) if (record.channel !== undefined) this.watch(record.runId);
    for (const runId of open) this.watch(runId);
  }

  /**
   * Resolves when the run's run.finished has been posted and the root updated (for tests and shutdown).
   * Rejects when the run has nothing to mirror (no record or no channel) or the poster closes first.
   */
  settled(runId: string): Promise<void> {
    return this.settledFor(runId).promise;
  }

  /**
   * For the Slack action handler: an approval was just decided, update its message now (buttons gone)
   * instead of waiting for the agent's approval.decided event. Resolves once that was tried.
   */
  async approvalDecided(approvalId: string): Promise<void> {
    const stored = await this.service.getApproval(approvalId).catch(() => null);
    const run = stored ? this.runs.get(stored.runId) : undefined;
    if (!run || this.closed) return;
    const waiter = deferred();
    const list = run.refreshWaiters.get(approvalId) ?? [];
    list.push(waiter);
    run.refreshWaiters.set(approvalId, list);
    run.refresh.add(approvalId);
    run.waker?.();
    await waiter.promise.catch(() => {});
  }

  /** Repeat-safe: stops following, flushes nothing new, returns the same promise twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.rescan);
      this.stop.abort();
      for (const run of this.runs.values()) {
        run.follower?.abort();
        run.waker?.();
      }
      await Promise.allSettled([...this.workers.values()]);
      for (const d of this.settledBy.values()) d.reject(new Closed());
    })();
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------------------
  // Worker

  private settledFor(runId: string): Deferred {
    let d = this.settledBy.get(runId);
    if (!d) {
      d = deferred();
      if (this.closed) d.reject(new Closed());
      this.settledBy.set(runId, d);
    }
    return d;
  }

  /**
   * Runs a run's worker while this replica holds the thread's lease; after an unexpected failure (Redis, a
   * bug) or a lost lease, starts again from the stored cursor (possibly waiting for another replica).
   */
  private async supervise(runId: string): Promise<void> {
    const log = this.logger.child({ runId });
    while (!this.closed) {
      const lease = await this.awaitLease(runId);
      if (!lease) return;
      try {
        await this.mirror(runId, log, lease);
        return;
      } catch (err) {
        if (err instanceof Closed || this.closed) return;
        const run = this.runs.get(runId);
        run?.follower?.abort();
        for (const waiters of run?.refreshWaiters.values() ?? []) for (const w of waiters) w.resolve();
        this.runs.delete(runId);
        if (err instanceof LeaseLost) {
          log.warn({ err: err.message }, 'slack thread lease lost: another replica continues the thread');
          continue;
        }
        log.error({ err }, 'slack thread worker failed; starting again from its cursor');
        try {
          await sleepUnlessClosed(RESTART_DELAY_MS, this.stop.signal);
        } catch {
          return;
        }
      } finally {
        await lease.release();
      }
    }
  }

  /** This replica's lease on the thread, once the replica holding it lets go or dies; none once it is done. */
  private async awaitLease(runId: string): Promise<HeldLease | undefined> {
    for (;;) {
      if (this.closed) return undefined;
      const lease = await this.leases.tryAcquire(runId);
      if (lease) return lease;
      if ((await this.cursors.load(runId)).done) {
        this.settledFor(runId).resolve();
        return undefined;
      }
      try {
        await sleepUnlessClosed(Math.max(10, Math.floor(this.leaseTtlMs / 3)), this.stop.signal);
      } catch {
        return undefined;
      }
    }
  }

  private async mirror(runId: string, log: Logger, lease: HeldLease): Promise<void> {
    const record = await this.service.getRun(runId);
    if (!record || record.channel === undefined) {
      const why = record ? 'it has no channel' : 'there is no such run';
      log.warn(`run not mirrored to Slack: ${why}`);
      await this.cursors.markClosed(runId);
      this.settledFor(runId).reject(new Error(`run ${runId} is not mirrored to Slack: ${why}`));
      return;
    }
    const cursor = await this.cursors.load(runId);
    if (cursor.done) {
      await this.cursors.markClosed(runId);
      this.settledFor(runId).resolve();
      return;
    }
    await this.cursors.markOpen(runId);
    const entries = await this.service.readTimeline(runId);
    const last = cursor.lastId;
    const next = last === undefined ? 0 : entries.findIndex((e) => compareIds(e.id, last) > 0);
    const run: RunState = {
      runId,
      log,
      entries,
      next: next === -1 ? entries.length : next,
      sawFinished: entries.some((e) => e.event.type === 'run.finished'),
      finishedHandled: false,
      cursor,
      lease,
      channel: cursor.channel ?? record.channel,
      requestedVia: record.requestedVia,
      cursorDirty: false,
      // Events were handled after the root last changed (or the final update was lost in a restart).
      rootDirty:
        cursor.rootTs !== undefined && cursor.lastId !== undefined && cursor.rootId !== cursor.lastId,
      refresh: new Set(),
      refreshWaiters: new Map(),
      lastApprovalCheck: 0,
      scanned: 0,
      notAhead: undefined,
      shown: new Map(),
      waker: undefined,
      follower: undefined,
    };
    run.finishedHandled = entries.slice(0, run.next).some((e) => e.event.type === 'run.finished');
    // Approvals posted but not shown decided yet: a decision may have been taken while we were away.
    for (const id of cursor.approvals.keys()) if (!cursor.decided.has(id)) run.refresh.add(id);
    this.runs.set(runId, run);
    if (!run.sawFinished) void this.follow(run);

    if (cursor.file !== undefined) await this.uploadPendingFile(run);
    for (;;) {
      if (this.closed) throw new Closed();
      run.lease.assertHeld();
      if (run.refresh.size > 0) {
        await this.refreshApprovals(run);
        continue;
      }
      if (run.rootDirty && this.rootDue(run) <= 0) {
        await this.updateRoot(run);
        continue;
      }
      const entry = run.entries[run.next];
      if (entry !== undefined) {
        const urgent = this.approvalAhead(run);
        if (urgent !== undefined) {
          await this.postAhead(run, urgent);
          continue;
        }
        await this.handle(run, entry, run.next);
        run.next += 1;
        continue;
      }
      // Caught up with the timeline.
      if (run.cursorDirty) {
        await this.saveCursor(run, {});
        continue;
      }
      if (run.rootDirty) {
        await this.idle(run, this.rootDue(run));
        continue;
      }
      if (run.finishedHandled) {
        await this.closeOpenApprovals(run);
        break;
      }
      const undecided = [...run.cursor.approvals.keys()].filter((id) => !run.cursor.decided.has(id));
      if (undecided.length > 0) {
        const wait = run.lastApprovalCheck + APPROVAL_CHECK_MS - Date.now();
        if (wait <= 0) {
          run.lastApprovalCheck = Date.now();
          for (const id of undecided) run.refresh.add(id);
          continue;
        }
        await this.idle(run, wait);
      } else {
        await this.idle(run, undefined);
      }
    }

    run.lease.assertHeld();
    await this.cursors.markDone(runId);
    run.cursor.done = true;
    run.follower?.abort();
    log.debug('slack thread settled');
    this.settledFor(runId).resolve();
  }

  /** Feeds new timeline entries to the worker until run.finished; follows again after a Redis error. */
  private async follow(run: RunState): Promise<void> {
    // Its own controller, aborted by close() (every run's follower) or when the worker stops: no listener on
    // the poster's stop signal per followed run (20 runs were 20 listeners, past Node's leak warning).
    const abort = new AbortController();
    run.follower = abort;
    if (this.closed) return;
    while (!abort.signal.aborted && !run.sawFinished) {
      const after = run.entries.at(-1)?.id ?? '0-0';
      try {
        for await (const entry of this.service.followTimeline(run.runId, after, abort.signal)) {
          run.entries.push(entry);
          if (entry.event.type === 'run.finished') run.sawFinished = true;
          run.waker?.();
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        run.log.warn({ err }, 'following the timeline failed; following again');
        await sleepFor(FOLLOW_RETRY_MS, undefined, { signal: abort.signal }).catch(() => {});
      }
    }
  }

  /** Waits for new entries, an approval refresh, close(), or `ms` (forever when undefined). */
  private idle(run: RunState, ms: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        run.waker = undefined;
        resolve();
      };
      if (ms !== undefined) timer = setTimeout(done, Math.max(0, ms));
      run.waker = done;
      if (this.closed) done();
    });
  }

  /** ms until the root may be refreshed: its own interval, and a free slot in the app's update budget. */
  private rootDue(run: RunState): number {
    return Math.max(
      run.cursor.rootUpdatedAt + this.rootUpdateIntervalMs - Date.now(),
      this.slack.updateFreeIn(),
    );
  }

  // -------------------------------------------------------------------------------------------------------
  // One event

  private async handle(run: RunState, entry: TimelineEntry, index: number): Promise<void> {
    const e = entry.event;
    this.onRunEvent?.(run.runId, e.type);
    if (run.cursor.rootTs === undefined) {
      const view = foldRunView(run.entries.slice(0, index + 1));
      // Before run.started there is no step list to show, and without a root there is no thread to post in.
      if (view === undefined && e.type !== 'run.finished') {
        // Not handled yet as far as the cursor knows: a join made while the run was queued is posted with the
        // root, and a restart before then must find it still ahead of the cursor.
        return;
      }
      if (
        view === undefined ||
        !(await this.postRoot(run, rootMessage(view, this.now(), run.requestedVia), entry))
      ) {
        if (view !== undefined) run.log.error({ event: entry.id }, 'no root message: event not posted');
        this.advance(run, entry);
        return;
      }
      await this.postEarlyJoins(run, index);
      if (e.type === 'run.started') {
        this.advance(run, entry);
        await this.saveCursor(run, {});
        return;
      }
    }
    if (e.type !== 'step.output') run.rootDirty = true;
    if (e.type === 'approval.requested') {
      await this.postApproval(run, entry, e);
      return;
    }

    const shown = threadPost(run.entries, index);
    let message: SlackMessage | undefined;
    let wantsFile = false;
    if (shown?.kind === 'approval') {
      // Part of a decision's story: its approval message says it, edited in place. Only when that message is
      // not in the thread (Slack would not take it) does the event get a post of its own.
      const decision = e.type === 'approval.decided' ? e.decision : undefined;
      if (!(await this.tellApproval(run, shown.approvalId, decision))) message = shown.fallback;
    } else if (shown?.kind === 'post') {
      message = shown.message;
      // A log file only when the step's own output is too long for its post.
      wantsFile = e.type === 'step.finished' && outputPlace(shown.context, e.summary) === 'file';
    }
    if (message === undefined) {
      this.advance(run, entry);
      return;
    }
    const ts = await this.postInThread(run, message, entry);
    // Slack confirmed (or the post was given up on: the thread goes on with the next event); only now does
    // the cursor move. A crash right here posts this message again after a restart: at-least-once's one
    // possible duplicate, never a loss.
    this.advance(run, entry);
    const withFile = ts !== undefined && wantsFile;
    await this.saveCursor(run, withFile ? { file: entry.id } : {});
    if (withFile) await this.uploadPendingFile(run);
  }

  // -------------------------------------------------------------------------------------------------------
  // Urgent first: an approval request does not wait behind the thread's backlog

  /**
   * The index of an approval request the thread has not reached yet although posts are waiting before it (the
   * run went faster than Slack's ~1 post a second): it is posted now, ahead of them, and they follow in one
   * catch-up post. Undefined when the next event is not such a backlog. The scan stops at events that edit
   * earlier messages (a decision, a superseded request) or end the run: those are handled in order first.
   */
  private approvalAhead(run: RunState): number | undefined {
    if (run.cursor.rootTs === undefined) return undefined;
    // The scan goes on from where it stopped last time: a run's timeline holds thousands of output lines.
    run.scanned = Math.max(run.scanned, run.next);
    while (run.scanned < run.entries.length) {
      if (AHEAD_SCAN_STOPS.has((run.entries[run.scanned] as TimelineEntry).event.type)) break;
      run.scanned += 1;
    }
    const i = run.scanned;
    const entry = run.entries[i];
    if (entry?.event.type !== 'approval.requested' || run.notAhead === entry.id) return undefined;
    // Already in the thread from an earlier round (a resumed run asks again): nothing is urgent.
    if (run.cursor.approvals.has(entry.event.approvalId) && run.cursor.ahead !== entry.id) return undefined;
    const waiting = run.entries.slice(run.next, i).some((x) => postsInThread(x.event.type));
    return waiting ? i : undefined;
  }

  /**
   * Posts the approval request at `index` now (its expiry starts as it appears), then one catch-up post for
   * every event before it that the thread had not shown, saying they came before the approval, with one log
   * file for their output. Crash-safe: the cursor records the approval's message and that its catch-up is
   * owed (`ahead`) before anything else is posted; the catch-up moves the cursor past the approval.
   */
  private async postAhead(run: RunState, index: number): Promise<void> {
    const entry = run.entries[index] as TimelineEntry;
    const e = entry.event as Extract<RunEvent, { type: 'approval.requested' }>;
    if (!run.cursor.approvals.has(e.approvalId)) {
      const ts = await this.postApproval(run, entry, e, 'ahead');
      if (ts === undefined) {
        // Slack would not take it: post it in its turn, after the backlog, rather than try for ever here.
        run.notAhead = entry.id;
        return;
      }
      run.rootDirty = true;
    }
    const from = run.next;
    // Earlier approvals' stories went on in the backlog (sent, done): their messages say so first. Edits are
    // repeat-safe, so a crash before the cursor below only repeats them.
    const told = new Set<string>();
    for (let i = from; i < index; i++) {
      const shown = threadPost(run.entries, i);
      if (shown?.kind !== 'approval' || told.has(shown.approvalId)) continue;
      told.add(shown.approvalId);
      await this.tellApproval(run, shown.approvalId);
    }
    const message = catchUpMessage(run.entries, from, index, e);
    run.lease.assertHeld();
    if (message !== undefined) {
      await this.slack.post(run.log, run.channel, message, run.cursor.rootTs, `catch-up ${entry.id}`);
    }
    run.next = index + 1;
    this.advance(run, entry);
    run.rootDirty = true;
    run.lease.assertHeld();
    await this.cursors.caughtUp(run.runId, { lastId: entry.id });
    delete run.cursor.ahead;
    run.cursorDirty = false;
  }

  private advance(run: RunState, entry: TimelineEntry): void {
    run.cursor.lastId = entry.id;
    run.cursorDirty = true;
    if (entry.event.type === 'run.finished') {
      run.finishedHandled = true;
      run.rootDirty = run.cursor.rootTs !== undefined;
    }
  }

  private async saveCursor(run: RunState, extra: Record<string, string>): Promise<void> {
    const fields: Record<string, string> = { ...extra };
    if (run.cursor.lastId !== undefined) fields.lastId = run.cursor.lastId;
    if (Object.keys(fields).length === 0) return;
    run.lease.assertHeld();
    await this.cursors.save(run.runId, fields);
    if (extra.file !== undefined) run.cursor.file = extra.file;
    run.cursorDirty = false;
  }

  /**
   * Posts the root, showing the run up to `entry`. The root is all run.started shows, so that event is
   * handled with it; any other event (the root failed before) still has its own post to make.
   */
  private async postRoot(run: RunState, message: SlackMessage, entry: TimelineEntry): Promise<boolean> {
    run.lease.assertHeld();
    const ts = await this.slack.post(run.log, run.channel, message, undefined, 'root message');
    if (ts === undefined) return false;
    run.cursor.rootTs = ts;
    run.cursor.channel = run.channel;
    run.cursor.rootUpdatedAt = Date.now();
    run.cursor.rootId = entry.id;
    const fields: Record<string, string> = {
      channel: run.channel,
      rootTs: ts,
      rootId: entry.id,
      rootUpdatedAt: String(run.cursor.rootUpdatedAt),
    };
    // The cursor stays where it was: the joins made while the run was queued (before run.started) are posted
    // next, each moving it past itself, so that a restart in between posts the rest of them, not none.
    run.lease.assertHeld();
    await this.cursors.save(run.runId, fields);
    return true;
  }

  /**
   * Who joined the run while it was queued (an identical ask, an alert group) came before run.started, when
   * there was no thread yet: their posts go in the thread right after its root, each moving the cursor past it
   * (the cursor stayed before them until now: a restart in between posts the rest, in order).
   */
  private async postEarlyJoins(run: RunState, index: number): Promise<void> {
    for (const early of run.entries.slice(0, index)) {
      const message = early.event.type === 'run.joined' ? threadMessage(early) : undefined;
      if (message === undefined) continue;
      await this.postInThread(run, message, early);
      this.advance(run, early);
      await this.saveCursor(run, {});
    }
  }

  private async postInThread(run: RunState, message: SlackMessage, entry: TimelineEntry) {
    run.lease.assertHeld();
    return this.slack.post(
      run.log,
      run.channel,
      message,
      run.cursor.rootTs,
      `${entry.event.type} ${entry.id}`,
    );
  }

  /**
   * Posts an approval request in its turn, or (`ahead`) before the events still waiting in front of it: then
   * the cursor does not move past those, it records that their catch-up post is owed. Returns the message's
   * ts, undefined when Slack would not take it or it was posted before.
   */
  private async postApproval(
    run: RunState,
    entry: TimelineEntry,
    e: Extract<RunEvent, { type: 'approval.requested' }>,
    turn: 'in-order' | 'ahead' = 'in-order',
  ): Promise<string | undefined> {
    const id = e.approvalId;
    if (run.cursor.approvals.has(id)) {
      // Already posted (a resumed run asks again for the same approval): the one message stays.
      run.refresh.add(id);
      this.advance(run, entry);
      return undefined;
    }
    const approval = (await this.storedApproval(run, id)) ?? {
      approvalId: id,
      runId: run.runId,
      stepId: e.stepId,
      request: e.request,
      requestedAt: entry.at,
      // Unknown: the message then shows no expiry rather than a made-up one.
      expiresAt: '',
    };
    // Rendered when its turn to be posted has come: the request's expiry is moved to run from that moment
    // (people get the whole APPROVAL_TIMEOUT to decide from when they can see it), and the message says until
    // when. A store that cannot be reached leaves the expiry as it was asked.
    const render = async () => {
      const shown =
        approval.decision === undefined
          ? await this.service.approvalShown(id).catch((err: unknown) => {
              run.log.warn({ approvalId: id, err }, 'cannot restart the expiry at posting');
              return null;
            })
          : null;
      return approvalMessage(shown ?? approval, this.now());
    };
    run.lease.assertHeld();
    const ts = await this.slack.post(run.log, run.channel, render, run.cursor.rootTs, `approval ${id}`);
    if (turn === 'in-order') this.advance(run, entry);
    const extra: Record<string, string> = {};
    if (ts !== undefined) {
      run.cursor.approvals.set(id, ts);
      extra[`approval:${id}`] = ts;
      if (approval.decision !== undefined) {
        run.cursor.decided.add(id);
        extra[`decided:${id}`] = '1';
      }
    }
    if (turn === 'ahead') {
      if (ts === undefined) return undefined;
      extra.ahead = entry.id;
      run.cursor.ahead = entry.id;
      run.lease.assertHeld();
      await this.cursors.save(run.runId, extra);
      return ts;
    }
    await this.saveCursor(run, extra);
    return ts;
  }

  private async storedApproval(run: RunState, id: string): Promise<StoredApproval | null> {
    try {
      return await this.service.getApproval(id);
    } catch (err) {
      run.log.warn({ approvalId: id, err }, 'stored approval unreadable');
      return null;
    }
  }

  private async refreshApprovals(run: RunState): Promise<void> {
    const ids = [...run.refresh];
    run.refresh.clear();
    for (const id of ids) {
      try {
        await this.refreshApproval(run, id);
      } finally {
        for (const w of run.refreshWaiters.get(id) ?? []) w.resolve();
        run.refreshWaiters.delete(id);
      }
    }
  }

  /**
   * Edits the approval message to its decided variant (buttons gone) once the approval has a decision (or
   * was superseded); until then nothing changes.
   */
  private async refreshApproval(run: RunState, id: string): Promise<void> {
    if (!run.cursor.approvals.has(id) || run.cursor.decided.has(id)) return;
    const stored = await this.storedApproval(run, id);
    if (stored === null || (stored.decision === undefined && stored.superseded === undefined)) return;
    await this.tellApproval(run, id);
  }

  /**
   * Edits the approval message to tell the decision's story so far: the request, its votes or decision, and
   * what the timeline says happened since (approval-story.ts). False when the message is not in the thread.
   * `fromEvent`: the decision as the agent's event carries it, for a store that does not show it (yet).
   */
  private async tellApproval(
    run: RunState,
    id: string,
    fromEvent?: StoredApproval['decision'],
    opts: { readonly runEnded?: boolean } = {},
  ): Promise<boolean> {
    const ts = run.cursor.approvals.get(id);
    if (ts === undefined) return false;
    const stored = (await this.storedApproval(run, id)) ?? this.approvalFromTimeline(run, id);
    if (stored === undefined) return true;
    const decision = stored.decision ?? fromEvent;
    const approval = decision === undefined ? stored : { ...stored, decision };
    const final = decision !== undefined || stored.superseded !== undefined || opts.runEnded === true;
    const message = approvalMessage(approval, this.now(), {
      story: approvalStory(run.entries, id),
      ...(opts.runEnded === true ? { runEnded: true } : {}),
    });
    // The same story told again (a restart, a click and the agent's event): no edit.
    const said = JSON.stringify(message);
    if (run.shown.get(id) === said) return true;
    run.lease.assertHeld();
    const ok = await this.slack.update(run.log, run.channel, ts, message, `approval ${id}`);
    if (!ok) return true;
    run.shown.set(id, said);
    if (final && !run.cursor.decided.has(id)) {
      run.cursor.decided.add(id);
      run.lease.assertHeld();
      await this.cursors.save(run.runId, { [`decided:${id}`]: '1' });
    }
    return true;
  }

  /** The approval as the timeline has it, when the store cannot be read: its request, and its decision. */
  private approvalFromTimeline(run: RunState, id: string): StoredApproval | undefined {
    let approval: StoredApproval | undefined;
    for (const { event: e, at } of run.entries) {
      if (e.type === 'approval.requested' && e.approvalId === id && approval === undefined) {
        // Unknown expiry: the message then shows none rather than a made-up one.
        approval = {
          approvalId: id,
          runId: run.runId,
          stepId: e.stepId,
          request: e.request,
          requestedAt: at,
          expiresAt: '',
        };
      } else if (e.type === 'approval.decided' && e.approvalId === id && approval !== undefined) {
        approval = { ...approval, decision: e.decision };
      }
    }
    return approval;
  }

  /**
   * A run that ended with an approval still open (cancelled while parked on it) must not leave live buttons
   * behind: the message loses them and says why. The decision, if one was taken after all, wins.
   */
  private async closeOpenApprovals(run: RunState): Promise<void> {
    for (const id of run.cursor.approvals.keys()) {
      if (run.cursor.decided.has(id)) continue;
      await this.refreshApproval(run, id);
      if (run.cursor.decided.has(id)) continue;
      await this.tellApproval(run, id, undefined, { runEnded: true });
    }
  }

  private async updateRoot(run: RunState): Promise<void> {
    const ts = run.cursor.rootTs;
    const handled = run.entries.slice(0, run.next);
    const view = foldRunView(handled);
    const lastId = handled.at(-1)?.id;
    run.rootDirty = false;
    if (ts === undefined || view === undefined || lastId === undefined) return;
    run.lease.assertHeld();
    const sent = await this.slack.updateIfFree(
      run.log,
      run.channel,
      ts,
      rootMessage(view, this.now(), run.requestedVia),
      'root message',
    );
    if (sent === 'deferred') {
      // Another run took the free slot, or Slack said 429: the thread's posts go on, the root refreshes
      // with the newest state once a slot is free (rootDue waits for it).
      run.rootDirty = true;
      return;
    }
    // Counted even when the update failed: the next change tries again, one interval later.
    run.cursor.rootUpdatedAt = Date.now();
    run.cursor.rootId = lastId;
    run.lease.assertHeld();
    await this.cursors.save(run.runId, { rootId: lastId, rootUpdatedAt: String(run.cursor.rootUpdatedAt) });
  }

  // -------------------------------------------------------------------------------------------------------
  // Log files

  private async uploadPendingFile(run: RunState): Promise<void> {
    const fileId = run.cursor.file;
    if (fileId === undefined) return;
    // A `<from>..<to>` range is a catch-up's file owed by an older version: catch-ups have no file now.
    const file = fileId.includes('..')
      ? undefined
      : stepLogFile(
          run.runId,
          run.entries,
          run.entries.findIndex((x) => x.id === fileId),
        );
    if (file !== undefined && run.cursor.rootTs !== undefined) {
      run.lease.assertHeld();
      await this.slack.upload(run.log, run.channel, run.cursor.rootTs, file);
    }
    run.lease.assertHeld();
    await this.cursors.clearFile(run.runId);
    delete run.cursor.file;
  }
}
