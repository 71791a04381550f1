/**
 * The attempt journal: before a destructive command is sent, the attempt is recorded, atomically with the
 * owner's fence check and with consuming the approval that authorizes it. A step with an attempt on record
 * is never sent again, by this agent or any other: a resumed run reads the attempt back and verifies the
 * action's effect instead of acting again.
 *
 * An attempt whose outcome is not on record and that no read-back showed took effect is "open": its command
 * may or may not have landed. A run that ends with an open attempt keeps its site held (see lock.ts) until an
 * operator releases it.
 *
 * Keys (`p` = prefix): `p:run:<runId>:attempts` hash: slot (stepSlot: step id and item identity) -> attempt JSON.
 */

import { z } from 'zod';
import { CapiError, ErrorCode } from '../errors.js';
import type { RedisClient } from '../redis/connection.js';
import { evalFenced, type Fence } from './fence.js';
import { assertRunId } from './registry.js';

export const attemptSchema = z.object({
  attemptId: z.string().min(1),
  runId: z.string().min(1),
  stepId: z.string().min(1),
  /** Where it is keyed (stepSlot); absent on attempts recorded before slots named the item's identity. */
  slot: z.string().min(1).exactOptional(),
  /** Which item of the loop it was, for people (1-based position when it was made). */
  iteration: z.number().int().exactOptional(),
  approvalId: z.string().min(1),
  digest: z.string().min(1),
  /** The exact command as the approver saw it (scope named, values filled in). */
  command: z.string(),
  /** ISO time the attempt was recorded, just before the command was sent. */
  startedAt: z.string(),
  /** The fencing token of the agent that made it. */
  token: z.number().int(),
  outcome: z
    .object({
      exitCode: z.number().int().nullable(),
      signal: z.string().nullable(),
      timedOut: z.boolean(),
      finishedAt: z.string(),
    })
    .exactOptional(),
  /** ISO time a later owner read the cloud back and saw the action take effect (its outcome was unknown). */
  verifiedAt: z.string().exactOptional(),
});
export type Attempt = z.infer<typeof attemptSchema>;

/** Sent (or about to be), and nobody knows whether it landed: no outcome on record, no read-back that says so. */
export function isOpen(attempt: Attempt): boolean {
  return attempt.outcome === undefined && attempt.verifiedAt === undefined;
}

export type BeginResult =
  /** `slot` is the step's field in the journal (stepSlot): the jumphost's attempt marker is named by it. */
  | { readonly outcome: 'recorded'; readonly attempt: Attempt; readonly slot: string }
  /** An attempt is already on record for this step: never send again; verify it instead. */
  | { readonly outcome: 'exists'; readonly attempt: Attempt }
  /** The approval does not authorize this attempt (why says how); ask again or stop. */
  | { readonly outcome: 'refused'; readonly why: ApprovalRefusal };

export type ApprovalRefusal = 'missing' | 'superseded' | 'consumed' | 'not_approved' | 'mismatch' | 'stale';

// KEYS: attempts hash, approval. ARGV: slot, attempt JSON (startedAt filled in by the script), attempt id,
// digest, now ms or '', max decision age ms.
const BEGIN = `
local now = ARGV[5]
if now == '' then
  local t = redis.call('TIME')
  now = t[1] .. string.sub(string.format('%06d', tonumber(t[2])), 1, 3)
end
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {'exists', existing} end
local h = KEYS[2]
if redis.call('EXISTS', h) == 0 then return {'refused', 'missing'} end
if redis.call('HEXISTS', h, 'supersededAt') == 1 then return {'refused', 'superseded'} end
if redis.call('HEXISTS', h, 'consumedBy') == 1 then return {'refused', 'consumed'} end
if redis.call('HGET', h, 'decisionApproved') ~= '1' then return {'refused', 'not_approved'} end
if redis.call('HGET', h, 'digest') ~= ARGV[4] then return {'refused', 'mismatch'} end
if tonumber(now) - tonumber(redis.call('HGET', h, 'decisionAt')) > tonumber(ARGV[6]) then
  redis.call('HSET', h, 'supersededAt', now, 'supersededWhy', 'stale')
  return {'refused', 'stale'}
end
redis.call('HSET', h, 'consumedBy', ARGV[3], 'consumedAt', now)
local attempt = cjson.decode(ARGV[2])
attempt['startedAt'] = now
local text = cjson.encode(attempt)
redis.call('HSET', KEYS[1], ARGV[1], text)
return {'recorded', text}
`;

