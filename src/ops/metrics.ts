/**
 * The product's Prometheus metrics, in one registry per process (README "Metrics" lists them). Run, step and
 * approval metrics are derived from the run events an agent stores (run-observer.ts), so each event counts
 * once however many replicas run; queue depths and waiting approvals are read from Redis when scraped.
 */
import type { FetchFunction } from '@slack/web-api';
import {
  AggregatorRegistry,
  type CollectFunction,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  Registry,
} from 'prom-client';

/** What a scrape reads from Redis: the same numbers from every replica, so alert on max(), not sum(). */
export interface RedisSnapshot {
  readonly queues: readonly {
    readonly queue: string;
    readonly waiting: number;
    readonly active: number;
    readonly delayed: number;
    /** BullMQ workers connected to the queue, from any agent (CLIENT LIST). */
    readonly workers: number;
  }[];
  /** Runs not finished yet, by status. */
  readonly activeRuns: Readonly<Record<string, number>>;
  /** How long the oldest undecided approval has waited, in seconds; 0 when none waits. */
  readonly oldestApprovalWaitSeconds: number;
}

export type ApprovalOutcome = 'approved' | 'denied' | 'expired' | 'refused' | 'rejected' | 'superseded';
export type SlackCallResult = 'ok' | '429' | '5xx' | 'error';

/** Every metric name the product exports (the alert rules are checked against this list). */
export const METRIC_NAMES = [
  'capi_runs_started_total',
  'capi_runs_finished_total',
  'capi_runs_active',
  'capi_step_duration_seconds',
  'capi_approval_wait_seconds',
  'capi_approvals_total',
  'capi_approval_oldest_wait_seconds',
  'capi_destructive_commands_total',
  'capi_ssh_connects_total',
  'capi_slack_api_calls_total',
  'capi_queue_jobs',
  'capi_queue_workers',
  'capi_agent_workers_running',
] as const;

const SCRAPE_CACHE_MS = 1000;

export class Metrics {
  readonly registry = new Registry();
  readonly runsStarted: Counter<'runbook'>;
  readonly runsFinished: Counter<'runbook' | 'status'>;
  readonly stepDuration: Histogram<'runbook' | 'step' | 'status'>;
  readonly approvalWait: Histogram<'runbook' | 'outcome'>;
  readonly approvals: Counter<'runbook' | 'outcome'>;
  readonly destructiveCommands: Counter<'runbook' | 'step'>;
  readonly sshConnects: Counter<'result'>;
  readonly slackCalls: Counter<'method' | 'result'>;
  readonly agentWorkers: Gauge<'queue'>;
  private source: (() => Promise<RedisSnapshot>) | undefined;
  private cached: { at: number; snapshot: Promise<RedisSnapshot> } | undefined;
  private readonly others: (() => Promise<object[]>)[] = [];

