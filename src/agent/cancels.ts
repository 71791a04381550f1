/**
 * A cancel reaches a running job at once through Redis pub/sub (RunService publishes it after recording it in
 * the run record); nothing polls. Pub/sub loses only what is published while the subscriber is away, so after
 * a reconnect, once subscribed again, every running run reads its record once; a run that starts reads it
 * once after it is watched here (see run-job.ts).
 */
import type { Logger } from 'pino';
import { cancelChannel } from '../queue/queues.js';
import { dedicatedConnection, type RedisClient } from '../redis/connection.js';

export class CancelSubscription {
  /** Each running run's "read the record for a cancel now", by run id. */
  private readonly checks = new Map<string, () => void>();

  private constructor(
    /** Quit by the agent on close, with its other connections. */
    readonly connection: RedisClient,
  ) {}

  /** Subscribed when this resolves: a cancel published from then on reaches the run it names. */
  static async open(store: RedisClient, prefix: string, logger: Logger): Promise<CancelSubscription> {
    // Named for CLIENT LIST, like the timeline followers.
    const cancels = new CancelSubscription(dedicatedConnection(store, `${prefix}:cancels`));
    const conn = cancels.connection;
    conn.on('message', (_channel: string, runId: string) => cancels.checks.get(runId)?.());
    conn.on('ready', () => {
      conn.subscribe(cancelChannel(prefix)).then(
        () => {
          for (const check of cancels.checks.values()) check();
        },
        (err: unknown) => logger.warn({ err }, 'cannot subscribe to cancels'),
      );
    });
    await conn.subscribe(cancelChannel(prefix));
    return cancels;
  }

  watch(runId: string, check: () => void): void {
    this.checks.set(runId, check);
  }

  unwatch(runId: string): void {
    this.checks.delete(runId);
  }
}
