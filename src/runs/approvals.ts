/**
 * Approval requests and their decisions. Several fronts (Slack buttons clicked twice, two approvers at once,
 * the expiry timer) race to decide one request, so the decision is taken inside one Lua script: the first
 * valid decision wins and every later caller is told who won and when.
 *
 * Times default to the Redis server clock (TIME inside the scripts), so a Slack front and an agent on hosts
 * with skewed clocks agree on whether a request has expired. Callers may pass `now` (tests, replays).
 *
 * One approval, one attempt, one exact action: a request carries the digest of what it authorizes (the
 * runbook's content, the step, the item, the exact command, the bound values and the targets). A step's
 * slot (stepSlot: the step and the item's identity, never its position) points at its current request; a request whose action changed, or whose
 * approval went stale before it was used, is superseded by a new round in the same slot, and a decision on
 * a superseded request is refused. The attempt that uses an approval consumes it (see attempts.ts).
 *
 * Keys (`p` = prefix):
 * - `p:approval:<approvalId>`        hash: approvalId, runId, stepId, digest, request (JSON), requestedAt and
 *                                    expiresAt (epoch ms), timeoutMs (how long a request stays open once
 *                                    people can see it), shownAt (epoch ms, when a front first showed it;
 *                                    see markShown), and once decided: decisionApproved ('1'/'0'),
 *                                    decisionBy, decisionAt (epoch ms), decisionReason, decisionNote,
 *                                    decidedVia, decisionSigned (the signed statement, JSON: see
 *                                    src/signing/statement.ts); supersededAt + supersededWhy once replaced;
 *                                    consumedBy + consumedAt once an attempt used it; votes (JSON array of
 *                                    {by, at, note, via, signed}) while a request that needs several
 *                                    approvers collects them
 * - `p:run:<runId>:approvals`        sorted set of the run's approval ids, scored by requestedAt
 * - `p:run:<runId>:approval-slots`   hash: slot (stepSlot) -> the slot's current approval id
 */

import { z } from 'zod';
import type { ApprovalDecision, ApprovalRequest } from '../engine/events.js';
import { stepSlot } from '../engine/slot.js';
import { CapiError, ErrorCode } from '../errors.js';
import type { RedisClient } from '../redis/connection.js';
import { type SignedDecision, signedDecisionSchema } from '../signing/statement.js';
import { describeZodIssues } from '../validation.js';
import { approvalRequestSchema } from './event-schema.js';
import { evalFenced, type Fence } from './fence.js';
import { assertRunId, flatToObject, type InvalidStoredData, reportInvalidByDefault } from './registry.js';
import { jsonText } from './stored-json.js';

export interface StoredApproval {
  readonly approvalId: string;
  readonly runId: string;
  readonly stepId: string;
  readonly request: ApprovalRequest;
  /** ISO times. */
  readonly requestedAt: string;
  /** Until then it may be decided; moved on (never back) when a front shows it to people (markShown). */
  readonly expiresAt: string;
  /** ISO time a front first showed it to the people who may decide (e.g. posted in Slack). */
  readonly shownAt?: string;
  readonly decision?: ApprovalDecision;
  /**
   * The decision as its front signed it. Only what verifies counts: the agent judges the decision from this,
   * never from the fields beside it (anyone who can write to Redis can write those).
   */
  readonly decisionSigned?: SignedDecision;
  /** Which front recorded the decision (e.g. `slack`, `terminal`), when it said. */
  readonly decidedVia?: string;
  /** Replaced by a newer request for the same step: nobody may decide it any more. */
  readonly superseded?: { readonly at: string; readonly why: SupersededWhy };
  /** The attempt that used this approval; an approval authorizes one attempt only. */
  readonly consumedBy?: string;
  /**
   * The approvals so far of a request that needs several (request.quorum), oldest first, one per person.
   * The request is approved when there are quorum of them; absent when it needs one.
   */
  readonly votes?: readonly ApprovalVote[];
}

export interface ApprovalVote {
  readonly by: string;
  /** ISO time. */
  readonly at: string;
  readonly note?: string;
  readonly via?: string;
  /** This approval as its front signed it. */
  readonly signed?: SignedDecision;
}

/** `changed`: the rebuilt action differs from what was approved; `stale`: approved too long before use. */
export type SupersededWhy = 'changed' | 'stale';

