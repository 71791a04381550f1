/**
 * Run records and the runs index. A record is a Redis hash so that a patch is a plain HSET inside one Lua
 * script: the final-status rule and the active index are checked and moved in the same atomic step as the
 * write, which a read-modify-write from Node could not guarantee with several agents and fronts at once.
 *
 * Keys (`p` = prefix):
 * - `p:run:<runId>`     hash: the record; `params` is JSON, every other field a plain string
 * - `p:run:<runId>:runbook` string: the runbook the run started with (src/runbook/copy.ts), written with the
 *                       record; every resume runs it
 * - `p:runs`            sorted set of every run id, scored by createdAt (ms)
 * - `p:runs:active`     sorted set of the ids whose status is not final, scored by createdAt (ms)
 */

import { z } from 'zod';
import { RUN_STATUSES } from '../engine/events.js';
import { CapiError, ErrorCode } from '../errors.js';
import type { RedisClient } from '../redis/connection.js';
import { RUN_ID_PATTERN } from '../run-id.js';
import { describeZodIssues } from '../validation.js';
import { evalFenced, type Fence } from './fence.js';
import { jsonText } from './stored-json.js';

/** A run's statuses on its way: the engine's final ones (RUN_STATUSES) and those before them. */
export const RUN_RECORD_STATUSES = [
  'queued',
  'running',
  'waiting_approval',
  'interrupted',
  ...RUN_STATUSES,
] as const;
export type RunRecordStatus = (typeof RUN_RECORD_STATUSES)[number];

/**
 * `interrupted` is deliberately not final: it marks a run whose agent died, and the run resumes from it.
 */
export const FINAL_STATUSES: readonly RunRecordStatus[] = RUN_STATUSES;

