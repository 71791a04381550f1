/**
 * What a Redis write can still be lost to, and confirming the writes a destructive step depends on (its
 * attempt record with the approval it consumes, decisions, cancels) before anything acts on them.
 *
 * Redis answers a write before it is on disk (AOF `appendfsync everysec`: up to a second later) and before
 * any replica has it (replication is asynchronous). Two commands close that window, on the connection
 * that made the write, and cover every earlier write too (the AOF and the replication stream are one
 * ordered log):
 * - `WAITAOF 1 0 T` (Redis >= 7.2, AOF on): returns once the write is fsynced on the master;
 * - `WAIT N T` (REDIS_WAIT_REPLICAS = N): returns once N replicas received it.
 * Where neither applies (Redis < 7.2 without replicas, AOF off, Cluster), nothing can be confirmed; start-up
 * says so once, and the jumphost's attempt marker still refuses a second send (src/ssh/attempt-marker.ts).
 */
import { Cluster } from 'ioredis';
import type { RedisClient } from '../redis/connection.js';

/** What this connection's Redis can keep and confirm, found once per connection (again after a reconnect). */
export interface RedisDurability {
  readonly cluster: boolean;
  /** redis_version from INFO server; absent when it was not told. */
  readonly version?: string;
  /** aof_enabled:1 in INFO persistence. */
  readonly aof: boolean;
  /** appendfsync, when CONFIG GET may be used. */
  readonly appendfsync?: string;
  /** RDB snapshot rules (`save`), when CONFIG GET may be used; '' = none. */
  readonly save?: string;
  /** WAITAOF answered (Redis >= 7.2, and not refused by ACL or renamed). */
  readonly waitaof: boolean;
  /** connected_slaves in INFO replication. */
  readonly replicas: number;
}

export type Confirmation =
  /** The write is fsynced / held by the replicas asked for; `how` says which. */
  | { readonly kind: 'confirmed'; readonly how: string }
  /** Nothing this Redis offers can confirm a write (said once at start-up). */
  | { readonly kind: 'unavailable'; readonly why: string }
  /** A confirmation was asked for and fell short (or failed): the write may still be lost. */
  | { readonly kind: 'short'; readonly why: string };

export interface WriteConfirm {
  confirm(): Promise<Confirmation>;
}

export interface ConfirmOptions {
  /** REDIS_WAIT_REPLICAS: replicas that must hold the write (WAIT); 0 asks none. */
  readonly replicas: number;
  /** How long each confirmation may take. */
  readonly timeoutMs: number;
}

/** The commands a confirmation sends, in order, for this Redis and these options. */
export type ConfirmStep =
  | { readonly command: 'WAITAOF'; readonly args: readonly [1, 0, number] }
  | { readonly command: 'WAIT'; readonly args: readonly [number, number] };

export function confirmPlan(
  d: RedisDurability,
  opts: ConfirmOptions,
): { readonly steps: readonly ConfirmStep[] } | { readonly none: string } {
  if (d.cluster) {
    return {
      none: 'Redis Cluster: WAITAOF and WAIT cannot be sent on the connection to the node holding the keys',
    };
  }
  const steps: ConfirmStep[] = [];
  // Replicas are asked with WAIT, not WAITAOF's numreplicas: a replica without AOF never acknowledges an
  // fsync, while a failover only needs the replica to hold the write.
  if (d.waitaof && d.aof) steps.push({ command: 'WAITAOF', args: [1, 0, opts.timeoutMs] });
  if (opts.replicas > 0) steps.push({ command: 'WAIT', args: [opts.replicas, opts.timeoutMs] });
  if (steps.length > 0) return { steps };
  const local = !d.aof
    ? 'AOF is off'
    : `Redis ${d.version ?? '(version unknown)'} has no WAITAOF (it needs 7.2)`;
  return { none: `${local} and REDIS_WAIT_REPLICAS is 0` };
}

