/**
 * The runs of this agent's queues that no agent is running right now (queued, parked at an approval, handed
 * over at shutdown): every agent of their site keeps their site locks alive, so a lock lapses only when no
 * agent is left, and ends the runs that nobody holds any more (see orphans.ts), never leaving one "running"
 * with no owner.
 */
import { Queue } from 'bullmq';
import { publicSite } from '../engine/scope.js';
import { readOnlyQueue } from '../queue/queues.js';
import { restoreRunbook } from '../runbook/copy.js';
import type { Runbook } from '../runbook/model.js';
import { targetKey } from '../runs/lock.js';
import { isFinalStatus, type RunRecord } from '../runs/registry.js';
import { type AgentOptions, DEFAULT_ORPHAN_GRACE_MS } from './options.js';
import { OrphanWatch } from './orphans.js';
import type { RunEnds } from './run-ends.js';
import type { RunStores } from './stores.js';

export class IdleRuns {
  /** Reads job states (the workers only take jobs). */
  private readonly stateQueues: Map<string, Queue>;
  private readonly orphans: OrphanWatch;
  private watching: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: {
      readonly opts: AgentOptions;
      readonly stores: RunStores;
      readonly ends: RunEnds;
      /** The site queues this agent serves; their read-only queues are watched too. */
      readonly siteQueues: readonly string[];
      readonly lockTtlMs: number;
    },
  ) {
    const { opts, stores } = deps;
    this.stateQueues = new Map(
      deps.siteQueues
        .flatMap((name) => [name, readOnlyQueue(name)])
        .map((name) => [name, new Queue(name, { connection: stores.redis, prefix: opts.prefix })] as const),
    );
    for (const [name, q] of this.stateQueues) {
      q.on('error', (err) => opts.logger.warn({ queue: name, err }, 'queue error'));
    }
    this.orphans = new OrphanWatch({
      graceMs: opts.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS,
      jobState: async (r) => (await this.stateQueues.get(r.queue)?.getJobState(r.runId)) ?? 'active',
      end: (seen, state) => this.endOrphan(seen, state),
    });
  }

  /** Looks every third of the site lock's TTL; a look still under way is not started again. */
  start(): void {
    this.timer = setInterval(
      () => {
        this.watching ??= this.watch().finally(() => {
          this.watching = undefined;
        });
      },
      Math.max(50, Math.floor(this.deps.lockTtlMs / 3)),
    );
  }

  /** No new look from now on. */
  stop(): void {
    clearInterval(this.timer);
  }

  /** Waits for the look under way, then closes the queues it reads. */
  async close(): Promise<void> {
    await this.watching;
    for (const q of this.stateQueues.values()) {
      try {
        await q.close();
      } catch (err) {
        this.deps.opts.logger.warn({ err }, 'closing a queue failed');
      }
    }
  }

  /**
   * Keeps the site locks of runs that no agent is running right now for as long as some agent of their site
   * is alive (the script renews only a lock the run holds), and ends the runs nobody holds any more.
   */
  private async watch(): Promise<void> {
    const { registry, lock } = this.deps.stores;
    try {
      const active = (await registry.list({ active: true, limit: 1000 })).filter((r) =>
        this.stateQueues.has(r.queue),
      );
      for (const r of active) {
        if (r.status === 'running') continue;
        await lock.refreshIdle(targetKey(r.site), r.runId, registry.recordKey(r.runId), this.deps.lockTtlMs);
      }
      await this.orphans.look(active);
    } catch (err) {
      this.deps.opts.logger.warn({ err }, 'cannot look after the idle runs');
    }
  }

  /**
   * Ends a run that nobody holds (see orphans.ts), as its owner from now on: a new fence first, so an agent
   * that still believed it held the run writes nothing more. Its destructive attempt that nobody saw return
   * makes it OUTCOME UNKNOWN, with the site held.
   */
  private async endOrphan(seen: RunRecord, state: string): Promise<void> {
    const { fences, registry, checkpoints } = this.deps.stores;
    const { ends, opts } = this.deps;
    const fence = await fences.take(seen.runId);
    const record = await registry.get(seen.runId);
    if (!record) return;
    if (isFinalStatus(record.status)) {
      await ends.appendMissingFinish(record, fence);
      return;
    }
    const stored = await registry.storedRunbook(record.runId);
    let runbook: Runbook | undefined;
    let captured: Record<string, unknown> = {};
    try {
      runbook = stored === null ? undefined : restoreRunbook(stored);
      captured = { ...(await checkpoints.load(record.runId))?.captured };
    } catch {
      // What cannot be read only makes the check-by-hand text less specific.
    }
    const site = opts.sites.get(record.site);
    const scope = { ...(site ? { site: publicSite(site) } : {}), params: { ...record.params }, ...captured };
    const job = state === 'unknown' ? 'gone' : state;
    await ends.endWithoutEngine(
      record,
      fence,
      'failed',
      `no agent holds run ${record.runId} any more: its job is ${job} while the run was ${record.status}`,
      record.createdAt,
      { scope, ...(runbook ? { runbook } : {}) },
    );
    opts.logger.warn({ runId: record.runId, job, status: record.status }, 'ended a run that no agent held');
  }
}
