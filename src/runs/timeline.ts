/**
 * The run timeline: every RunEvent of one run, in order, in one Redis stream that the fronts read and follow.
 *
 * Keys (`p` = prefix):
 * - `p:run:<runId>:timeline`       stream; each entry has `v` (format version), `e` (the event as JSON) and,
 *                                  on the truncation marker only, `k=truncated`
 * - `p:run:<runId>:timeline:meta`  hash; `output` counts every step.output line offered (stored or not),
 *                                  `outputStored` and `outputBytes` the lines stored and their bytes,
 *                                  `droppedBytes` the bytes of the lines offered but not stored,
 *                                  `truncated` is set once the truncation marker is stored,
 *                                  `dedupe:<key>` holds the stream id an event was stored under ('' when the
 *                                  line was dropped by truncation)
 *
 * An entry's time is the server time in its stream id, so every writer (agent, fronts) shares one clock.
 *
 * Malformed entries (written by something else, or by an older format) are skipped by read() and follow(),
 * and reported through `onInvalid`; they are never turned into made-up events, because a postmortem must
 * not show an event that did not happen.
 */
import { DEFAULT_MAX_OUTPUT_BYTES_PER_RUN } from '../config/env.js';
import type { RunEvent } from '../engine/events.js';
import { redactText } from '../redact.js';
import { dedicatedConnection, type RedisClient } from '../redis/connection.js';
import { describeZodIssues } from '../validation.js';
import { runEventSchema } from './event-schema.js';
import { evalFenced, type Fence } from './fence.js';
import { assertRunId, type InvalidStoredData, reportInvalidByDefault } from './registry.js';

export interface TimelineEntry {
  /** The stream id. */
  readonly id: string;
  /** ISO time (server clock). */
  readonly at: string;
  readonly event: RunEvent;
}

export interface RunTimelineOptions {
  /** step.output lines stored per run; later lines are counted, not stored. Default 5000. */
  readonly maxOutputLinesPerRun?: number;
  /**
   * Bytes of step.output events stored per run (so a few enormous lines cannot fill Redis either); later
   * lines are counted, not stored. Default 4 MiB.
   */
  readonly maxOutputBytesPerRun?: number;
  /** Called for each stream entry that fails validation; the entry is skipped. */
  readonly onInvalid?: (problem: InvalidStoredData & { readonly id: string }) => void;
  /** How long one XREAD BLOCK waits before follow() checks again; default 10 s. */
  readonly followBlockMs?: number;
}

export const DEFAULT_MAX_OUTPUT_LINES_PER_RUN = 5000;

// ---------------------------------------------------------------------------------------------------------

/** Stored in place of the line; read() swaps in the final count, which is unknown when the marker is written. */
const TRUNCATION_PLACEHOLDER = '[... output truncated ...]';

export function truncationLine(notStored: number, droppedBytes?: number): string {
  const bytes = droppedBytes === undefined ? '' : ` (${droppedBytes} bytes)`;
  return `[... output truncated: ${notStored} more lines${bytes} not stored ...]`;
}

/**
 * capi_append(stream, meta, a): a = {event JSON, has dedupe key ('1'/'0'), dedupe key, is output ('1'/'0'),
 * max output lines, truncation marker JSON, max output bytes, the line's bytes}. Returns the new stream id, or
 * false when nothing new was stored (a duplicate, or an output line past a limit). A Lua function, so that
 * the agent's step write (src/agent/timeline-sink.ts) runs it in the same script as the checkpoint and record.
 *
 * Dedupe is checked before the output counter so that a resumed run re-emitting its output neither
 * duplicates lines nor uses up the output budget twice. Once one line is over a limit, no later line is
 * stored: the output stops at the marker instead of skipping around it.
 */
export const APPEND_LUA_FUNCTION = `
local function capi_append(stream, meta, a)
  local field = 'dedupe:' .. a[3]
  if a[2] == '1' and redis.call('HEXISTS', meta, field) == 1 then return false end
  local id
  if a[4] == '1' then
    local n = redis.call('HINCRBY', meta, 'output', 1)
    local bytes = tonumber(redis.call('HGET', meta, 'outputBytes') or '0') + #a[1]
    local over = n > tonumber(a[5]) or bytes > tonumber(a[7])
    if over or redis.call('HEXISTS', meta, 'truncated') == 1 then
      redis.call('HINCRBY', meta, 'droppedBytes', tonumber(a[8]))
      if redis.call('HSETNX', meta, 'truncated', '1') == 1 then
        id = redis.call('XADD', stream, '*', 'v', '1', 'e', a[6], 'k', 'truncated')
      else
        id = ''
      end
    else
      redis.call('HSET', meta, 'outputBytes', bytes)
      redis.call('HINCRBY', meta, 'outputStored', 1)
    end
  end
  if not id then id = redis.call('XADD', stream, '*', 'v', '1', 'e', a[1]) end
  if a[2] == '1' then redis.call('HSET', meta, field, id) end
  if id == '' then return false end
  return id
end
`;