export interface OpenResult {
  readonly approval: StoredApproval;
  /** False when the slot's current request is for this exact action and was returned as it is. */
  readonly created: boolean;
  /** The request this one replaced, and why. */
  readonly superseded?: { readonly approvalId: string; readonly why: SupersededWhy };
}

export interface OpenOptions {
  readonly timeoutMs: number;
  /** An approval decided longer ago than this is asked again (default: timeoutMs). */
  readonly maxDecisionAgeMs?: number;
  /** The owning agent's fence: a stale agent cannot create or supersede requests. */
  readonly fence?: Fence;
  readonly now?: Date;
}

export type DecideResult =
  /** This call's decision won (for a request needing several approvers: this approval completed it). */
  | { outcome: 'decided'; approval: StoredApproval }
  /** One more approval of a request that needs several; approval.votes has who so far. Not decided yet. */
  | { outcome: 'voted'; approval: StoredApproval }
  /** This person's approval was already counted; the same person twice counts once. */
  | { outcome: 'already_voted'; approval: StoredApproval }
  /** Someone decided first: approval.decision says who and when. */
  | { outcome: 'already_decided'; approval: StoredApproval }
  /** A newer request replaced this one (approval.superseded says why): decide that one instead. */
  | { outcome: 'superseded'; approval: StoredApproval }
  /** Past expiresAt: the stored decision is the expiry (a denial), recorded now if nothing was recorded yet. */
  | { outcome: 'expired'; approval: StoredApproval }
  | { outcome: 'not_found' };

/** expireIfDue() also answers for a request that is neither decided nor due yet. */
export type ExpireResult = DecideResult | { outcome: 'pending'; approval: StoredApproval };

export interface DecisionInput {
  readonly approved: boolean;
  /** Who decided (a Slack user id, a terminal operator). */
  readonly by: string;
  /** Why, in the decider's words: kept with the decision, approved or denied. */
  readonly note?: string;
  /** Which front recorded it. */
  readonly via?: string;
  /** The decision as the front signed it: what the agent verifies before it acts on the decision. */
  readonly signed?: SignedDecision;
}

export interface ApprovalStoreOptions {
  /** Called for a stored approval that fails validation in pendingForRun(); it is skipped there. */
  readonly onInvalid?: (problem: InvalidStoredData) => void;
}

/**
 * Deterministic, so a resumed run finds its request again, and usable as a BullMQ job id: no `:` and never
 * all digits. Parts are percent-encoded around a `~` separator, so distinct inputs give distinct ids
 * (`loop/step` becomes `loop%2Fstep`). Inside a for_each the item's identity key follows the step (see
 * src/engine/slot.ts; hex, never a position). Round 1 has no suffix; a request that supersedes another in
 * the same slot is round 2, 3, ... (`~r2`: hex has no `r`, so it cannot be read as an item key).
 */
