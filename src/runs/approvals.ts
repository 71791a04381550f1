/**
 * Approval requests and their decisions. Several fronts (Slack buttons clicked twice, two approvers at once,
 * the expiry timer) race to decide one request, so the decision is taken inside one Lua script: the first
 * valid decision wins and every later caller is told who won and when.
 *
 * Times default to the Redis server clock (TIME inside the scripts), so a Slack front and an agent on hosts
 * with skewed clocks agree on whether a request has expired. Callers may pass `now` (tests, replays).
 *
 * Keys (`p` = prefix):
 * - `p:approval:<approvalId>`     hash: approvalId, runId, stepId, request (JSON), requestedAt and expiresAt
 *                                 (epoch ms), and once decided: decisionApproved ('1'/'0'), decisionBy,
 *                                 decisionAt (epoch ms), decisionReason, decisionNote, decidedVia
 * - `p:run:<runId>:approvals`     sorted set of the run's approval ids, scored by requestedAt
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ApprovalDecision, ApprovalRequest } from '../engine/events.js';
import { CapiError, ErrorCode } from '../errors.js';
import { describeZodIssues } from '../validation.js';
import { assertRunId, flatToObject, type InvalidStoredData, reportInvalidByDefault } from './registry.js';
import { jsonText } from './stored-json.js';
import { approvalRequestSchema } from './timeline.js';

export interface StoredApproval {
  readonly approvalId: string;
  readonly runId: string;
  readonly stepId: string;
  readonly request: ApprovalRequest;
  /** ISO times. */
  readonly requestedAt: string;
  readonly expiresAt: string;
  readonly decision?: ApprovalDecision;
  /** Which front recorded the decision (e.g. `slack`, `terminal`), when it said. */
  readonly decidedVia?: string;
}

export type DecideResult =
  /** This call's decision won. */
  | { outcome: 'decided'; approval: StoredApproval }
  /** Someone decided first: approval.decision says who and when. */
  | { outcome: 'already_decided'; approval: StoredApproval }
  /** Past expiresAt: the stored decision is the expiry (a denial), recorded now if nothing was recorded yet. */
  | { outcome: 'expired'; approval: StoredApproval }
  | { outcome: 'not_found' };

/** expireIfDue() also answers for a request that is neither decided nor due yet. */
export type ExpireResult = DecideResult | { outcome: 'pending'; approval: StoredApproval };

export interface DecisionInput {
  readonly approved: boolean;
  /** Who decided (a Slack user id, a terminal operator). */
  readonly by: string;
  /** Kept on denials only: ApprovalDecision has no note when approved. */
  readonly note?: string;
  /** Which front recorded it. */
  readonly via?: string;
}

export interface ApprovalStoreOptions {
  /** Called for a stored approval that fails validation in pendingForRun(); it is skipped there. */
  readonly onInvalid?: (problem: InvalidStoredData) => void;
}

/**
 * Deterministic, so a resumed run finds its request again, and usable as a BullMQ job id: no `:` and never
 * all digits. Parts are percent-encoded around a `~` separator, so distinct inputs give distinct ids
 * (`loop/step` becomes `loop%2Fstep`).
 */
export function approvalId(runId: string, stepId: string, iteration?: number): string {
  assertRunId(runId);
  if (iteration !== undefined && (!Number.isSafeInteger(iteration) || iteration < 0)) {
    throw new RangeError('iteration must be a whole number >= 0');
  }
  const parts = ['approval', encodePart(runId), encodePart(stepId)];
  if (iteration !== undefined) parts.push(String(iteration));
  return parts.join('~');
}