/** The number of arguments capi_append takes. */
export const APPEND_ARG_COUNT = 8;

/** KEYS: stream, meta. ARGV: capi_append's arguments. */
const APPEND = `${APPEND_LUA_FUNCTION}
return capi_append(KEYS[1], KEYS[2], ARGV)
`;

type StreamEntry = [id: string, fields: string[]];

export class RunTimeline {
  private readonly maxOutput: number;
  private readonly maxOutputBytes: number;
  private readonly onInvalid: (problem: InvalidStoredData & { readonly id: string }) => void;
  private readonly followBlockMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    opts: RunTimelineOptions = {},
  ) {
    this.maxOutput = opts.maxOutputLinesPerRun ?? DEFAULT_MAX_OUTPUT_LINES_PER_RUN;
    if (!Number.isSafeInteger(this.maxOutput) || this.maxOutput < 0) {
      throw new RangeError('maxOutputLinesPerRun must be a whole number >= 0');
    }
    this.maxOutputBytes = opts.maxOutputBytesPerRun ?? DEFAULT_MAX_OUTPUT_BYTES_PER_RUN;
    if (!Number.isSafeInteger(this.maxOutputBytes) || this.maxOutputBytes < 0) {
      throw new RangeError('maxOutputBytesPerRun must be a whole number >= 0');
    }
    this.onInvalid = opts.onInvalid ?? reportInvalidByDefault;
    this.followBlockMs = opts.followBlockMs ?? 10_000;
  }

  streamKey(runId: string): string {
    return `${this.prefix}:run:${runId}:timeline`;
  }

  private metaKey(runId: string): string {
    return `${this.prefix}:run:${runId}:timeline:meta`;
  }

  /** Every key a run's timeline uses (they expire with the run). */
  keys(runId: string): string[] {
    return [this.streamKey(runId), this.metaKey(runId)];
  }

  /**
   * Stores one event (every string redacted again) and returns its stream id. With a dedupeKey the event
   * is stored at most once per run and key; null means nothing new was stored: a duplicate, or an output
   * line past maxOutputLinesPerRun (counted, not stored). With a fence, only the run's newest owner can
   * append (RunFencedError otherwise).
   */
  async append(runId: string, event: RunEvent, dedupeKey?: string, fence?: Fence): Promise<string | null> {
    const { keys, args } = this.appendCall(runId, event, dedupeKey);
    const id = await evalFenced(this.redis, APPEND, keys, args, fence);
    return typeof id === 'string' ? id : null;
  }

  /** The keys and capi_append arguments that store `event` (redacted again), for a script of one's own. */
  appendCall(runId: string, event: RunEvent, dedupeKey?: string): { keys: string[]; args: string[] } {
    assertRunId(runId);
    const safe = redactDeep(event);
    const isOutput = safe.type === 'step.output';
    const marker = isOutput ? JSON.stringify({ ...safe, line: TRUNCATION_PLACEHOLDER }) : '';
    return {
      keys: [this.streamKey(runId), this.metaKey(runId)],
      args: [
        JSON.stringify(safe),
        dedupeKey === undefined ? '0' : '1',
        dedupeKey ?? '',
        isOutput ? '1' : '0',
        String(this.maxOutput),
        marker,
        String(this.maxOutputBytes),
        String(isOutput && safe.type === 'step.output' ? Buffer.byteLength(safe.line) : 0),
      ],
    };
  }

  /** Entries after `afterId` (exclusive; from the start when omitted), oldest first. */
  async read(runId: string, afterId?: string, count?: number): Promise<TimelineEntry[]> {
    assertRunId(runId);
    const start = afterId === undefined || afterId === '0' || afterId === '0-0' ? '-' : `(${afterId}`;
    const key = this.streamKey(runId);
    const entries: StreamEntry[] =
      count === undefined
        ? await this.redis.xrange(key, start, '+')
        : await this.redis.xrange(key, start, '+', 'COUNT', count);
    return this.decodeAll(runId, entries);
  }

  /**
   * Yields the entries after `afterId` (`$` = only new ones) as they arrive, and ends after a run.finished
   * event or when `signal` aborts. Blocks on its own connection: a blocked XREAD would stall every other
   * command queued on a shared one.
   */
  async *follow(runId: string, afterId: string, signal: AbortSignal): AsyncIterable<TimelineEntry> {
    assertRunId(runId);
    if (signal.aborted) return;
    const key = this.streamKey(runId);
    let last = afterId === '$' ? await this.lastId(runId) : afterId;
    // A producer-style shared connection may refuse to queue while connecting; this one must wait instead.
    // The name makes followers visible in CLIENT LIST.
    const conn = dedicatedConnection(this.redis, `${this.prefix}:follow:${runId}`);
    conn.on('error', () => {
      // Reported through the rejected XREAD; without a listener ioredis would log every reconnect attempt.
    });
    const stop = () => conn.disconnect();
    signal.addEventListener('abort', stop, { once: true });
    try {
      while (!signal.aborted) {
        let reply: [string, StreamEntry[]][] | null;
        try {
          reply = (await conn.xread('COUNT', 500, 'BLOCK', this.followBlockMs, 'STREAMS', key, last)) as
            | [string, StreamEntry[]][]
            | null;
        } catch (err) {
          if (signal.aborted) return;
          throw err;
        }
        const batch = reply?.[0]?.[1] ?? [];
        if (batch.length === 0) continue;
        last = (batch[batch.length - 1] as StreamEntry)[0];
        for (const entry of await this.decodeAll(runId, batch)) {
          yield entry;
          if (entry.event.type === 'run.finished') return;
        }
      }
    } finally {
      signal.removeEventListener('abort', stop);
      conn.disconnect();
    }
  }

  private async lastId(runId: string): Promise<string> {
    const last = await this.redis.xrevrange(this.streamKey(runId), '+', '-', 'COUNT', 1);
    return last[0]?.[0] ?? '0-0';
  }

  private async decodeAll(runId: string, entries: readonly StreamEntry[]): Promise<TimelineEntry[]> {
    let notStored: number | undefined;
    let droppedBytes: number | undefined;
    const out: TimelineEntry[] = [];
    for (const [id, flat] of entries) {
      const fields = fieldsOf(flat);
      const entry = this.decode(runId, id, fields);
      if (entry === undefined) continue;
      if (fields.k === 'truncated' && entry.event.type === 'step.output') {
        if (notStored === undefined) {
          const [offered, stored, dropped] = await this.redis.hmget(
            this.metaKey(runId),
            'output',
            'outputStored',
            'droppedBytes',
          );
          // Timelines written before droppedBytes existed say lines only.
          droppedBytes = dropped === null ? undefined : Number(dropped);
          // Timelines written before outputStored existed were truncated by line count only.
          const kept = stored === null ? this.maxOutput : Number(stored);
          notStored = Math.max(Number(offered ?? 0) - kept, 1);
        }
        out.push({ ...entry, event: { ...entry.event, line: truncationLine(notStored, droppedBytes) } });
      } else {
        out.push(entry);
      }
    }
    return out;
  }

  private decode(runId: string, id: string, fields: Record<string, string>): TimelineEntry | undefined {
    const key = this.streamKey(runId);
    const report = (issues: string[]) => {
      this.onInvalid({ key, id, issues });
      return undefined;
    };
    const ms = Number(id.split('-')[0]);
    if (!Number.isSafeInteger(ms)) return report([`entry ${id}: the stream id carries no time`]);
    if (fields.e === undefined) return report([`entry ${id}: no "e" field (the event JSON)`]);
    let json: unknown;
    try {
      json = JSON.parse(fields.e);
    } catch {
      return report([`entry ${id}: the "e" field is not JSON`]);
    }
    const parsed = runEventSchema.safeParse(json);
    if (!parsed.success) return report(describeZodIssues(parsed.error, `entry ${id} `));
    return { id, at: new Date(ms).toISOString(), event: parsed.data };
  }
}

function fieldsOf(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

/** Every string at any depth, keys excepted: they are our own field names. */
function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redactText(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T;
  }
  return value;
}