export function approvalId(runId: string, stepId: string, item?: string, round = 1): string {
  assertRunId(runId);
  if (item !== undefined && !/^[0-9a-f]{8,64}$/.test(item)) {
    throw new RangeError('item must be the hex identity key of a for_each item');
  }
  if (!Number.isSafeInteger(round) || round < 1) throw new RangeError('round must be a whole number >= 1');
  const parts = ['approval', encodePart(runId), encodePart(stepId)];
  if (item !== undefined) parts.push(item);
  if (round > 1) parts.push(`r${round}`);
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

// KEYS: slots hash, run index, current approval (or the new key again when the slot is empty), new approval.
// ARGV: slot, expected current id or '', new id, runId, stepId, digest, request JSON, now ms or '', timeout ms,
// max decision age ms.
// Returns {'retry'} when the slot moved since the caller read it; {'existing', hash} for the slot's current
// request when it is for this exact action and still usable (its expiry kept: a resumed run must not get a
// fresh timeout by asking again); else {'created', hash, superseded id or '', why or ''}.
const OPEN = `${NOW}
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return {'retry'} end
local now = now_ms(ARGV[8])
local replaced, why = '', ''
if cur then
  local h = KEYS[3]
  if redis.call('HEXISTS', h, 'supersededAt') == 0 then
    local same = redis.call('HGET', h, 'digest') == ARGV[6]
    local approved = redis.call('HGET', h, 'decisionApproved') == '1'
    local consumed = redis.call('HEXISTS', h, 'consumedBy') == 1
    local decidedAt = tonumber(redis.call('HGET', h, 'decisionAt') or '0')
    local stale = approved and not consumed and tonumber(now) - decidedAt > tonumber(ARGV[10])
    if same and not stale then return {'existing', redis.call('HGETALL', h)} end
    why = 'changed'
    if same then why = 'stale' end
    redis.call('HSET', h, 'supersededAt', now, 'supersededWhy', why)
  else
    why = redis.call('HGET', h, 'supersededWhy')
  end
  replaced = cur
end
local expires = string.format('%.0f', tonumber(now) + tonumber(ARGV[9]))
redis.call('HSET', KEYS[4], 'approvalId', ARGV[3], 'runId', ARGV[4], 'stepId', ARGV[5], 'digest', ARGV[6],
  'request', ARGV[7], 'requestedAt', now, 'expiresAt', expires, 'timeoutMs', ARGV[9])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[3])
return {'created', redis.call('HGETALL', KEYS[4]), replaced, why}
`;

// KEYS: approval. ARGV: mode ('decide' | 'expire'), now ms or '', approved ('1'/'0'), by, note, via, signed
// statement JSON or ''.
// Returns {outcome} or {outcome, flat hash}. Order matters: a superseded request takes no decision at all;
// an existing decision stands even past expiry (it was taken in time); only an undecided request can
// expire, and it expires at expiresAt, not at the moment somebody noticed.
const DECIDE = `${NOW}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
if redis.call('HEXISTS', KEYS[1], 'supersededAt') == 1 then return {'superseded', redis.call('HGETALL', KEYS[1])} end
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
-- A request needing several approvers counts distinct approvals here, in the same script as the decision, so
-- two clicks cannot both complete it and one person cannot count twice. A denial ends it at once (below).
local quorum = tonumber(cjson.decode(redis.call('HGET', KEYS[1], 'request'))['quorum'] or 1) or 1
if ARGV[3] == '1' and quorum > 1 then
  local votes = {}
  local raw = redis.call('HGET', KEYS[1], 'votes')
  if raw then votes = cjson.decode(raw) end
  for _, v in ipairs(votes) do
    if v['by'] == ARGV[4] then return {'already_voted', redis.call('HGETALL', KEYS[1])} end
  end
  local vote = {by = ARGV[4], at = now}
  if ARGV[5] ~= '' then vote['note'] = ARGV[5] end
  if ARGV[6] ~= '' then vote['via'] = ARGV[6] end
  if ARGV[7] ~= '' then vote['signed'] = ARGV[7] end
  table.insert(votes, vote)
  redis.call('HSET', KEYS[1], 'votes', cjson.encode(votes))
  if #votes < quorum then return {'voted', redis.call('HGETALL', KEYS[1])} end
end
redis.call('HSET', KEYS[1], 'decisionApproved', ARGV[3], 'decisionBy', ARGV[4], 'decisionAt', now)
if ARGV[3] == '0' then redis.call('HSET', KEYS[1], 'decisionReason', 'denied') end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'decisionNote', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'decidedVia', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'decisionSigned', ARGV[7]) end
return {'decided', redis.call('HGETALL', KEYS[1])}
`;

// KEYS: approval. ARGV: now ms or ''.
// Returns {'not_found'} or {outcome, flat hash}: 'extended' when the request is open and its expiry now runs
// from this moment (never shortened), else 'unchanged'. A decided or superseded request is final. A request
// shown before keeps its expiry once that passed (the expiry counts, whoever noticed it); one never shown
// gets its full time even past the expiry set when it was asked: nobody could have decided it yet.
const SHOW = `${NOW}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
local final = redis.call('HEXISTS', KEYS[1], 'decisionAt') == 1 or redis.call('HEXISTS', KEYS[1], 'supersededAt') == 1
local timeout = tonumber(redis.call('HGET', KEYS[1], 'timeoutMs') or '')
if final or not timeout then return {'unchanged', redis.call('HGETALL', KEYS[1])} end
local now = tonumber(now_ms(ARGV[1]))
local expires = tonumber(redis.call('HGET', KEYS[1], 'expiresAt'))
local shown = redis.call('HEXISTS', KEYS[1], 'shownAt') == 1
if shown and now >= expires then return {'unchanged', redis.call('HGETALL', KEYS[1])} end
if not shown then redis.call('HSET', KEYS[1], 'shownAt', string.format('%.0f', now)) end
if now + timeout > expires then
  redis.call('HSET', KEYS[1], 'expiresAt', string.format('%.0f', now + timeout))
end
return {'extended', redis.call('HGETALL', KEYS[1])}
`;

const epochMs = z
  .string()
  .regex(/^\d{1,16}$/, { error: 'must be epoch milliseconds' })
  .transform(Number);

const storedSchema = z.object({
  approvalId: z.string().min(1),
  runId: z.string().min(1),
  stepId: z.string().min(1),
  digest: z.string().min(1),
  request: jsonText.pipe(approvalRequestSchema),
  requestedAt: epochMs,
  expiresAt: epochMs,
  timeoutMs: epochMs.exactOptional(),
  shownAt: epochMs.exactOptional(),
  decisionApproved: z.enum(['0', '1']).exactOptional(),
  decisionBy: z.string().exactOptional(),
  decisionAt: epochMs.exactOptional(),
  decisionReason: z.enum(['denied', 'expired']).exactOptional(),
  decisionNote: z.string().exactOptional(),
  decidedVia: z.string().exactOptional(),
  decisionSigned: jsonText.pipe(signedDecisionSchema).exactOptional(),
  supersededAt: epochMs.exactOptional(),
  supersededWhy: z.enum(['changed', 'stale']).exactOptional(),
  consumedBy: z.string().exactOptional(),
  consumedAt: epochMs.exactOptional(),
  votes: jsonText
    .pipe(
      z.array(
        z.object({
          by: z.string().min(1),
          at: epochMs,
          note: z.string().exactOptional(),
          via: z.string().exactOptional(),
          signed: jsonText.pipe(signedDecisionSchema).exactOptional(),
        }),
      ),
    )
    .exactOptional(),
});

type ScriptReply = [string, unknown[]?];

export class ApprovalStore {
  private readonly onInvalid: (problem: InvalidStoredData) => void;

  constructor(
    private readonly redis: RedisClient,
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

  private slotsKey(runId: string): string {
    return `${this.prefix}:run:${runId}:approval-slots`;
  }

  /** Every key a run's approvals use: its index, its slots and each approval (they expire with the run). */
  async keysOfRun(runId: string): Promise<string[]> {
    assertRunId(runId);
    const ids = await this.redis.zrange(this.runIndexKey(runId), 0, -1);
    return [this.runIndexKey(runId), this.slotsKey(runId), ...ids.map((id) => this.key(id))];
  }

  /**
   * The request for this exact action: the slot's current one when its digest matches and it is still
   * usable (so a resumed run finds its request, expiry and decision again), else a new round that
   * supersedes it. `request.digest` is what binds the approval to the action.
   */
  async open(request: ApprovalRequest, opts: OpenOptions): Promise<OpenResult> {
    assertRunId(request.runId);
    const { timeoutMs } = opts;
    const maxAge = opts.maxDecisionAgeMs ?? timeoutMs;
    for (const [name, v] of [
      ['timeoutMs', timeoutMs],
      ['maxDecisionAgeMs', maxAge],
    ] as const) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a whole number > 0`);
    }
    const { stepId, iteration } = request.step;
    const slot = stepSlot(request.step);
    const slots = this.slotsKey(request.runId);
    // Optimistic: read the slot, then let the script confirm it did not move (another agent, a retry).
    for (let tries = 0; tries < 5; tries++) {
      const current = await this.redis.hget(slots, slot);
      const round = current === null ? 1 : roundOf(current) + 1;
      const id = approvalId(request.runId, stepId, iteration?.key, round);
      const reply = (await evalFenced(
        this.redis,
        OPEN,
        [slots, this.runIndexKey(request.runId), this.key(current ?? id), this.key(id)],
        [
          slot,
          current ?? '',
          id,
          request.runId,
          stepId,
          request.digest,
          JSON.stringify(request),
          opts.now === undefined ? '' : String(opts.now.getTime()),
          String(timeoutMs),
          String(maxAge),
        ],
        opts.fence,
      )) as [string, unknown[]?, string?, string?];
      const [outcome, flat, replaced, why] = reply;
      if (outcome === 'retry' || flat === undefined) continue;
      const hash = flatToObject(flat);
      const approval = this.mustParse(hash.approvalId ?? id, hash);
      if (outcome === 'existing') return { approval, created: false };
      return {
        approval,
        created: true,
        ...(replaced
          ? { superseded: { approvalId: replaced, why: why === 'stale' ? 'stale' : 'changed' } }
          : {}),
      };
    }
    throw new CapiError(
      ErrorCode.Unknown,
      `the approval slot ${slot} of run ${request.runId} kept changing while it was being opened; try again`,
    );
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

  /**
   * A front is showing the request to the people who may decide it, now (Slack posts it): an open request's
   * expiry then runs from this moment, so a request that waited behind a slow thread is never first seen
   * already expired or about to. Atomic with every decision; never shortens an expiry, never touches a
   * decided or superseded request. Returns the request as stored after it, or null when there is none.
   */
  async markShown(approvalId: string, now?: Date): Promise<StoredApproval | null> {
    const [outcome, flat] = (await this.redis.eval(
      SHOW,
      1,
      this.key(approvalId),
      now === undefined ? '' : String(now.getTime()),
    )) as ScriptReply;
    if (outcome === 'not_found' || flat === undefined) return null;
    return this.mustParse(approvalId, flatToObject(flat));
  }

  /** Records `{ approved: false, reason: 'expired', by: 'expiry' }` when due and undecided. */
  async expireIfDue(approvalId: string, now?: Date): Promise<ExpireResult> {
    return this.run('expire', approvalId, undefined, now);
  }

  /** The run's undecided requests, oldest first (normally at most one). */
  async pendingForRun(runId: string): Promise<StoredApproval[]> {
    return (await this.allForRun(runId)).filter(
      (a) => a.decision === undefined && a.superseded === undefined,
    );
  }

  /** Every request of the run, decided or not, oldest first: the approval history for a postmortem. */
  async allForRun(runId: string): Promise<StoredApproval[]> {
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
      else out.push(parsed.approval);
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
      decision?.signed === undefined ? '' : JSON.stringify(decision.signed),
    )) as ScriptReply;
    if (outcome === 'not_found' || flat === undefined) return { outcome: 'not_found' };
    const approval = this.mustParse(approvalId, flatToObject(flat));
    switch (outcome) {
      case 'decided':
      case 'voted':
      case 'already_voted':
      case 'already_decided':
      case 'superseded':
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
  const votes: ApprovalVote[] | undefined = h.votes?.map((v) => ({
    by: v.by,
    at: new Date(v.at).toISOString(),
    ...(v.note !== undefined ? { note: v.note } : {}),
    ...(v.via !== undefined ? { via: v.via } : {}),
    ...(v.signed !== undefined ? { signed: v.signed } : {}),
  }));
  let decision: ApprovalDecision | undefined;
  if (h.decisionAt !== undefined) {
    if (h.decisionApproved === undefined || h.decisionBy === undefined) {
      return { issues: [`${key}: a decision time without who decided or what`] };
    }
    const at = new Date(h.decisionAt).toISOString();
    if (h.decisionApproved === '1') {
      decision = {
        approved: true,
        by: h.decisionBy,
        at,
        ...(h.decisionNote !== undefined ? { note: h.decisionNote } : {}),
        ...(votes !== undefined ? { approvers: votes.map((v) => v.by) } : {}),
      };
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
      ...(h.shownAt !== undefined ? { shownAt: new Date(h.shownAt).toISOString() } : {}),
      ...(decision !== undefined ? { decision } : {}),
      ...(h.decisionSigned !== undefined ? { decisionSigned: h.decisionSigned } : {}),
      ...(h.decidedVia !== undefined ? { decidedVia: h.decidedVia } : {}),
      ...(h.supersededAt !== undefined
        ? {
            superseded: {
              at: new Date(h.supersededAt).toISOString(),
              why: h.supersededWhy ?? 'changed',
            },
          }
        : {}),
      ...(h.consumedBy !== undefined ? { consumedBy: h.consumedBy } : {}),
      ...(votes !== undefined ? { votes } : {}),
    },
  };
}

/** The round an approval id names (1 without a suffix). */
function roundOf(id: string): number {
  const m = /~r(\d+)$/.exec(id);
  return m ? Number(m[1]) : 1;
}
