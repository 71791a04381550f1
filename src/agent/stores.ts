/**
 * The run stores an agent reads and writes, all on its one store connection: the writes a destructive attempt
 * must confirm (WAITAOF, WAIT) were made on that connection, so the confirmation runs there too.
 */
import type { RedisClient } from '../redis/connection.js';
import { ApprovalStore } from '../runs/approvals.js';
import { AttemptJournal } from '../runs/attempts.js';
import { RunFences } from '../runs/fence.js';
import { TargetLock } from '../runs/lock.js';
import { RedisWriteConfirm } from '../runs/redis-durability.js';
import { RunRegistry } from '../runs/registry.js';
import { RunTimeline } from '../runs/timeline.js';
import { CheckpointStore } from './checkpoints.js';
import { type AgentOptions, DEFAULT_RETENTION_MS } from './options.js';
import { RunRetention } from './retention.js';

export interface RunStores {
  readonly redis: RedisClient;
  readonly registry: RunRegistry;
  readonly timeline: RunTimeline;
  readonly approvals: ApprovalStore;
  readonly attempts: AttemptJournal;
  readonly fences: RunFences;
  readonly lock: TargetLock;
  readonly checkpoints: CheckpointStore;
  readonly retention: RunRetention;
  readonly writes: RedisWriteConfirm;
}

export function openRunStores(store: RedisClient, opts: AgentOptions): RunStores {
  const registry = new RunRegistry(store, opts.prefix);
  const timeline = new RunTimeline(store, opts.prefix, {
    ...(opts.maxOutputBytesPerRun !== undefined ? { maxOutputBytesPerRun: opts.maxOutputBytesPerRun } : {}),
  });
  const approvals = new ApprovalStore(store, opts.prefix);
  const attempts = new AttemptJournal(store, opts.prefix);
  const fences = new RunFences(store, opts.prefix);
  const lock = new TargetLock(store, opts.prefix);
  const checkpoints = new CheckpointStore(store, opts.prefix);
  const retention = new RunRetention({
    redis: store,
    prefix: opts.prefix,
    retentionMs: opts.retentionMs ?? DEFAULT_RETENTION_MS,
    registry,
    timeline,
    approvals,
    attempts,
    fences,
    checkpoints,
  });
  // On the store connection, which made the writes to confirm.
  const writes = new RedisWriteConfirm(store, {
    replicas: opts.redis.waitReplicas,
    timeoutMs: opts.waitReplicasTimeoutMs ?? 5_000,
  });
  return {
    redis: store,
    registry,
    timeline,
    approvals,
    attempts,
    fences,
    lock,
    checkpoints,
    retention,
    writes,
  };
}