// KEYS: attempts hash. ARGV: slot, field, JSON value. The attempt must be there: an outcome without an attempt
// would be a record of something nobody journaled.
const SET_FIELD = `
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if not existing then return false end
local attempt = cjson.decode(existing)
attempt[ARGV[2]] = cjson.decode(ARGV[3])
local text = cjson.encode(attempt)
redis.call('HSET', KEYS[1], ARGV[1], text)
return text
`;

export interface NewAttempt {
  readonly runId: string;
  readonly stepId: string;
  /** stepSlot of the step: what the attempt is keyed by. */
  readonly slot: string;
  readonly iteration?: number;
  readonly approvalId: string;
  readonly digest: string;
  readonly command: string;
}

export class AttemptJournal {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  key(runId: string): string {
    assertRunId(runId);
    return `${this.prefix}:run:${runId}:attempts`;
  }

  async get(runId: string, slot: string): Promise<Attempt | undefined> {
    const text = await this.redis.hget(this.key(runId), slot);
    return text === null ? undefined : decode(this.key(runId), text);
  }

  async list(runId: string): Promise<Attempt[]> {
    const key = this.key(runId);
    const all = await this.redis.hvals(key);
    return all.map((t) => decode(key, t)).sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /**
   * Records the attempt and consumes its approval, or says why not; all in one atomic step with the fence
   * check. Only after `recorded` may the command be sent.
   */
  async begin(
    attempt: NewAttempt,
    opts: { readonly fence: Fence; readonly maxDecisionAgeMs: number; readonly now?: Date },
  ): Promise<BeginResult> {
    const { slot } = attempt;
    const attemptId = `${attempt.runId}~${slot}~${opts.fence.token}`;
    const draft: Attempt = {
      attemptId,
      runId: attempt.runId,
      stepId: attempt.stepId,
      slot,
      ...(attempt.iteration !== undefined ? { iteration: attempt.iteration } : {}),
      approvalId: attempt.approvalId,
      digest: attempt.digest,
      command: attempt.command,
      startedAt: '',
      token: opts.fence.token,
    };
    const [outcome, payload] = (await evalFenced(
      this.redis,
      BEGIN,
      [this.key(attempt.runId), `${this.prefix}:approval:${attempt.approvalId}`],
      [
        slot,
        JSON.stringify(draft),
        attemptId,
        attempt.digest,
        opts.now === undefined ? '' : String(opts.now.getTime()),
        String(opts.maxDecisionAgeMs),
      ],
      opts.fence,
    )) as [string, string];
    if (outcome === 'refused') return { outcome, why: payload as ApprovalRefusal };
    const stored = decode(this.key(attempt.runId), payload);
    return outcome === 'exists'
      ? { outcome, attempt: stored }
      : { outcome: 'recorded', attempt: stored, slot };
  }

  async finish(fence: Fence, slot: string, outcome: NonNullable<Attempt['outcome']>): Promise<void> {
    await this.setField(fence, slot, 'outcome', outcome);
  }

  /** A later owner read the cloud back and saw this attempt take effect: it is no longer open. */
  async markVerified(fence: Fence, slot: string, at: Date = new Date()): Promise<void> {
    await this.setField(fence, slot, 'verifiedAt', at.toISOString());
  }

  private async setField(fence: Fence, slot: string, field: string, value: unknown): Promise<void> {
    const reply = await evalFenced(
      this.redis,
      SET_FIELD,
      [this.key(fence.runId)],
      [slot, field, JSON.stringify(value)],
      fence,
    );
    if (reply === null) {
      throw new CapiError(
        ErrorCode.StoredDataInvalid,
        `run ${fence.runId}: no attempt on record for ${slot} to update`,
      );
    }
  }
}

/** The script stamps startedAt with the Redis clock in epoch ms; readers see ISO time. */
function decode(key: string, text: string): Attempt {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new CapiError(ErrorCode.StoredDataInvalid, `${key} holds an attempt that is not JSON`);
  }
  const parsed = attemptSchema.safeParse(raw);
  if (!parsed.success) {
    throw new CapiError(
      ErrorCode.StoredDataInvalid,
      `${key} holds an invalid attempt: ${parsed.error.message}`,
    );
  }
  const a = parsed.data;
  return /^\d+$/.test(a.startedAt) ? { ...a, startedAt: new Date(Number(a.startedAt)).toISOString() } : a;
}