  constructor(opts: { readonly processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.runsStarted = new Counter({
      name: 'capi_runs_started_total',
      help: 'Runs that started (run.started stored), by runbook.',
      labelNames: ['runbook'],
      registers,
    });
    this.runsFinished = new Counter({
      name: 'capi_runs_finished_total',
      help: 'Runs that finished, by runbook and status (succeeded, failed, denied, cancelled).',
      labelNames: ['runbook', 'status'],
      registers,
    });
    this.stepDuration = new Histogram({
      name: 'capi_step_duration_seconds',
      help: 'How long each step took, by runbook, step and status.',
      labelNames: ['runbook', 'step', 'status'],
      buckets: [0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
      registers,
    });
    this.approvalWait = new Histogram({
      name: 'capi_approval_wait_seconds',
      help: 'From an approval request to its decision (or expiry), by runbook and outcome.',
      labelNames: ['runbook', 'outcome'],
      buckets: [5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600],
      registers,
    });
    this.approvals = new Counter({
      name: 'capi_approvals_total',
      help: 'Approval outcomes: approved, denied, expired, refused (someone not allowed to decide), superseded.',
      labelNames: ['runbook', 'outcome'],
      registers,
    });
    this.destructiveCommands = new Counter({
      name: 'capi_destructive_commands_total',
      help: 'Destructive commands sent to a jumphost (one per recorded attempt), by runbook and step.',
      labelNames: ['runbook', 'step'],
      registers,
    });
    this.sshConnects = new Counter({
      name: 'capi_ssh_connects_total',
      help: 'SSH connections to a jumphost, by result (ok, error).',
      labelNames: ['result'],
      registers,
    });
    this.slackCalls = new Counter({
      name: 'capi_slack_api_calls_total',
      help: 'Slack Web API calls, by method and result (ok, 429, 5xx, error).',
      labelNames: ['method', 'result'],
      registers,
    });
    this.agentWorkers = new Gauge({
      name: 'capi_agent_workers_running',
      help: "This process's BullMQ workers that are running, by queue.",
      labelNames: ['queue'],
      registers,
    });
    // Gauges filled from the Redis snapshot at scrape time; emptied first, so a queue or status that is gone
    // does not linger with its last value.
    const snapshot = () => this.snapshot();
    const fromSnapshot = <T extends string>(
      fill: (g: Gauge<T>, s: RedisSnapshot) => void,
    ): CollectFunction<Gauge<T>> =>
      async function (this: Gauge<T>) {
        this.reset();
        const s = await snapshot();
        if (s) fill(this, s);
      };
    new Gauge({
      name: 'capi_queue_jobs',
      help: 'Jobs in each run queue by state (waiting, active, delayed: parked at an approval).',
      labelNames: ['queue', 'state'],
      registers,
      collect: fromSnapshot<'queue' | 'state'>((g, s) => {
        for (const q of s.queues) {
          for (const state of ['waiting', 'active', 'delayed'] as const) {
            g.set({ queue: q.queue, state }, q[state]);
          }
        }
      }),
    });
    new Gauge({
      name: 'capi_queue_workers',
      help: 'Agents (BullMQ workers) connected to each run queue, seen from Redis.',
      labelNames: ['queue'],
      registers,
      collect: fromSnapshot<'queue'>((g, s) => {
        for (const q of s.queues) g.set({ queue: q.queue }, q.workers);
      }),
    });
    new Gauge({
      name: 'capi_runs_active',
      help: 'Runs not finished yet, by status (queued, running, waiting_approval, interrupted).',
      labelNames: ['status'],
      registers,
      collect: fromSnapshot<'status'>((g, s) => {
        for (const [status, n] of Object.entries(s.activeRuns)) g.set({ status }, n);
      }),
    });
    new Gauge({
      name: 'capi_approval_oldest_wait_seconds',
      help: 'How long the oldest undecided approval has been waiting (0 when none waits).',
      registers,
      collect: fromSnapshot<string>((g, s) => g.set(s.oldestApprovalWaitSeconds)),
    });
  }

  /** Where scrapes read queue depths and waiting approvals; without one those gauges stay empty. */
  readFromRedis(source: () => Promise<RedisSnapshot>): void {
    this.source = source;
    this.cached = undefined;
  }

  /** One Redis read per scrape, shared by the gauges that need it; a failed read leaves them empty. */
  private async snapshot(): Promise<RedisSnapshot | undefined> {
    if (!this.source) return undefined;
    const now = Date.now();
    if (!this.cached || now - this.cached.at > SCRAPE_CACHE_MS) {
      this.cached = { at: now, snapshot: this.source() };
    }
    try {
      return await this.cached.snapshot;
    } catch {
      this.cached = undefined;
      return undefined;
    }
  }

  /**
   * Metrics kept elsewhere in this process (serve's agent thread), as getMetricsAsJSON() gives them: exported
   * with these on every scrape, summed by name and labels. One that does not answer is left out of that scrape.
   */
  mergeFrom(source: () => Promise<object[]>): void {
    this.others.push(source);
  }

  async text(): Promise<string> {
    if (this.others.length === 0) return this.registry.metrics();
    const all = await Promise.all([
      this.registry.getMetricsAsJSON(),
      ...this.others.map((other) => other().catch(() => [])),
    ]);
    return AggregatorRegistry.aggregate(all).metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** `fetch` for the Slack WebClient that counts every Web API call by method and result. */
export function meteredFetch(metrics: Metrics, inner: typeof fetch = globalThis.fetch): FetchFunction {
  return async (input, init) => {
    const url = new URL(String(input));
    // `https://slack.com/api/chat.postMessage` -> `chat.postMessage`; a command's response_url
    // (`https://hooks.slack.com/commands/…`) -> `response_url`; anything else (a file's upload URL) is one
    // bucket, so a URL that carries a token-like path never becomes a label.
    const last = url.pathname.split('/').at(-1) ?? '';
    const api = /^[a-z]+(\.[A-Za-z]+)+$/.test(last);
    const method = api ? last : url.pathname.startsWith('/commands/') ? 'response_url' : 'other';
    try {
      const res = await inner(input, init as RequestInit | undefined);
      metrics.slackCalls.inc({ method, result: await slackResult(res, api) });
      return res;
    } catch (err) {
      metrics.slackCalls.inc({ method, result: 'error' });
      throw err;
    }
  };
}

async function slackResult(res: Response, api: boolean): Promise<SlackCallResult> {
  if (res.status === 429) return '429';
  if (res.status >= 500) return '5xx';
  if (!res.ok) return 'error';
  // Only Web API methods answer `{ ok }`; an upload URL answers plain text.
  if (!api) return 'ok';
  try {
    const body = (await res.clone().json()) as { ok?: unknown };
    return body.ok === true ? 'ok' : 'error';
  } catch {
    return 'error';
  }
}