/** Judges one reply: WAITAOF answers [local fsyncs, replica fsyncs], WAIT the replicas that hold the write. */
export function judgeReply(
  step: ConfirmStep,
  reply: unknown,
): { ok: true; how: string } | { ok: false; why: string } {
  if (step.command === 'WAITAOF') {
    const local = Array.isArray(reply) ? Number(reply[0]) : Number.NaN;
    if (local >= 1) return { ok: true, how: 'fsynced to the AOF (WAITAOF)' };
    return {
      ok: false,
      why: `Redis did not fsync it to its AOF within ${step.args[2]} ms (WAITAOF answered ${JSON.stringify(reply)})`,
    };
  }
  const [want, timeoutMs] = step.args;
  const acked = Number(reply);
  if (acked >= want) return { ok: true, how: `held by ${acked} replica(s) (WAIT)` };
  return {
    ok: false,
    why: `it reached ${Number.isFinite(acked) ? acked : 0} of ${want} Redis replica(s) within ${timeoutMs} ms`,
  };
}

const found = new WeakMap<RedisClient, Promise<RedisDurability>>();
const watched = new WeakSet<RedisClient>();

/** Found once per connection; a reconnect (a Sentinel failover, a Redis restart) finds it again. */
export function durabilityOf(redis: RedisClient): Promise<RedisDurability> {
  let d = found.get(redis);
  if (d === undefined) {
    d = detect(redis);
    found.set(redis, d);
    // Redis away: ask again next time rather than remember the failure.
    d.catch(() => found.delete(redis));
  }
  if (!watched.has(redis)) {
    watched.add(redis);
    redis.on('ready', () => found.delete(redis));
  }
  return d;
}

function infoField(text: string, name: string): string | undefined {
  return new RegExp(`^${name}:(\\S*)`, 'm').exec(text)?.[1];
}

/** Errors Redis answered with (unknown command, NOPERM), as opposed to no answer at all. */
function isReplyError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

async function configValue(redis: RedisClient, name: string): Promise<string | undefined> {
  try {
    const reply = (await redis.config('GET', name)) as unknown;
    if (!Array.isArray(reply)) return undefined;
    const at = reply.indexOf(name);
    return at === -1 ? undefined : String(reply[at + 1]);
  } catch (err) {
    if (isReplyError(err)) return undefined;
    throw err;
  }
}

async function detect(redis: RedisClient): Promise<RedisDurability> {
  if (redis instanceof Cluster) return { cluster: true, aof: false, waitaof: false, replicas: 0 };
  const info = await redis.info();
  const version = infoField(info, 'redis_version');
  const appendfsync = await configValue(redis, 'appendfsync');
  const save = await configValue(redis, 'save');
  // A probe rather than the version: a fork may report 7.2 without the command, an ACL may refuse it.
  // Zero fsyncs and zero replicas are met at once, so it never blocks.
  let waitaof = true;
  try {
    await redis.call('WAITAOF', 0, 0, 1);
  } catch (err) {
    if (!isReplyError(err)) throw err;
    waitaof = false;
  }
  return {
    cluster: false,
    ...(version !== undefined ? { version } : {}),
    aof: infoField(info, 'aof_enabled') === '1',
    ...(appendfsync !== undefined ? { appendfsync } : {}),
    ...(save !== undefined ? { save } : {}),
    waitaof,
    replicas: Number(infoField(info, 'connected_slaves') ?? 0),
  };
}

/**
 * Confirms the writes made so far on `redis`: WAITAOF where the server has it, WAIT where replicas are
 * asked for. Never throws: Redis failing to answer is a confirmation that fell short.
 */
export class RedisWriteConfirm implements WriteConfirm {
  constructor(
    private readonly redis: RedisClient,
    private readonly opts: ConfirmOptions,
  ) {}

  async confirm(): Promise<Confirmation> {
    try {
      const plan = confirmPlan(await durabilityOf(this.redis), this.opts);
      if ('none' in plan) return { kind: 'unavailable', why: plan.none };
      const hows: string[] = [];
      for (const step of plan.steps) {
        const judged = judgeReply(step, await this.redis.call(step.command, ...step.args));
        if (!judged.ok) return { kind: 'short', why: judged.why };
        hows.push(judged.how);
      }
      return { kind: 'confirmed', how: hows.join(' and ') };
    } catch (err) {
      return { kind: 'short', why: `Redis could not confirm it: ${(err as Error).message}` };
    }
  }
}

/** For callers that confirm nothing (tests, in-process runs). */
export const NO_CONFIRM: WriteConfirm = {
  confirm: async () => ({ kind: 'unavailable', why: 'no confirmation was asked for' }),
};
