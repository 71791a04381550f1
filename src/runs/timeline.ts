/**
 * The run timeline: every RunEvent of one run, in order, in one Redis stream that the fronts read and follow.
 *
 * Keys (`p` = prefix):
 * - `p:run:<runId>:timeline`       stream; each entry has `v` (format version), `e` (the event as JSON) and,
 *                                  on the truncation marker only, `k=truncated`
 * - `p:run:<runId>:timeline:meta`  hash; `output` counts every step.output line offered (stored or not),
 *                                  `dedupe:<key>` holds the stream id an event was stored under ('' when the
 *                                  line was dropped by truncation)
 *
 * An entry's time is the server time in its stream id, so every writer (agent, fronts) shares one clock.
 *
 * Malformed entries (written by something else, or by an older format) are skipped by read() and follow(),
 * and reported through `onInvalid`; they are never turned into made-up events, because a postmortem must
 * not show an event that did not happen.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ApprovalDecision, ApprovalRequest, RunEvent, StepRef } from '../engine/events.js';
import { redactText } from '../redact.js';
import { describeZodIssues } from '../validation.js';
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
  /** Called for each stream entry that fails validation; the entry is skipped. */
  readonly onInvalid?: (problem: InvalidStoredData & { readonly id: string }) => void;
  /** How long one XREAD BLOCK waits before follow() checks again; default 10 s. */
  readonly followBlockMs?: number;
}

export const DEFAULT_MAX_OUTPUT_LINES_PER_RUN = 5000;

// ---------------------------------------------------------------------------------------------------------
// Schemas: data read back from Redis is untrusted (another process, another version, a hand edit).

const int = z.number().int();

export const stepRefSchema = z.object({
  stepId: z.string(),
  index: int,
  total: int,
  iteration: z.object({ n: int, of: int, label: z.string() }).exactOptional(),
}) satisfies z.ZodType<StepRef>;

export const approvalRequestSchema = z.object({
  runId: z.string(),
  runbook: z.string(),
  step: stepRefSchema,
  title: z.string(),
  summary: z.string(),
  commands: z.array(z.string()),
  targets: z.array(z.string()),
  evidence: z.array(z.string()),
  requestedBy: z.string(),
  digest: z.string(),
}) satisfies z.ZodType<ApprovalRequest>;

export const approvalDecisionSchema = z.discriminatedUnion('approved', [
  z.object({ approved: z.literal(true), by: z.string(), at: z.string() }),
  z.object({
    approved: z.literal(false),
    by: z.string(),
    at: z.string(),
    reason: z.enum(['denied', 'expired']),
    note: z.string().exactOptional(),
  }),
]) satisfies z.ZodType<ApprovalDecision>;

const stepStatus = z.enum(['ok', 'failed', 'skipped', 'denied', 'cancelled', 'interrupted']);
const ref = stepRefSchema.shape;

export const runEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('run.started'),
    runId: z.string(),
    runbook: z.string(),
    summary: z.string(),
    site: z.string(),
    params: z.record(z.string(), z.string()),
    requestedBy: z.string(),
    steps: z.array(z.object({ id: z.string(), title: z.string(), destructive: z.boolean() })),
  }),
  z.object({ type: z.literal('run.resumed'), reason: z.string(), atStep: z.string() }),
  z.object({
    type: z.literal('approval.refused'),
    approvalId: z.string(),
    by: z.string(),
    reason: z.string(),
  }),
  z.object({ type: z.literal('preflight'), home: z.string(), tools: z.array(z.string()) }),
  z.object({
    ...ref,
    type: z.literal('step.started'),
    kind: z.enum(['run', 'poll', 'for_each', 'report']),
    title: z.string(),
    destructive: z.boolean(),
  }),
  z.object({
    ...ref,
    type: z.literal('step.output'),
    stream: z.enum(['stdout', 'stderr']),
    line: z.string(),
  }),
  z.object({ ...ref, type: z.literal('poll.attempt'), attempt: int, of: int, summary: z.string() }),
  z.object({ ...ref, type: z.literal('decision'), message: z.string() }),
  z.object({ ...ref, type: z.literal('guard.skipped'), message: z.string() }),
  z.object({
    ...ref,
    type: z.literal('approval.requested'),
    approvalId: z.string(),
    request: approvalRequestSchema,
  }),
  z.object({
    ...ref,
    type: z.literal('approval.decided'),
    approvalId: z.string(),
    decision: approvalDecisionSchema,
  }),
  z.object({
    ...ref,
    type: z.literal('approval.superseded'),
    approvalId: z.string(),
    supersededBy: z.string(),
    why: z.enum(['changed', 'stale']),
  }),
  z.object({
    ...ref,
    type: z.literal('attempt.started'),
    attemptId: z.string(),
    approvalId: z.string(),
    command: z.string(),
    at: z.string(),
  }),
  z.object({
    ...ref,
    type: z.literal('attempt.verified'),
    attemptId: z.string(),
    tookEffect: z.boolean(),
    message: z.string(),
  }),
  z.object({
    ...ref,
    type: z.literal('step.finished'),
    status: stepStatus,
    exitCode: int.nullable(),
    signal: z.string().nullable(),
    durationMs: z.number(),
    message: z.string().exactOptional(),
  }),
  z.object({
    type: z.literal('run.finished'),
    status: z.enum(['succeeded', 'failed', 'denied', 'cancelled']),
    message: z.string(),
    durationMs: z.number(),
    failedStep: z.string().exactOptional(),
  }),
]) satisfies z.ZodType<RunEvent>;

