/**
 * Never a run left "running" with no owner. A run's owner is whoever holds its BullMQ job: while the job is
 * waiting, delayed or active some agent has it or will take it (a dead agent's active job comes back through
 * BullMQ's stalled-job check). A run that is not finished while its job is completed, failed or gone (an agent
 * that threw past its own bookkeeping, a job removed by hand, a submit that died between record and job) has
 * nobody: the agents' watch over idle runs finds it, and once it has looked the same for a grace period (so a
 * run just being submitted is never mistaken for one), ends it.
 */
import type { RunRecord } from '../runs/registry.js';

/** BullMQ job states in which no agent holds the run and none will. */
const OWNERLESS = new Set(['completed', 'failed', 'unknown']);

export class OrphanWatch {
  /** Runs seen ownerless, since when, and their record's updatedAt then (a change means someone acts on it). */
  private readonly suspects = new Map<string, { readonly since: number; readonly updatedAt: string }>();

  constructor(
    private readonly opts: {
      readonly graceMs: number;
      /** The BullMQ state of the run's job (`unknown` when there is none). */
      readonly jobState: (record: RunRecord) => Promise<string>;
      /** Ends a run nobody holds; `state` is its job's. */
      readonly end: (record: RunRecord, state: string) => Promise<void>;
      readonly now?: () => number;
    },
  ) {}

  /** One look at the active runs this agent serves. */
  async look(active: readonly RunRecord[]): Promise<void> {
    const now = (this.opts.now ?? Date.now)();
    const seen = new Set<string>();
    for (const r of active) {
      seen.add(r.runId);
      const state = await this.opts.jobState(r);
      if (!OWNERLESS.has(state)) {
        this.suspects.delete(r.runId);
        continue;
      }
      const suspect = this.suspects.get(r.runId);
      if (suspect === undefined || suspect.updatedAt !== r.updatedAt) {
        this.suspects.set(r.runId, { since: now, updatedAt: r.updatedAt });
      } else if (now - suspect.since >= this.opts.graceMs) {
        this.suspects.delete(r.runId);
        await this.opts.end(r, state);
      }
    }
    for (const id of this.suspects.keys()) if (!seen.has(id)) this.suspects.delete(id);
  }
}
