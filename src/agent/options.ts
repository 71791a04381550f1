/**
 * What an agent is started with, and the defaults it falls back to. Apart from the composition (agent.ts) so
 * the run-job phases, the run ends and the watch over idle runs read the same options without importing the
 * module that wires them.
 */
import type { Logger } from 'pino';
import type { RedisTarget } from '../config/env.js';
import type { SiteProfile } from '../config/site.js';
import type { AuditLog } from '../ops/audit.js';
import type { Metrics } from '../ops/metrics.js';
import type { RunbookSet } from '../runbook/load.js';
import type { DecisionJudge } from '../runs/judge.js';
import type { JumphostTarget } from '../ssh/types.js';

export interface AgentOptions {
  readonly redis: RedisTarget;
  readonly prefix: string;
  /** The sites this agent can reach; it serves every queue they name. */
  readonly sites: ReadonlyMap<string, SiteProfile>;
  /** JUMPHOST_* from the environment; each site profile's jumphost block wins field by field. */
  readonly jumphostEnv: Partial<JumphostTarget>;
  readonly runbooks: RunbookSet;
  readonly approvalTimeoutMs: number;
  /**
   * How this agent judges a decision before it acts on it: its own policy (approvers, self-approval, groups)
   * and the keys signed decisions must verify with. Never taken from the request or the decision.
   */
  readonly decisions: DecisionJudge;
  readonly logger: Logger;
  /** Runs handled at once; a run waiting for approval does not count. Default 2. */
  readonly concurrency?: number;
  /**
   * How long a killed agent's run stays locked before another agent may take it (BullMQ lockDuration; renewed
   * every half of it while the run lives). Default 10 s.
   */
  readonly lockDurationMs?: number;
  /** How often this agent looks for runs a dead agent left behind (BullMQ stalledInterval). Default 5 s. */
  readonly stalledIntervalMs?: number;
  /**
   * A run not finished whose job is gone (completed, failed, removed) for this long, its record unchanged, is
   * ended by the agents' watch over idle runs (never left "running" with no owner). Default 30 s.
   */
  readonly orphanGraceMs?: number;
  /** On shutdown, how long the running step may take to finish before it is interrupted. */
  readonly shutdownGraceMs?: number;
  /**
   * The site lock's TTL; it is renewed every third of it while the run lives (running, parked at an
   * approval, queued or handed over), so it lapses only when no agent is left. Default 60 s.
   */
  readonly siteLockTtlMs?: number;
  /** Read-only runs (diagnose) handled at once, on their own worker: they never delay a recovery. Default 2. */
  readonly readOnlyConcurrency?: number;
  readonly metrics?: Metrics;
  /** Approvals asked, destructive commands sent and their exit, expiries, runs finished. */
  readonly audit?: AuditLog;
  /** A finished run's keys expire this long after it finished (RUN_RETENTION). Default 30 days. */
  readonly retentionMs?: number;
  /** How often the runs index is swept of expired runs. Default 10 minutes. */
  readonly retentionSweepMs?: number;
  /** Bytes of output stored per run (RUN_MAX_OUTPUT_BYTES). */
  readonly maxOutputBytesPerRun?: number;
  /** Bytes kept of one output line, in memory and in the timeline (RUN_MAX_LINE_BYTES). */
  readonly maxLineBytes?: number;
  /** How long confirming a destructive attempt's record (WAITAOF, WAIT) may take. Default 5 s. */
  readonly waitReplicasTimeoutMs?: number;
}

/**
 * A SIGKILLed agent's run is taken over within lockDuration + stalledInterval (plus the new agent's SSH
 * connect): its job lock lapses at most 10 s after the agent's last renewal, and the next stalled-job check
 * (every 5 s, one per queue whatever the number of agents) moves it back to the queue. See README
 * "Processes and durable runs" for what each costs in Redis traffic.
 */
export const DEFAULT_LOCK_DURATION_MS = 10_000;
export const DEFAULT_STALLED_INTERVAL_MS = 5_000;
export const DEFAULT_ORPHAN_GRACE_MS = 30_000;
export const DEFAULT_SITE_LOCK_TTL_MS = 60_000;
export const DEFAULT_RETENTION_MS = 30 * 86_400_000;
export const DEFAULT_RETENTION_SWEEP_MS = 10 * 60_000;