function encodePart(text: string): string {
  return Array.from(new TextEncoder().encode(text), (byte) => {
    const c = String.fromCharCode(byte);
    return /[A-Za-z0-9_.-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
}

// Shared Lua prelude: `now_ms()` is ARGV's time when given, else the server's, as a string of epoch ms.
const NOW = `
local function now_ms(given)
  if given ~= '' then return given end
  local t = redis.call('TIME')
  return t[1] .. string.sub(string.format('%06d', tonumber(t[2])), 1, 3)
end
`;

// KEYS: approval, run index. ARGV: approvalId, runId, stepId, request JSON, now ms or '', timeout ms.
// Returns {created (1/0), flat hash}. An existing request is returned unchanged, expiry included: a resumed
// run must not get a fresh timeout by asking again.
const CREATE = `${NOW}
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('HGETALL', KEYS[1])} end
local now = now_ms(ARGV[5])
local expires = string.format('%.0f', tonumber(now) + tonumber(ARGV[6]))
redis.call('HSET', KEYS[1], 'approvalId', ARGV[1], 'runId', ARGV[2], 'stepId', ARGV[3], 'request', ARGV[4],
  'requestedAt', now, 'expiresAt', expires)
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {1, redis.call('HGETALL', KEYS[1])}
`;

// KEYS: approval. ARGV: mode ('decide' | 'expire'), now ms or '', approved ('1'/'0'), by, note, via.
// Returns {outcome} or {outcome, flat hash}. Order matters: an existing decision stands even past expiry
// (it was taken in time); only an undecided request can expire, and it expires at expiresAt, not at the
// moment somebody noticed.
const DECIDE = `${NOW}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
if redis.call('HEXISTS', KEYS[1], 'decisionAt') == 1 then
  local outcome = 'already_decided'
  if redis.call('HGET', KEYS[1], 'decisionReason') == 'expired' then outcome = 'expired' end
  return {outcome, redis.call('HGETALL', KEYS[1])}
end
local now = now_ms(ARGV[2])
local expires = redis.call('HGET', KEYS[1], 'expiresAt')
if tonumber(now) >= tonumber(expires) then
  redis.call('HSET', KEYS[1], 'decisionApproved', '0', 'decisionBy', 'expiry', 'decisionAt', expires,
    'decisionReason', 'expired')
  return {'expired', redis.call('HGETALL', KEYS[1])}
end
if ARGV[1] == 'expire' then return {'pending', redis.call('HGETALL', KEYS[1])} end
redis.call('HSET', KEYS[1], 'decisionApproved', ARGV[3], 'decisionBy', ARGV[4], 'decisionAt', now)
if ARGV[3] == '0' then
  redis.call('HSET', KEYS[1], 'decisionReason', 'denied')
  if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'decisionNote', ARGV[5]) end
end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'decidedVia', ARGV[6]) end
return {'decided', redis.call('HGETALL', KEYS[1])}
`;

const epochMs = z
  .string()
  .regex(/^\d{1,16}$/, { error: 'must be epoch milliseconds' })
  .transform(Number);

const storedSchema = z.object({
  approvalId: z.string().min(1),
  runId: z.string().min(1),
  stepId: z.string().min(1),
  request: jsonText.pipe(approvalRequestSchema),
  requestedAt: epochMs,
  expiresAt: epochMs,
  decisionApproved: z.enum(['0', '1']).exactOptional(),
  decisionBy: z.string().exactOptional(),
  decisionAt: epochMs.exactOptional(),
  decisionReason: z.enum(['denied', 'expired']).exactOptional(),
  decisionNote: z.string().exactOptional(),
  decidedVia: z.string().exactOptional(),
});

type ScriptReply = [string, unknown[]?];

export class ApprovalStore {
  private readonly onInvalid: (problem: InvalidStoredData) => void;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    opts: ApprovalStoreOptions = {},
  ) {
    this.onInvalid = opts.onInvalid ?? reportInvalidByDefault;
  }

  key(approvalId: string): string {
    return `${this.prefix}:approval:${approvalId}`;
  }

  private runIndexKey(runId: string): string {
    return `${this.prefix}:run:${runId}:approvals`;
  }

  /** Idempotent per approvalId: the first request (and its expiry) is kept and returned. */
  async create(
    approvalId: string,
    request: ApprovalRequest,
    timeoutMs: number,
    now?: Date,
  ): Promise<StoredApproval> {
    assertRunId(request.runId);
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError('timeoutMs must be a whole number > 0');
    }
    const [, flat] = (await this.redis.eval(
      CREATE,
      2,
      this.key(approvalId),
      this.runIndexKey(request.runId),
      approvalId,
      request.runId,
      request.step.stepId,
      JSON.stringify(request),
      now === undefined ? '' : String(now.getTime()),
      String(timeoutMs),
    )) as [number, unknown[]];
    return this.mustParse(approvalId, flatToObject(flat));
  }

  /** Throws StoredDataInvalid for a stored approval that is malformed: nobody may decide on it. */
  async get(approvalId: string): Promise<StoredApproval | null> {
    const hash = await this.redis.hgetall(this.key(approvalId));
    if (Object.keys(hash).length === 0) return null;
    return this.mustParse(approvalId, hash);
  }

  async decide(approvalId: string, decision: DecisionInput, now?: Date): Promise<DecideResult> {
    // An anonymous decision could never be audited in the postmortem.
    if (decision.by.trim() === '') throw new RangeError('a decision needs who took it (by)');
    return (await this.run('decide', approvalId, decision, now)) as DecideResult;
  }

  /** Records `{ approved: false, reason: 'expired', by: 'expiry' }` when due and undecided. */
  async expireIfDue(approvalId: string, now?: Date): Promise<ExpireResult> {
    return this.run('expire', approvalId, undefined, now);
  }

  /** The run's undecided requests, oldest first (normally at most one). */
  async pendingForRun(runId: string): Promise<StoredApproval[]> {
    assertRunId(runId);
    const ids = await this.redis.zrange(this.runIndexKey(runId), 0, -1);
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.key(id));
    const replies = (await pipeline.exec()) ?? [];
    const out: StoredApproval[] = [];
    replies.forEach(([err, hash], i) => {
      if (err) throw err;
      const fields = hash as Record<string, string>;
      if (Object.keys(fields).length === 0) return;
      const key = this.key(ids[i] as string);
      const parsed = parseStored(key, fields);
      if ('issues' in parsed) this.onInvalid({ key, issues: parsed.issues });
      else if (parsed.approval.decision === undefined) out.push(parsed.approval);
    });
    return out;
  }

  private async run(
    mode: 'decide' | 'expire',
    approvalId: string,
    decision: DecisionInput | undefined,
    now: Date | undefined,
  ): Promise<ExpireResult> {
    const [outcome, flat] = (await this.redis.eval(
      DECIDE,
      1,
      this.key(approvalId),
      mode,
      now === undefined ? '' : String(now.getTime()),
      decision?.approved ? '1' : '0',
      decision?.by ?? '',
      decision?.note ?? '',
      decision?.via ?? '',
    )) as ScriptReply;
    if (outcome === 'not_found' || flat === undefined) return { outcome: 'not_found' };
    const approval = this.mustParse(approvalId, flatToObject(flat));
    switch (outcome) {
      case 'decided':
      case 'already_decided':
      case 'expired':
      case 'pending':
        return { outcome, approval };
      default:
        throw new CapiError(ErrorCode.Unknown, `unexpected reply from the decide script: ${String(outcome)}`);
    }
  }

  private mustParse(approvalId: string, hash: Record<string, string>): StoredApproval {
    const key = this.key(approvalId);
    const parsed = parseStored(key, hash);
    if ('issues' in parsed) {
      throw new CapiError(
        ErrorCode.StoredDataInvalid,
        `${key} is not a valid approval:\n${parsed.issues.map((i) => `  - ${i}`).join('\n')}`,
      );
    }
    return parsed.approval;
  }
}