export function isFinalStatus(status: RunRecordStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

export interface RunRecord {
  readonly runId: string;
  readonly runbook: string;
  readonly params: Readonly<Record<string, string>>;
  readonly site: string;
  readonly requestedBy: string;
  /** Where the run was asked for when not from Slack: `terminal as <unix user>`. */
  readonly requestedVia?: string;
  /** The BullMQ queue its job is on, so a front can wake it without knowing the site profile. */
  readonly queue: string;
  readonly channel?: string;
  readonly status: RunRecordStatus;
  readonly currentStep?: string;
  /** ISO times. */
  readonly createdAt: string;
  readonly updatedAt: string;
  /** Set by the registry when the status first becomes final, unless the patch gives it. */
  readonly finishedAt?: string;
  readonly message?: string;
  /** The first person who asked to cancel; later requests do not overwrite it. */
  readonly cancelRequestedBy?: string;
}

export type NewRunRecord = Omit<RunRecord, 'status' | 'createdAt' | 'updatedAt'>;

/** The fields that change while a run goes on; who, what and where are fixed at creation. */
export type RunRecordPatch = Partial<
  Pick<RunRecord, 'status' | 'currentStep' | 'message' | 'channel' | 'finishedAt'>
>;

export interface InvalidStoredData {
  readonly key: string;
  readonly issues: readonly string[];
}

export interface RunRegistryOptions {
  /** Called for a stored record that fails validation in list(); it is skipped there. */
  readonly onInvalid?: (problem: InvalidStoredData) => void;
  /** Clock for createdAt/updatedAt/finishedAt; tests pin it. */
  readonly now?: () => Date;
}

export function assertRunId(runId: string): void {
  if (!RUN_ID_PATTERN.test(runId)) {
    throw new CapiError(
      ErrorCode.RunIdInvalid,
      `invalid run id ${JSON.stringify(runId.slice(0, 120))}: use 1-100 letters, digits, "_" or "-", starting with a letter or digit`,
    );
  }
}

export function reportInvalidByDefault(problem: InvalidStoredData): void {
  process.emitWarning(`${problem.key} is not valid and was skipped: ${problem.issues.join('; ')}`, {
    code: 'CAPI_STORED_DATA_INVALID',
  });
}

/** HGETALL and Lua scripts return hashes as flat [field, value, ...] arrays. */
export function flatToObject(flat: readonly unknown[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

const nonEmpty = z.string().min(1);
const isoTime = z.iso.datetime();

const storedRecordSchema = z.object({
  runId: z.string().regex(RUN_ID_PATTERN),
  runbook: nonEmpty,
  params: jsonText.pipe(z.record(z.string(), z.string())),
  site: nonEmpty,
  requestedBy: nonEmpty,
  requestedVia: z.string().exactOptional(),
  queue: nonEmpty,
  channel: z.string().exactOptional(),
  status: z.enum(RUN_RECORD_STATUSES),
  currentStep: z.string().exactOptional(),
  createdAt: isoTime,
  updatedAt: isoTime,
  finishedAt: isoTime.exactOptional(),
  message: z.string().exactOptional(),
  cancelRequestedBy: z.string().exactOptional(),
});

const newRecordSchema = z.object({
  runId: z.string().regex(RUN_ID_PATTERN),
  runbook: nonEmpty,
  params: z.record(z.string(), z.string()),
  site: nonEmpty,
  requestedBy: nonEmpty,
  requestedVia: z.string().exactOptional(),
  queue: nonEmpty,
  channel: z.string().exactOptional(),
  currentStep: z.string().exactOptional(),
  finishedAt: isoTime.exactOptional(),
  message: z.string().exactOptional(),
  cancelRequestedBy: z.string().exactOptional(),
});

const patchSchema = z.object({
  status: z.enum(RUN_RECORD_STATUSES).exactOptional(),
  currentStep: z.string().exactOptional(),
  message: z.string().exactOptional(),
  channel: z.string().exactOptional(),
  finishedAt: isoTime.exactOptional(),
});

const FINAL_LUA_TABLE = `{${FINAL_STATUSES.map((s) => `['${s}']=true`).join(',')}}`;

// KEYS: record, all-runs index, active index, runbook copy. ARGV: runId, createdAt ms, runbook copy or '',
// then field/value pairs.
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[3] ~= '' then redis.call('SET', KEYS[4], ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local final = ${FINAL_LUA_TABLE}
if not final[redis.call('HGET', KEYS[1], 'status')] then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) end
return 1
`;

/**
 * capi_update(record, active index, a): a = {runId, now (ISO), new status or '', then field/value pairs}.
 * Returns {'not_found'} | {'final', current status} | {'ok'}. A Lua function, so that the agent's step write
 * (src/agent/timeline-sink.ts) updates the record in the same script as the timeline.
 */
export const UPDATE_LUA_FUNCTION = `
local function capi_update(record, active, a)
  if redis.call('EXISTS', record) == 0 then return {'not_found'} end
  local final = ${FINAL_LUA_TABLE}
  local current = redis.call('HGET', record, 'status')
  local wanted = a[3]
  if final[current] and wanted ~= '' and wanted ~= current then return {'final', current} end
  if #a > 3 then redis.call('HSET', record, unpack(a, 4)) end
  redis.call('HSET', record, 'updatedAt', a[2])
  if final[redis.call('HGET', record, 'status')] then
    redis.call('ZREM', active, a[1])
    redis.call('HSETNX', record, 'finishedAt', a[2])
  end
  return {'ok'}
end
`;

// KEYS: record, active index. ARGV: capi_update's arguments. Returns capi_update's refusal or {'ok', flat hash}.
const UPDATE = `${UPDATE_LUA_FUNCTION}
local r = capi_update(KEYS[1], KEYS[2], ARGV)
if r[1] ~= 'ok' then return r end
return {'ok', redis.call('HGETALL', KEYS[1])}
`;

// KEYS: record. ARGV: who, now (ISO). The first asker is kept: a second click must not rewrite history.
const REQUEST_CANCEL = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
local final = ${FINAL_LUA_TABLE}
local current = redis.call('HGET', KEYS[1], 'status')
if final[current] then return {'final', current} end
if redis.call('HSETNX', KEYS[1], 'cancelRequestedBy', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'updatedAt', ARGV[2])
end
return {'ok', redis.call('HGETALL', KEYS[1])}
`;

type ScriptReply = [string, unknown?];

export class RunRegistry {
  private readonly onInvalid: (problem: InvalidStoredData) => void;
  private readonly now: () => Date;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    opts: RunRegistryOptions = {},
  ) {
    this.onInvalid = opts.onInvalid ?? reportInvalidByDefault;
    this.now = opts.now ?? (() => new Date());
  }

  recordKey(runId: string): string {
    return `${this.prefix}:run:${runId}`;
  }

  /** The run's stored runbook copy (see src/runbook/copy.ts). */
  runbookKey(runId: string): string {
    return `${this.prefix}:run:${runId}:runbook`;
  }

  /** The runbook copy stored with the run; null when there is none (a run submitted by an older version). */
  async storedRunbook(runId: string): Promise<string | null> {
    assertRunId(runId);
    return this.redis.get(this.runbookKey(runId));
  }

  /**
   * Stores the copy for a run that has none, under the owner's fence: a run an older front submitted, taken
   * up before any step ran. Never replaces a copy already stored.
   */
  async adoptRunbook(runId: string, copy: string, fence: Fence): Promise<void> {
    assertRunId(runId);
    await evalFenced(
      this.redis,
      "redis.call('SET', KEYS[1], ARGV[1], 'NX') return 1",
      [this.runbookKey(runId)],
      [copy],
      fence,
    );
  }

  /** Milliseconds until the run's record expires (RUN_RETENTION after it finished); null while it is kept. */
  async expiresInMs(runId: string): Promise<number | null> {
    assertRunId(runId);
    const ttl = await this.redis.pttl(this.recordKey(runId));
    return ttl > 0 ? ttl : null;
  }

  private get indexKey(): string {
    return `${this.prefix}:runs`;
  }

  private get activeKey(): string {
    return `${this.prefix}:runs:active`;
  }

  /** `runbook`: the copy of the runbook the run starts with, stored in the same atomic step as the record. */
  async create(record: NewRunRecord, opts: { readonly runbook?: string } = {}): Promise<RunRecord> {
    assertRunId(record.runId);
    const parsed = newRecordSchema.safeParse(record);
    if (!parsed.success) {
      throw new CapiError(
        ErrorCode.StoredDataInvalid,
        `run record for ${record.runId} is invalid:\n${describeZodIssues(parsed.error)
          .map((i) => `  - ${i}`)
          .join('\n')}`,
      );
    }
    const now = this.now();
    const iso = now.toISOString();
    const full: RunRecord = { ...parsed.data, status: 'queued', createdAt: iso, updatedAt: iso };
    const created = await this.redis.eval(
      CREATE,
      4,
      this.recordKey(record.runId),
      this.indexKey,
      this.activeKey,
      this.runbookKey(record.runId),
      record.runId,
      String(now.getTime()),
      opts.runbook ?? '',
      ...toFields(full),
    );
    if (created !== 1) {
      throw new CapiError(
        ErrorCode.RunExists,
        `run ${record.runId} already exists; a run id is never reused, start a new run instead`,
      );
    }
    return full;
  }

  /** Throws StoredDataInvalid for a record that is there but malformed: callers must not act on it. */
  async get(runId: string): Promise<RunRecord | null> {
    assertRunId(runId);
    const key = this.recordKey(runId);
    const hash = await this.redis.hgetall(key);
    if (Object.keys(hash).length === 0) return null;
    const parsed = parseRecord(key, hash);
    if ('issues' in parsed) {
      throw new CapiError(
        ErrorCode.StoredDataInvalid,
        `${key} is not a valid run record:\n${parsed.issues.map((i) => `  - ${i}`).join('\n')}`,
      );
    }
    return parsed.record;
  }

  /**
   * A final status (succeeded, failed, denied, cancelled) cannot change: an update to another status throws
   * RunFinished. Patches that keep the status (a corrected message) are still accepted. With a fence, the
   * write happens only while that fence is the run's newest (else RunFencedError, nothing written).
   */
  async update(runId: string, patch: RunRecordPatch, fence?: Fence): Promise<RunRecord> {
    const { keys, args } = this.updateCall(runId, patch);
    const reply = (await evalFenced(this.redis, UPDATE, keys, args, fence)) as ScriptReply;
    return this.recordFromReply(runId, reply, `cannot set run ${runId} to ${patch.status}`);
  }

  /** The keys and capi_update arguments that apply `patch` (validated), for a script of one's own. */
  updateCall(runId: string, patch: RunRecordPatch): { keys: string[]; args: string[] } {
    assertRunId(runId);
    const parsed = patchSchema.safeParse(patch);
    if (!parsed.success) {
      throw new CapiError(
        ErrorCode.StoredDataInvalid,
        `update of run ${runId} is invalid:\n${describeZodIssues(parsed.error)
          .map((i) => `  - ${i}`)
          .join('\n')}`,
      );
    }
    return {
      keys: [this.recordKey(runId), this.activeKey],
      args: [runId, this.now().toISOString(), parsed.data.status ?? '', ...toFields(parsed.data)],
    };
  }

  /** Throws what update() throws for a capi_update refusal ({'not_found'}, {'final', status}). */
  throwIfRefused(runId: string, reply: readonly unknown[], patch: RunRecordPatch): void {
    if (reply[0] === 'ok') return;
    this.recordFromReply(runId, reply as ScriptReply, `cannot set run ${runId} to ${patch.status}`);
  }

  /**
   * Records who asked; the agent reads the record between steps and stops there. Refused with RunFinished
   * when the run is already over, so the person asking hears that nothing is left to cancel.
   */
  async requestCancel(runId: string, by: string): Promise<RunRecord> {
    assertRunId(runId);
    const reply = (await this.redis.eval(
      REQUEST_CANCEL,
      1,
      this.recordKey(runId),
      by,
      this.now().toISOString(),
    )) as ScriptReply;
    return this.recordFromReply(runId, reply, 'nothing to cancel');
  }

  /**
   * `active: true` lists only runs that are not finished, `active: false` only finished ones; without it,
   * active runs come first, then finished ones, each newest first. Default limit 20.
   */
  async list(opts: { active?: boolean; limit?: number } = {}): Promise<RunRecord[]> {
    const limit = opts.limit ?? 20;
    if (!Number.isInteger(limit) || limit <= 0) return [];
    const ids: string[] = [];
    if (opts.active !== false) ids.push(...(await this.redis.zrevrange(this.activeKey, 0, limit - 1)));
    if (opts.active !== true && ids.length < limit) ids.push(...(await this.finishedIds(limit - ids.length)));

    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.recordKey(id));
    const replies = (await pipeline.exec()) ?? [];
    const out: RunRecord[] = [];
    replies.forEach(([err, hash], i) => {
      const key = this.recordKey(ids[i] as string);
      if (err) throw err;
      const fields = hash as Record<string, string>;
      // An id whose record was deleted by hand: nothing to show.
      if (Object.keys(fields).length === 0) return;
      const parsed = parseRecord(key, fields);
      if ('issues' in parsed) this.onInvalid({ key, issues: parsed.issues });
      else out.push(parsed.record);
    });
    return out;
  }

  /** Newest first, skipping active ids; the active set stays small (one run per site lock). */
  private async finishedIds(wanted: number): Promise<string[]> {
    const active = new Set(await this.redis.zrange(this.activeKey, 0, -1));
    const out: string[] = [];
    const page = Math.max(wanted + active.size, 50);
    for (let start = 0; out.length < wanted; start += page) {
      const batch = await this.redis.zrevrange(this.indexKey, start, start + page - 1);
      for (const id of batch) {
        if (!active.has(id) && out.length < wanted) out.push(id);
      }
      if (batch.length < page) break;
    }
    return out;
  }

  private recordFromReply(runId: string, reply: ScriptReply, refusal: string): RunRecord {
    const [outcome, payload] = reply;
    if (outcome === 'not_found') {
      throw new CapiError(ErrorCode.RunNotFound, `run ${runId} does not exist (check the run id)`);
    }
    if (outcome === 'final') {
      throw new CapiError(
        ErrorCode.RunFinished,
        `run ${runId} already finished with status ${String(payload)}; ${refusal}: a finished run is final`,
      );
    }
    const key = this.recordKey(runId);
    const parsed = parseRecord(key, flatToObject(payload as unknown[]));
    if ('issues' in parsed) {
      throw new CapiError(
        ErrorCode.StoredDataInvalid,
        `${key} is not a valid run record:\n${parsed.issues.map((i) => `  - ${i}`).join('\n')}`,
      );
    }
    return parsed.record;
  }
}

function toFields(values: object): string[] {
  const out: string[] = [];
  for (const [field, value] of Object.entries(values)) {
    if (value === undefined) continue;
    out.push(field, field === 'params' ? JSON.stringify(value) : String(value));
  }
  return out;
}

function parseRecord(
  key: string,
  hash: Record<string, string>,
): { record: RunRecord } | { issues: string[] } {
  const parsed = storedRecordSchema.safeParse(hash);
  if (!parsed.success) return { issues: describeZodIssues(parsed.error, `${key} `) };
  return { record: parsed.data };
}
