/**
 * What a step costs in Redis: the engine's checkpoint, step.started and the record's current step in one
 * fenced script, step.finished in another. The count is the product's, read off the connection (every
 * command ioredis sends), so a change that adds a round trip per step fails here.
 */
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointStore } from '../src/agent/checkpoints.js';
import { timelineSink } from '../src/agent/timeline-sink.js';
import { runRunbook } from '../src/engine/engine.js';
import type { RunEvent } from '../src/engine/events.js';
import { RunFencedError } from '../src/errors.js';
import { RunFences } from '../src/runs/fence.js';
import { RunRegistry } from '../src/runs/registry.js';
import { RunTimeline } from '../src/runs/timeline.js';
import { runOptions, testRunbook } from './support/engine.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';
import { ScriptedExecutor } from './support/scripted-executor.js';

const db = useTestRedis();
const RUN = 'run-step-writes';

/** Each step's round trips: one to start it (checkpoint + step.started + record), one to finish it. */
const ROUND_TRIPS_PER_STEP = 2;

const THREE_STEPS = testRunbook(`steps:
  - id: one
    title: One
    run: step-one
  - id: two
    title: Two
    run: step-two
  - id: three
    title: Three
    run: step-three
`);

let conn: Redis;
let sent: string[];

beforeEach(() => {
  conn = new Redis(REDIS_URL);
  sent = [];
  // Every command this connection sends, by name: what the stores cost, not what a test reads back.
  const send = conn.sendCommand.bind(conn);
  conn.sendCommand = ((command: Parameters<typeof send>[0], stream?: Parameters<typeof send>[1]) => {
    sent.push(command.name);
    return send(command, stream);
  }) as typeof conn.sendCommand;
});

afterEach(async () => {
  await conn.quit();
});

async function stores() {
  const registry = new RunRegistry(conn, db.prefix);
  const timeline = new RunTimeline(conn, db.prefix);
  const checkpoints = new CheckpointStore(conn, db.prefix);
  const fences = new RunFences(conn, db.prefix);
  await registry.create({
    runId: RUN,
    runbook: 'test',
    params: {},
    site: 'lab1',
    requestedBy: 'U0OPERATOR',
    queue: 'q',
  });
  await registry.update(RUN, { status: 'running' });
  return { registry, timeline, checkpoints, fences };
}

describe('a step in Redis', () => {
  it('should cost two round trips per step: checkpoint, step.started and the record in one, step.finished in the other', async () => {
    const s = await stores();
    const fence = await s.fences.take(RUN);
    const stored: RunEvent[] = [];
    const sink = timelineSink(fence, {
      redis: conn,
      ...s,
      onFinished: async () => undefined,
      onStored: (e) => stored.push(e),
    });
    const executor = new ScriptedExecutor([['step-', {}]]);
    const checkpoints: number[] = [];
    sent = [];
    const outcome = await runRunbook(
      runOptions(THREE_STEPS, executor, {
        runId: RUN,
        emit: sink.emit,
        onCheckpoint: (cp) => {
          checkpoints.push(cp.top);
          sink.checkpoint(cp);
        },
      }),
    );
    expect(outcome.status).toBe('succeeded');
    expect(checkpoints).toEqual([0, 1, 2]);
    const types = stored.map((e) => e.type);
    expect(types.filter((t) => t === 'step.started')).toHaveLength(3);
    expect(types.filter((t) => t === 'step.finished')).toHaveLength(3);
    // One script per event stored, nothing else: the checkpoints and the record rode along. Besides the
    // steps, the run stores run.started, preflight and run.finished.
    expect(sent).toEqual(stored.map(() => 'eval'));
    expect(sent).toHaveLength(3 + 3 * ROUND_TRIPS_PER_STEP);

    // What rode along is there: the last checkpoint (before step three) and the record's current step.
    expect(await s.checkpoints.load(RUN)).toMatchObject({ top: 2 });
    expect((await s.registry.get(RUN))?.currentStep).toBe('three');
    expect((await s.timeline.read(RUN)).map((e) => e.event.type)).toEqual(types);
  });

  it('should write nothing of a step (checkpoint, event, record) for an agent that no longer owns the run', async () => {
    const s = await stores();
    const stale = await s.fences.take(RUN);
    const owner = await s.fences.take(RUN);
    const ownerSink = timelineSink(owner, { redis: conn, ...s, onFinished: async () => undefined });
    ownerSink.checkpoint({ top: 1, captured: { by: 'owner' } });
    await ownerSink.emit({
      type: 'step.started',
      stepId: 'one',
      index: 1,
      total: 2,
      kind: 'run',
      title: 'One',
      destructive: false,
    });

    const staleSink = timelineSink(stale, { redis: conn, ...s, onFinished: async () => undefined });
    staleSink.checkpoint({ top: 2, captured: { by: 'stale' } });
    await expect(
      staleSink.emit({
        type: 'step.started',
        stepId: 'two',
        index: 2,
        total: 2,
        kind: 'run',
        title: 'Two',
        destructive: false,
      }),
    ).rejects.toBeInstanceOf(RunFencedError);

    expect(await s.checkpoints.load(RUN)).toEqual({ top: 1, captured: { by: 'owner' } });
    expect((await s.registry.get(RUN))?.currentStep).toBe('one');
    expect((await s.timeline.read(RUN)).map((e) => e.event)).toEqual([
      expect.objectContaining({ type: 'step.started', stepId: 'one' }),
    ]);
  });

  it('should refuse a step of a run whose record is gone, writing none of it', async () => {
    const s = await stores();
    const fence = await s.fences.take(RUN);
    await conn.del(s.registry.recordKey(RUN));
    const sink = timelineSink(fence, { redis: conn, ...s, onFinished: async () => undefined });
    sink.checkpoint({ top: 0, captured: {} });
    await expect(
      sink.emit({
        type: 'step.started',
        stepId: 'one',
        index: 1,
        total: 1,
        kind: 'run',
        title: 'One',
        destructive: false,
      }),
    ).rejects.toThrow(/does not exist/);
    expect(await s.checkpoints.exists(RUN)).toBe(false);
    expect(await s.timeline.read(RUN)).toEqual([]);
  });
});