// ---------------------------------------------------------------------------------------------------------

/** Stored in place of the line; read() swaps in the final count, which is unknown when the marker is written. */
const TRUNCATION_PLACEHOLDER = '[... output truncated ...]';

export function truncationLine(notStored: number): string {
  return `[... output truncated: ${notStored} more lines not stored ...]`;
}

/**
 * KEYS: stream, meta. ARGV: event JSON, has dedupe key ('1'/'0'), dedupe key, is output ('1'/'0'),
 * max output lines, truncation marker JSON. Returns the new stream id, or nil when nothing new was stored
 * (a duplicate, or an output line past the limit).
 *
 * Dedupe is checked before the output counter so that a resumed run re-emitting its output neither
 * duplicates lines nor uses up the output budget twice.
 */
const APPEND = `
local field = 'dedupe:' .. ARGV[3]
if ARGV[2] == '1' and redis.call('HEXISTS', KEYS[2], field) == 1 then return false end
local id
if ARGV[4] == '1' then
  local n = redis.call('HINCRBY', KEYS[2], 'output', 1)
  local max = tonumber(ARGV[5])
  if n == max + 1 then
    id = redis.call('XADD', KEYS[1], '*', 'v', '1', 'e', ARGV[6], 'k', 'truncated')
  elseif n > max + 1 then
    id = ''
  end
end
if not id then id = redis.call('XADD', KEYS[1], '*', 'v', '1', 'e', ARGV[1]) end
if ARGV[2] == '1' then redis.call('HSET', KEYS[2], field, id) end
if id == '' then return false end
return id
`;

type StreamEntry = [id: string, fields: string[]];

