import type { Logger } from 'pino';
import type { SiteProfile } from '../config/site.js';
import type { AuditLog } from '../ops/audit.js';
import type { Metrics } from '../ops/metrics.js';
import type { RedisClient } from '../redis/connection.js';
import type { RunbookSet } from '../runbook/load.js';
import type { DecideResult, StoredApproval } from '../runs/approvals.js';
import type { Attempt } from '../runs/attempts.js';
import type { Refusal } from '../runs/policy.js';
import type { ReadOnlyLimits } from '../runs/readonly-runs.js';
import type { RunRecord } from '../runs/registry.js';
import type { TimelineEntry } from '../runs/timeline.js';
import type { DecisionSigner } from '../signing/statement.js';

/** Everything stored about one run: what a postmortem export writes before RUN_RETENTION ends. */
export interface RunArchive {
  readonly record: RunRecord;
  /** Every approval request of the run with its decision, oldest first. */
  readonly approvals: StoredApproval[];
  /** Every destructive attempt on record. */
  readonly attempts: Attempt[];
  readonly timeline: TimelineEntry[];
  /** Milliseconds until the run expires from Redis; null while it is kept (not finished). */
  readonly expiresInMs: number | null;
}

export interface RunRequest {
  readonly runbook: string;
  readonly args: readonly string[];
  readonly site: string;
  readonly requestedBy: string;
  /** Where it was asked from when not Slack (`terminal as alice`): kept on the record and audited. */
  readonly via?: string;
  readonly channel?: string;
}

export interface RunServiceOptions {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly runbooks: RunbookSet;
  readonly sites: ReadonlyMap<string, SiteProfile>;
  readonly approvalTimeoutMs: number;
  readonly approvers: readonly string[];
  readonly allowSelfApproval: boolean;
  /** Whether user groups in `approvers` grant the right (CAPI_TRUST_SLACK_GROUPS); default false. */
  readonly trustSlackGroups?: boolean;
  /**
   * Signs every decision this front records (serve: its own key). A terminal has none and passes the
   * operator's SSH signer with each decision instead. No signer: decide() records nothing.
   */
  readonly decisionSigner?: DecisionSigner;
  readonly logger: Logger;
  /** Run requests, decisions, refusals and cancels are audited here, where a human makes them. */
  readonly audit?: AuditLog;
  readonly metrics?: Metrics;
  /**
   * How long BullMQ keeps a finished job (its id, data and return value); the run's own record and timeline
   * are kept for RUN_RETENTION by the agent. Default: 7 days, and at most 1000 jobs per queue.
   */
  readonly jobRetention?: { readonly ageSeconds: number; readonly count: number };
  /** How long a front waits for an agent's doctor checks. Default 5 min (a dozen checks, each bounded to 60 s). */
  readonly doctorTimeoutMs?: number;
  /** REDIS_WAIT_REPLICAS: decisions and cancels are confirmed on that many replicas (WAIT). Default 0. */
  readonly waitReplicas?: number;
  /** How long confirming a decision or a cancel (WAITAOF, WAIT) may take. Default 2 s: a Slack dialog waits for it and must be answered within 3 s. */
  readonly confirmTimeoutMs?: number;
  /** Read-only runs started per person and per site in a window (CAPI_READONLY_*). */
  readonly readOnlyLimits?: ReadOnlyLimits;
}

/**
 * What asking for a run did: started one, or joined the identical read-only run already queued or running
 * (`firstJoin`: this asker's join was new, and its thread shows it).
 */
export type RunStart =
  | { readonly kind: 'started'; readonly record: RunRecord }
  | { readonly kind: 'joined'; readonly record: RunRecord; readonly firstJoin: boolean };

/** Automation asking for a read-only run (an alert group): no person's limit, and the joins say what asked. */
export interface AutomatedAsk {
  /** What asked, shown in the joined run's thread: an alert group's name and labels. */
  readonly note: string;
}

export const DEFAULT_JOB_RETENTION = { ageSeconds: 7 * 86_400, count: 1000 } as const;

/** The lock outlives any approval wait; the agent shortens it again while it works. */
export function lockTtlMs(approvalTimeoutMs: number): number {
  return approvalTimeoutMs + 60 * 60_000;
}

/**
 * `unconfirmed`: the write is made, but Redis could not confirm it is durable (WAITAOF, WAIT fell short), so
 * a Redis crash or failover in the next moments may lose it; the front tells the person so, plainly.
 */
export type Confirmed<T> = T & { readonly unconfirmed?: string };

export type DecisionOutcome = Confirmed<DecideResult | { outcome: 'refused'; refusal: Refusal }>;
