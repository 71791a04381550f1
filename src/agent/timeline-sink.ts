import type { EventSink, RunEvent } from '../engine/events.js';
import type { Checkpoint } from '../engine/outcome.js';
import type { RedisClient } from '../redis/connection.js';
import { evalFenced, type Fence } from '../runs/fence.js';
import { type RunRecordPatch, type RunRegistry, UPDATE_LUA_FUNCTION } from '../runs/registry.js';
import { APPEND_ARG_COUNT, APPEND_LUA_FUNCTION, type RunTimeline } from '../runs/timeline.js';
import type { CheckpointStore } from './checkpoints.js';

/**
 * Events that a resumed run emits again for the same moment: stored once, so a front following the
 * stream never shows the same approval twice. Everything else is appended as it happens.
 */
function dedupeKey(e: RunEvent): string | undefined {
  switch (e.type) {
    case 'run.started':
    case 'run.finished':
      return e.type;
    case 'approval.requested':
    case 'approval.decided':
    case 'approval.superseded':
      return `${e.type}:${e.approvalId}`;
    case 'attempt.started':
    case 'attempt.verified':
      return `${e.type}:${e.attemptId}`;
    default:
      return undefined;
  }
}

/**
 * One event, the checkpoint saved just before it (if any) and the record's patch (if any), in one script
 * and so one round trip, all or nothing under the fence. KEYS: stream, meta, record, active index,
 * checkpoint. ARGV: checkpoint JSON or '', how many capi_update arguments follow capi_append's, capi_append's
 * arguments, capi_update's. Returns {'ok', stream id or ''} or capi_update's refusal (nothing written then).
 */
const WRITE_EVENT = `${APPEND_LUA_FUNCTION}${UPDATE_LUA_FUNCTION}
local updates = tonumber(ARGV[2])
local first = 3 + ${APPEND_ARG_COUNT}
if updates > 0 and redis.call('EXISTS', KEYS[3]) == 0 then return {'not_found'} end
if ARGV[1] ~= '' then redis.call('SET', KEYS[5], ARGV[1]) end
local id = capi_append(KEYS[1], KEYS[2], {unpack(ARGV, 3, first - 1)})
if updates > 0 then
  local r = capi_update(KEYS[3], KEYS[4], {unpack(ARGV, first, first + updates - 1)})
  if r[1] ~= 'ok' then return r end
end
return {'ok', id or ''}
`;

export interface TimelineSink {
  readonly emit: EventSink;
  /**
   * The engine's checkpoint before a step: written with the step's first event (its step.started), in the
   * same script, so a step costs one round trip to start and one to finish. Nothing runs between the two
   * (src/engine/engine.ts saveCheckpoint), so the checkpoint is in Redis before the step does anything.
   * A run that pauses right after it saves its outcome's checkpoint itself (agent.ts); a run that ends
   * needs none.
   */
  readonly checkpoint: (checkpoint: Checkpoint) => void;
}

/**
 * Engine -> Redis: every event appended in order (one write at a time) under the owner's fence, the
 * checkpoint and the record kept current in the same write. A stale owner's first write fails
 * (RunFencedError) and so does every later one.
 */
export function timelineSink(
  fence: Fence,
  stores: {
    /** The connection the three stores below use. */
    redis: RedisClient;
    timeline: RunTimeline;
    registry: RunRegistry;
    checkpoints: CheckpointStore;
    /** Runs before run.finished is appended: whoever sees the end also finds the site free. */
    onFinished: (event: Extract<RunEvent, { type: 'run.finished' }>) => Promise<void>;
    /** Sees each event stored for the first time (not a resumed run's repeat): metrics and audit. */
    onStored?: (event: RunEvent) => void;
  },
): TimelineSink {
  const { timeline, registry, checkpoints } = stores;
  const runId = fence.runId;
  let pending: Checkpoint | undefined;
  let chain: Promise<void> = Promise.resolve();
  const write = async (event: RunEvent, checkpoint: Checkpoint | undefined) => {
    const append = timeline.appendCall(runId, event, dedupeKey(event));
    const patch: RunRecordPatch | undefined =
      event.type === 'step.started' ? { currentStep: event.stepId } : undefined;
    // The record's keys always go along (a script declares every key it may touch, for Redis Cluster).
    const update = registry.updateCall(runId, patch ?? {});
    const updateArgs = patch ? update.args : [];
    const reply = (await evalFenced(
      stores.redis,
      WRITE_EVENT,
      [...append.keys, ...update.keys, checkpoints.key(runId)],
      [
        checkpoint ? JSON.stringify(checkpoint) : '',
        String(updateArgs.length),
        ...append.args,
        ...updateArgs,
      ],
      fence,
    )) as unknown[];
    if (patch) registry.throwIfRefused(runId, reply, patch);
    return reply[1] === '' ? null : (reply[1] as string);
  };
  return {
    checkpoint: (cp) => {
      pending = cp;
    },
    emit: (event) => {
      // The run is over: its checkpoint is deleted (agent.ts finishRecord), never written again after that.
      const checkpoint = event.type === 'run.finished' ? undefined : pending;
      pending = undefined;
      chain = chain.then(async () => {
        if (event.type === 'run.finished') await stores.onFinished(event);
        const id = await write(event, checkpoint);
        if (id !== null) stores.onStored?.(event);
      });
      return chain;
    },
  };
}