export class RunTimeline {
  private readonly maxOutput: number;
  private readonly onInvalid: (problem: InvalidStoredData & { readonly id: string }) => void;
  private readonly followBlockMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    opts: RunTimelineOptions = {},
  ) {
    this.maxOutput = opts.maxOutputLinesPerRun ?? DEFAULT_MAX_OUTPUT_LINES_PER_RUN;
    if (!Number.isSafeInteger(this.maxOutput) || this.maxOutput < 0) {
      throw new RangeError('maxOutputLinesPerRun must be a whole number >= 0');
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

  /**
   * Stores one event (every string redacted again) and returns its stream id. With a dedupeKey the event
   * is stored at most once per run and key; null means nothing new was stored: a duplicate, or an output
   * line past maxOutputLinesPerRun (counted, not stored). With a fence, only the run's newest owner can
   * append (RunFencedError otherwise).
   */
  async append(runId: string, event: RunEvent, dedupeKey?: string, fence?: Fence): Promise<string | null> {
    assertRunId(runId);
    const safe = redactDeep(event);
    const isOutput = safe.type === 'step.output';
    const marker = isOutput ? JSON.stringify({ ...safe, line: TRUNCATION_PLACEHOLDER }) : '';
    const id = await evalFenced(
      this.redis,
      APPEND,
      [this.streamKey(runId), this.metaKey(runId)],
      [
        JSON.stringify(safe),
        dedupeKey === undefined ? '0' : '1',
        dedupeKey ?? '',
        isOutput ? '1' : '0',
        String(this.maxOutput),
        marker,
      ],
      fence,
    );
    return typeof id === 'string' ? id : null;
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
    const conn = this.redis.duplicate({
      enableOfflineQueue: true,
      connectionName: `${this.prefix}:follow:${runId}`,
    });
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
    const out: TimelineEntry[] = [];
    for (const [id, flat] of entries) {
      const fields = fieldsOf(flat);
      const entry = this.decode(runId, id, fields);
      if (entry === undefined) continue;
      if (fields.k === 'truncated' && entry.event.type === 'step.output') {
        if (notStored === undefined) {
          const offered = Number((await this.redis.hget(this.metaKey(runId), 'output')) ?? 0);
          notStored = Math.max(offered - this.maxOutput, 1);
        }
        out.push({ ...entry, event: { ...entry.event, line: truncationLine(notStored) } });
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

// ---------------------------------------------------------------------------------------------------------
// Postmortem rendering

const STEP_MARK: Readonly<Record<string, string>> = {
  ok: 'ok',
  failed: 'FAILED',
  skipped: 'skipped',
  denied: 'DENIED',
  cancelled: 'CANCELLED',
};

/** `HH:MM:SS` in UTC: the document says so in its header, and a postmortem mixes people in several zones. */
function clock(iso: string): string {
  return iso.slice(11, 19);
}

function utc(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h ${m}m ${s}s` : `${m}m ${s}s`;
}

function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');
}

function inline(text: string): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

/** A fence longer than any backtick run inside, so output that prints ``` cannot close the block early. */
function fenced(lines: readonly string[], info = ''): string[] {
  const longest = Math.max(2, ...lines.flatMap((l) => [...l.matchAll(/`+/g)].map((m) => m[0].length)));
  const fence = '`'.repeat(longest + 1);
  return [`${fence}${info}`, ...lines, fence];
}

function stepLabel(ref: StepRef): string {
  const it = ref.iteration ? ` (${ref.iteration.n}/${ref.iteration.of} ${ref.iteration.label})` : '';
  return `${ref.stepId}${it}`;
}

function refKey(ref: StepRef): string {
  return `${ref.stepId}#${ref.iteration?.n ?? 0}`;
}

/** The postmortem view of one run: summary, step table, then every event in order. Times are UTC. */
export function renderMarkdown(entries: readonly TimelineEntry[]): string {
  const started = entries.find((e) => e.event.type === 'run.started');
  const finished = entries.find((e) => e.event.type === 'run.finished');
  const start = started?.event.type === 'run.started' ? started.event : undefined;
  const end = finished?.event.type === 'run.finished' ? finished.event : undefined;

  const out: string[] = [];
  const runbook = start?.runbook ?? 'unknown runbook';
  const site = start?.site ?? 'unknown site';
  out.push(`# Run ${start?.runId ?? '(unknown id)'}: ${runbook} on ${site}`, '');
  if (start?.summary) out.push(`> ${start.summary}`, '');

  const firstAt = started?.at ?? entries[0]?.at;
  const durationMs =
    end?.durationMs ??
    (firstAt && entries.length > 0
      ? Date.parse((entries[entries.length - 1] as TimelineEntry).at) - Date.parse(firstAt)
      : undefined);
  const params = start ? Object.entries(start.params) : [];
  out.push(
    '| | |',
    '|---|---|',
    `| Runbook | ${cell(runbook)} |`,
    `| Site | ${cell(site)} |`,
    `| Run id | ${cell(start?.runId ?? 'unknown')} |`,
    `| Requested by | ${cell(start?.requestedBy ?? 'unknown')} |`,
    `| Parameters | ${params.length === 0 ? 'none' : cell(params.map(([k, v]) => `${k}=${v}`).join(', '))} |`,
    `| Started | ${firstAt ? utc(firstAt) : 'unknown'} |`,
    `| Finished | ${finished ? utc(finished.at) : 'not finished'} |`,
    `| Duration | ${durationMs === undefined ? 'unknown' : formatDuration(durationMs)} |`,
    `| Status | ${end ? `**${end.status.toUpperCase()}**` : '**RUNNING** (no run.finished event yet)'} |`,
  );
  if (end) out.push(`| Outcome | ${cell(end.message)} |`);
  if (end?.failedStep) out.push(`| Failed step | ${cell(end.failedStep)} |`);
  out.push('');

  out.push(...stepTable(entries, start), '');
  out.push('## Timeline', '', 'Times are UTC.', '');
  out.push(...timeline(entries));
  return `${out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

function stepTable(
  entries: readonly TimelineEntry[],
  start: Extract<RunEvent, { type: 'run.started' }> | undefined,
): string[] {
  const rows: string[] = [];
  const seenTop = new Set<string>();
  const open = new Map<string, { ref: StepRef; title: string }>();
  for (const { event: e } of entries) {
    if (e.type === 'step.started') {
      open.set(refKey(e), { ref: e, title: e.title });
      if (!e.iteration) seenTop.add(e.stepId);
    } else if (e.type === 'step.finished') {
      const title = open.get(refKey(e))?.title ?? '';
      open.delete(refKey(e));
      rows.push(
        `| ${e.index}/${e.total} | ${cell(stepLabel(e))} | ${cell(title)} | ${STEP_MARK[e.status] ?? e.status} | ` +
          `${e.exitCode ?? '-'} | ${formatDuration(e.durationMs)} |`,
      );
    }
  }
  // A step that started but never reported back: the run was cut off (agent killed, cancelled).
  for (const { ref, title } of open.values()) {
    rows.push(
      `| ${ref.index}/${ref.total} | ${cell(stepLabel(ref))} | ${cell(title)} | unfinished | - | - |`,
    );
  }
  for (const [i, s] of (start?.steps ?? []).entries()) {
    if (!seenTop.has(s.id)) {
      rows.push(`| ${i + 1}/${start?.steps.length} | ${cell(s.id)} | ${cell(s.title)} | not run | - | - |`);
    }
  }
  return [
    '## Steps',
    '',
    '| # | Step | Title | Status | Exit code | Duration |',
    '|---|---|---|---|---|---|',
    ...rows,
  ];
}

function timeline(entries: readonly TimelineEntry[]): string[] {
  const out: string[] = [];
  let block: { key: string; stream: string; lines: string[] } | undefined;
  const flush = () => {
    if (!block) return;
    out.push('', ...fenced(block.lines), '');
    block = undefined;
  };

  for (const { at, event: e } of entries) {
    if (e.type === 'step.output') {
      const key = refKey(e);
      if (block && (block.key !== key || block.stream !== e.stream)) flush();
      if (!block) {
        out.push(`- \`${clock(at)}\` ${e.stream}:`);
        block = { key, stream: e.stream, lines: [] };
      }
      block.lines.push(e.line);
      continue;
    }
    flush();
    const t = `\`${clock(at)}\``;
    switch (e.type) {
      case 'run.started':
        out.push(`- ${t} run started by ${e.requestedBy}: ${e.runbook} on ${e.site}`);
        break;
      case 'run.resumed':
        out.push(`- ${t} run resumed at ${e.atStep}: ${e.reason}`);
        break;
      case 'approval.refused':
        out.push(`- ${t} a decision by ${e.by} was refused: ${e.reason}`);
        break;
      case 'preflight':
        out.push(`- ${t} jumphost ready (HOME=${e.home}; ${e.tools.join(', ') || 'no CLIs'} found)`);
        break;
      case 'step.started':
        out.push(
          '',
          `${e.iteration ? '####' : '###'} ${e.index}/${e.total} ${stepLabel(e)}: ${e.title}` +
            `${e.destructive ? ' (destructive)' : ''}`,
          '',
          `- ${t} step started`,
        );
        break;
      case 'poll.attempt':
        out.push(`- ${t} attempt ${e.attempt}/${e.of}: ${e.summary}`);
        break;
      case 'decision':
        out.push(`- ${t} decision: ${e.message}`);
        break;
      case 'guard.skipped':
        out.push(`- ${t} guard skipped the step: ${e.message}`);
        break;
      case 'approval.requested': {
        const r = e.request;
        out.push(
          `- ${t} **approval requested** from the approvers (run requested by ${r.requestedBy}): ${r.summary}`,
        );
        if (r.targets.length > 0) out.push(`  - targets: ${r.targets.map(inline).join(', ')}`);
        for (const ev of r.evidence) out.push(`  - evidence: ${ev}`);
        out.push(
          '  - will run:',
          '',
          ...fenced(
            r.commands.flatMap((c) => c.split('\n')),
            'sh',
          ).map((l) => `    ${l}`),
          '',
        );
        break;
      }
      case 'approval.decided':
        out.push(`- ${t} ${describeDecision(e.decision)}`);
        break;
      case 'approval.superseded':
        out.push(
          `- ${t} approval ${e.approvalId} superseded by ${e.supersededBy}: ${
            e.why === 'stale' ? 'approved too long ago to still hold' : 'the action it approved changed'
          }; nothing was run on it`,
        );
        break;
      case 'attempt.started':
        out.push(`- ${t} **sent** the approved command (attempt ${e.attemptId}, approval ${e.approvalId})`);
        break;
      case 'attempt.verified':
        out.push(
          `- ${t} ${e.tookEffect ? 'verified after a take-over' : '**OUTCOME UNKNOWN**'}: ${e.message}`,
        );
        break;
      case 'step.finished': {
        const code = e.exitCode === null ? '' : `, exit code ${e.exitCode}`;
        const sig = e.signal === null ? '' : `, signal ${e.signal}`;
        out.push(
          `- ${t} ${stepLabel(e)} ${STEP_MARK[e.status] ?? e.status} after ${formatDuration(e.durationMs)}${code}${sig}` +
            `${e.message ? `: ${e.message}` : ''}`,
        );
        break;
      }
      case 'run.finished':
        out.push('', `- ${t} **run ${e.status}** after ${formatDuration(e.durationMs)}: ${e.message}`);
        break;
    }
  }
  flush();
  return out;
}

function describeDecision(d: ApprovalDecision): string {
  if (d.approved) return `**approved** by ${d.by} at ${clock(d.at)}`;
  if (d.reason === 'expired')
    return `**approval expired** at ${clock(d.at)} (no decision in time; counts as a denial)`;
  return `**denied** by ${d.by} at ${clock(d.at)}${d.note ? `: ${d.note}` : ''}`;
}
