import { z } from 'zod';
import type { Checkpoint } from '../engine/outcome.js';
import type { RedisClient } from '../redis/connection.js';
import { evalFenced, type Fence } from '../runs/fence.js';

const CheckpointSchema = z.object({
  top: z.number().int().nonnegative(),
  loop: z
    .object({
      items: z.array(z.unknown()),
      n: z.number().int().nonnegative(),
      inner: z.number().int().nonnegative(),
    })
    .optional(),
  captured: z.record(z.string(), z.unknown()),
});

/** Where each run is, so that any agent can pick it up: one JSON value per run. */
export class CheckpointStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  key(runId: string): string {
    return `${this.prefix}:run:${runId}:checkpoint`;
  }

  /** Only the run's newest owner can save: a stale agent cannot overwrite its successor's position. */
  async save(runId: string, checkpoint: Checkpoint, fence: Fence): Promise<void> {
    await evalFenced(
      this.redis,
      "redis.call('SET', KEYS[1], ARGV[1]) return 1",
      [this.key(runId)],
      [JSON.stringify(checkpoint)],
      fence,
    );
  }

  async exists(runId: string): Promise<boolean> {
    return (await this.redis.exists(this.key(runId))) === 1;
  }

  /** A checkpoint that does not parse is refused loudly: resuming from a guess could skip a guard. */
  async load(runId: string): Promise<Checkpoint | undefined> {
    const text = await this.redis.get(this.key(runId));
    if (text === null) return undefined;
    const parsed = CheckpointSchema.parse(JSON.parse(text));
    return {
      top: parsed.top,
      ...(parsed.loop ? { loop: parsed.loop } : {}),
      captured: parsed.captured,
    };
  }

  async delete(runId: string, fence: Fence): Promise<void> {
    await evalFenced(this.redis, "redis.call('DEL', KEYS[1]) return 1", [this.key(runId)], [], fence);
  }
}
