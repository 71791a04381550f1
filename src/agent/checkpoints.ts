import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Checkpoint } from '../engine/engine.js';

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
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(runId: string): string {
    return `${this.prefix}:run:${runId}:checkpoint`;
  }

  async save(runId: string, checkpoint: Checkpoint): Promise<void> {
    await this.redis.set(this.key(runId), JSON.stringify(checkpoint));
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

  async delete(runId: string): Promise<void> {
    await this.redis.del(this.key(runId));
  }
}
