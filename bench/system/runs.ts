/** Starting runs through Slack (signed /capi) and reading back what the product stored and posted. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { type RunRecord, RunRegistry } from '../../src/runs/registry.js';
import { RunTimeline, type TimelineEntry } from '../../src/runs/timeline.js';
import { until } from './processes.js';
import { OPERATOR, SIGNING_SECRET } from './serve.js';
import { approveClick, postSigned, slashCommand } from './signed.js';
import type { FakeSlackProcess } from './slack.js';

export interface StartedRun {
  readonly channel: string;
  /** Epoch ms at which the ack (HTTP 200) arrived. */
  readonly ackAt: number;
  readonly runId: string;
}

export class RunsView {
  readonly registry: RunRegistry;
  readonly timeline: RunTimeline;

  constructor(
    redis: Redis,
    prefix: string,
    private readonly slack: FakeSlackProcess,
  ) {
    this.registry = new RunRegistry(redis, prefix);
    this.timeline = new RunTimeline(redis, prefix);
  }

  /** `/capi <text>` in `channel` as the operator; resolves once the product stored the run it started. */
  async start(base: string, channel: string, text: string): Promise<StartedRun> {
    const [url] = await this.slack.responseUrls(OPERATOR, channel, 1);
    const status = await postSigned(
      base,
      SIGNING_SECRET,
      slashCommand(OPERATOR, channel, text, url as string),
    );
    const ackAt = Date.now();
    if (status !== 200) throw new Error(`/capi ${text} in ${channel} was answered ${status}`);
    const record = await until(
      `the run started by /capi ${text} in ${channel}`,
      async () => (await this.registry.list({ limit: 200 })).find((r) => r.channel === channel),
      30_000,
      20,
    );
    return { channel, ackAt, runId: record.runId };
  }

  async finished(runIds: readonly string[], timeoutMs: number): Promise<RunRecord[]> {
    return until(
      `${runIds.length} run(s) to finish`,
      async () => {
        const records = await Promise.all(runIds.map((id) => this.registry.get(id)));
        const done = records.filter(
          (r): r is RunRecord =>
            r !== null && ['succeeded', 'failed', 'denied', 'cancelled'].includes(r.status),
        );
        return done.length === runIds.length ? done : undefined;
      },
      timeoutMs,
      250,
    );
  }
}

/** Stream ids carry Redis's clock in ms: one clock for every writer. */
export const entryMs = (e: TimelineEntry): number => Number(e.id.split('-')[0]);

/**
 * The time from one step's end to the next step's start (checkpoint, timeline, run record: the product's
 * bookkeeping between two commands), for each pair of steps that directly follow each other.
 */
export function betweenStepGaps(entries: readonly TimelineEntry[]): number[] {
  const gaps: number[] = [];
  const steps = entries.filter((e) => e.event.type !== 'step.output');
  for (let i = 0; i + 1 < steps.length; i++) {
    const a = steps[i] as TimelineEntry;
    const b = steps[i + 1] as TimelineEntry;
    if (a.event.type === 'step.finished' && b.event.type === 'step.started')
      gaps.push(entryMs(b) - entryMs(a));
  }
  return gaps;
}

/** Time per step from the first step's start to the last step's end. */
export function perStepMs(entries: readonly TimelineEntry[], steps: number): number {
  const first = entries.find((e) => e.event.type === 'step.started');
  const last = entries.findLast((e) => e.event.type === 'step.finished');
  if (first === undefined || last === undefined) return Number.NaN;
  return (entryMs(last) - entryMs(first)) / steps;
}

/** Clicks Approve (as the approver, signed) on every approval message that shows the button. */
export function startApprover(base: string, slack: FakeSlackProcess, everyMs = 300) {
  const clicked = new Set<string>();
  let stopped = false;
  let failures = 0;
  const loop = (async () => {
    while (!stopped) {
      for (const { channel, ts, id } of await slack.approvals()) {
        if (clicked.has(id)) continue;
        clicked.add(id);
        postSigned(base, SIGNING_SECRET, approveClick('U0APPROVER', channel, ts, id)).then(
          (status) => {
            if (status !== 200) failures += 1;
          },
          () => {
            failures += 1;
          },
        );
      }
      await sleep(everyMs);
    }
  })();
  return {
    get clicks() {
      return clicked.size;
    },
    get failures() {
      return failures;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}