function parseStored(
  key: string,
  hash: Record<string, string>,
): { approval: StoredApproval } | { issues: string[] } {
  const parsed = storedSchema.safeParse(hash);
  if (!parsed.success) return { issues: describeZodIssues(parsed.error, `${key} `) };
  const h = parsed.data;
  let decision: ApprovalDecision | undefined;
  if (h.decisionAt !== undefined) {
    if (h.decisionApproved === undefined || h.decisionBy === undefined) {
      return { issues: [`${key}: a decision time without who decided or what`] };
    }
    const at = new Date(h.decisionAt).toISOString();
    if (h.decisionApproved === '1') {
      decision = { approved: true, by: h.decisionBy, at };
    } else {
      decision = {
        approved: false,
        by: h.decisionBy,
        at,
        reason: h.decisionReason ?? 'denied',
        ...(h.decisionNote !== undefined ? { note: h.decisionNote } : {}),
      };
    }
  }
  return {
    approval: {
      approvalId: h.approvalId,
      runId: h.runId,
      stepId: h.stepId,
      request: h.request,
      requestedAt: new Date(h.requestedAt).toISOString(),
      expiresAt: new Date(h.expiresAt).toISOString(),
      ...(decision !== undefined ? { decision } : {}),
      ...(h.decidedVia !== undefined ? { decidedVia: h.decidedVia } : {}),
    },
  };
}
