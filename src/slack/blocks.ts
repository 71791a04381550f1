/**
 * Block Kit messages for a run: the root message (a live checklist, edited in place), a thread post when
 * something was found or changed (threadPost), and the approval request with its buttons, which tells its
 * decision's story. Pure functions of state: they make no Slack calls, so a restarted front rebuilds the
 * same messages from the timeline.
 *
 * Every string that came from a command, a runbook or a person is redacted (again: redaction is idempotent,
 * and a builder must not trust that its caller did it), Slack-escaped so it cannot mention @channel, link or
 * forge a `<!date>`, and clipped so that every message stays within the Block Kit limits for any input.
 */

import type { StepRef, StepStatus } from '../engine/events.js';
import { formatDuration, formatRunDuration, STEP_LABEL } from '../fronts/format.js';
import { createLineRedactor, redactText } from '../redact.js';
import type { StoredApproval, TimelineEntry } from '../service/run-service.js';
import { type ApprovalStory, storyOwner } from './approval-story.js';
import { clipEscaped, escapedTotal, oneLine, slackName, slackText } from './escape.js';

export { escapeSlack } from './escape.js';

import { BLOCK_KIT_LIMITS, textLength } from './limits.js';
import type { RunView, RunViewStatus, StepView, StepViewStatus } from './run-view.js';

export interface SlackMessage {
  /** The notification and fallback text. */
  text: string;
  blocks: unknown[];
}

export const APPROVE_ACTION_ID = 'capi_approve';
export const DENY_ACTION_ID = 'capi_deny';
/** Opens the reason dialog for an approval with a reason; plain Approve stays one click (after its confirm). */
export const APPROVE_WITH_REASON_ACTION_ID = 'capi_approve_reason';

/**
 * What a step.finished post shows besides the event itself; stepContext() gathers it from the timeline. The
 * step's one post carries what the step found; its raw output goes to the log file (log-file.ts).
 */
export interface ThreadContext {
  /** The step's title as its step.started said (step.finished carries none). */
  readonly title?: string;
  /** The step's output lines, oldest first. */
  readonly output?: readonly string[];
  /** What the runbook said about the step, in order: its decisions, a guard's reason to skip, findings. */
  readonly findings?: readonly string[];
  /** A poll step's last attempt. */
  readonly poll?: { readonly attempt: number; readonly of: number; readonly summary: string };
  /** A for_each step: how many items it went through. */
  readonly items?: number;
  /** Its output is data (`parse: json|yaml|lines`): never shown raw in a post. */
  readonly parsed?: boolean;
}

/**
 * Where a finished step's raw output goes. A step that says what it found (a summary, a decision, a poll's
 * progress, why it failed) shows that, and its output only in the log file; a step that says nothing else
 * shows a short output as its finding (`kubeconfig present: ...`). Parsed output (`kubectl -o json`) is never
 * shown raw in a post: a JSON tail tells nobody anything in an incident.
 */
export type OutputPlace = 'none' | 'inline' | 'file';

/** A finding-less step's output shown in its post up to this size... */
const INLINE_OUTPUT_LINES = 10;
const INLINE_OUTPUT_CHARS = 1500;
/** ... and a step with findings gets a log file for longer output than this (its findings say the rest). */
const FACTS_COVER_LINES = 20;
const FACTS_COVER_CHARS = 2000;

export function outputPlace(ctx: ThreadContext, summary?: string): OutputPlace {
  const output = ctx.output ?? [];
  if (output.length === 0) return 'none';
  const chars = output.reduce((n, l) => n + l.length + 1, 0);
  const says =
    summary !== undefined ||
    (ctx.findings?.length ?? 0) > 0 ||
    ctx.poll !== undefined ||
    ctx.items !== undefined;
  if (!says) {
    if (ctx.parsed === true) return 'file';
    return output.length <= INLINE_OUTPUT_LINES && chars <= INLINE_OUTPUT_CHARS ? 'inline' : 'file';
  }
  return output.length > FACTS_COVER_LINES || chars > FACTS_COVER_CHARS ? 'file' : 'none';
}

// Budgets, in characters of final (escaped) text. Slack's own limits are in BLOCK_KIT_LIMITS; these keep
// every message below them with room to spare, and keep posts readable on a phone.
const SECTION_MAX = BLOCK_KIT_LIMITS.sectionText - 50;
/** The sum of every text in a message's blocks (Slack refuses past 12000). */
const MESSAGE_TEXT_BUDGET = 11_000;
const FALLBACK_MAX = 300;
const OUTPUT_LINE_MAX = 300;
/** What a step's post may say it found, in characters. */
const FACTS_BUDGET = 6000;
/** A catch-up post (see catchUpMessage) lists this much at most; the thread's log file and /capi timeline hold the rest. */
const CATCH_UP_BUDGET = 9000;
const COMMANDS_BUDGET = 5000;
const LIST_ITEMS = 20;
const LIST_BUDGET = 1500;
const PARAMS_MAX = 600;
const ELLIPSIS = '…';

// ---------------------------------------------------------------------------------------------------------
// Text helpers

/** Redacted, on one line, escaped and clipped: the form every runbook or command string takes inline. */
const inline = slackText;

/** A run of backticks would close the code block early: a zero-width space between them keeps them apart. */
function neutraliseFences(text: string): string {
  return text.replace(/`(?=`)/g, '`\u200b');
}

/**
 * Slack user ids become mentions and user-group ids group mentions; anything else (a terminal operator,
 * `expiry`) is shown as text.
 */
export function mention(who: string, max = 80): string {
  if (/^[UW][A-Z0-9]{2,20}$/.test(who)) return `<@${who}>`;
  return /^S[A-Z0-9]{2,20}$/.test(who) ? `<!subteam^${who}>` : inline(who, max);
}

/** `<!date^…>` renders in the reader's time zone; the fallback after `|` is what clients without it show. */
function slackDate(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return inline(iso, 40);
  return `<!date^${Math.floor(ms / 1000)}^{date_short_pretty} {time}|${utcText(ms)}>`;
}

function utcText(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

function mrkdwn(text: string): { type: 'mrkdwn'; text: string } {
  return { type: 'mrkdwn', text: text === '' ? ' ' : text };
}

function plain(text: string): { type: 'plain_text'; text: string; emoji: true } {
  return { type: 'plain_text', text: text === '' ? ' ' : text, emoji: true };
}

function section(text: string): Record<string, unknown> {
  return { type: 'section', text: mrkdwn(text) };
}

function context(text: string): Record<string, unknown> {
  return { type: 'context', elements: [mrkdwn(text)] };
}

function header(raw: string): Record<string, unknown> {
  return { type: 'header', text: plain(clipEscaped(oneLine(redactText(raw)), BLOCK_KIT_LIMITS.headerText)) };
}

/** Greedily packs lines into sections of at most SECTION_MAX characters; every line must fit one section. */
function packSections(lines: readonly string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let current = '';
  for (const line of lines) {
    if (current !== '' && current.length + 1 + line.length > SECTION_MAX) {
      out.push(section(current));
      current = '';
    }
    current = current === '' ? line : `${current}\n${line}`;
  }
  if (current !== '') out.push(section(current));
  return out;
}

/**
 * Lines of output or of a command as they may sit inside a code block: redacted as one stream (a private key
 * spans lines), fences neutralised, escaped, each clipped to `lineMax`. `clipped` counts the characters the
 * clipping hid.
 */
function codeLines(raw: readonly string[], lineMax: number): { lines: string[]; clipped: number } {
  const redact = createLineRedactor();
  let clipped = 0;
  const lines = raw.map((r) => {
    const full = redact(r);
    const line = clipEscaped(full, lineMax);
    const total = escapedTotal(full, Number.POSITIVE_INFINITY);
    if (total > lineMax) clipped += total - (line.length - ELLIPSIS.length);
    // After escaping, which shows any zero-width character the output itself holds: these are ours.
    return neutraliseFences(line);
  });
  return { lines, clipped };
}

/** Bytes the line splitter cut from these lines (each cut line ends with its lineCutNote). */
function cutBytes(lines: readonly string[]): number {
  let total = 0;
  for (const line of lines) {
    const m = LINE_CUT.exec(line);
    if (m) total += Number(m[1]);
  }
  return total;
}
const LINE_CUT = /\[\.\.\. line cut: (\d+) bytes not kept \(RUN_MAX_LINE_BYTES\) \.\.\.\]$/;

function fenced(lines: readonly string[]): string {
  return `\`\`\`\n${lines.join('\n')}\n\`\`\``;
}

/** Room for the lines of one code block inside a section, with its fences and a label line. */
const CODE_ROOM = SECTION_MAX - 150;

const STEP_EMOJI: Readonly<Record<StepViewStatus, string>> = {
  pending: ':white_circle:',
  running: ':arrows_counterclockwise:',
  waiting_approval: ':raised_hand:',
  ok: ':white_check_mark:',
  failed: ':x:',
  skipped: ':fast_forward:',
  denied: ':no_entry:',
  cancelled: ':no_entry_sign:',
  interrupted: ':double_vertical_bar:',
  unobservable: ':grey_question:',
};

const RUN_EMOJI: Readonly<Record<RunViewStatus, string>> = {
  running: ':arrows_counterclockwise:',
  waiting_approval: ':raised_hand:',
  succeeded: ':white_check_mark:',
  failed: ':x:',
  denied: ':no_entry:',
  cancelled: ':no_entry_sign:',
};

const RUN_WORD: Readonly<Record<RunViewStatus, string>> = {
  running: 'running',
  waiting_approval: 'waiting for approval',
  succeeded: 'succeeded',
  failed: 'FAILED',
  denied: 'DENIED',
  cancelled: 'CANCELLED',
};

const DESTRUCTIVE_MARK = ':warning:';

function elapsedSince(iso: string | undefined, now: Date): number | undefined {
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : Math.max(0, now.getTime() - ms);
}

// ---------------------------------------------------------------------------------------------------------
// Root message

/** The run's root message: what runs where for whom, then a checklist of every step. */
/** `requestedVia`: how the run was asked for outside Slack (the run record's, e.g. `terminal as alice`). */
export function rootMessage(view: RunView, now: Date, requestedVia?: string): SlackMessage {
  const runId = inline(view.runId, 120);
  const active = view.status === 'running' || view.status === 'waiting_approval';
  const total =
    view.durationMs ??
    (active ? elapsedSince(view.startedAt, now) : undefined) ??
    (view.finishedAt !== undefined && view.startedAt !== undefined
      ? Date.parse(view.finishedAt) - Date.parse(view.startedAt)
      : undefined);

  const params = Object.entries(view.params);
  const paramText =
    params.length === 0
      ? 'none'
      : // Redacted as `key=value` pairs, so a parameter named like a secret hides its value; values are
        // names from a person or the cloud, shown as code so they cannot format, link or mention.
        paramList(params);
  const status =
    `${RUN_EMOJI[view.status]} *${RUN_WORD[view.status]}*` +
    (total !== undefined
      ? ` ${active ? 'for' : 'after'} ${active ? formatDuration(total) : formatRunDuration(total, view.waitingMs)}`
      : '') +
    (view.pendingApprovals > 0 && active ? ` · ${view.pendingApprovals} approval(s) pending` : '');
  const info = [
    `run id: ${runId}`,
    `*Requested by* ${mention(view.requestedBy)}${requestedVia ? ` via ${inline(requestedVia, 60)}` : ''}`,
    `*Parameters* ${paramText}`,
    `*Status* ${status}`,
  ];
  if (view.message !== undefined) info.push(`> ${inline(view.message, 600)}`);
  if (view.failedStep !== undefined) info.push(`*Failed step* ${inline(view.failedStep, 100)}`);
  if (view.summary !== '') info.push(`_${inline(view.summary, 300)}_`);

  const head = [header(`${view.runbook} on ${view.site}`), section(info.join('\n'))];
  const foot = context(
    active
      ? `To stop it: /capi cancel ${runId}`
      : `Finished ${slackDate(view.finishedAt ?? now.toISOString())}`,
  );
  const fixed = head.reduce((n, b) => n + textLength(b), 0) + textLength(foot);
  const checklist = checklistLines(view, now, MESSAGE_TEXT_BUDGET - fixed);

  const counts = countBy(view.steps.map((s) => s.status));
  const done = (counts.ok ?? 0) + (counts.skipped ?? 0) + (counts.unobservable ?? 0);
  return {
    text: fallbackText(
      `${view.runbook} on ${view.site}: ${RUN_WORD[view.status]} (${done}/${view.steps.length} steps done, run ${view.runId})`,
    ),
    blocks: [...head, { type: 'divider' }, ...packSections(checklist), foot],
  };
}

/** `key=`value`` pairs within PARAMS_MAX characters; the rest are counted. */
function paramList(params: readonly (readonly [string, string])[]): string {
  const shown: string[] = [];
  let used = 0;
  for (const [k, v] of params) {
    const pair = oneLine(redactText(`${k}=${v}`));
    const text = `${clipEscaped(k, 60)}=${slackName(pair.slice(pair.indexOf('=') + 1), 120)}`;
    if (used + text.length + 2 > PARAMS_MAX) break;
    shown.push(text);
    used += text.length + 2;
  }
  const more = params.length - shown.length;
  return shown.join(', ') + (more > 0 ? `${shown.length > 0 ? ', ' : ''}${ELLIPSIS} and ${more} more` : '');
}

function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** Clip sizes per level of detail: long runbooks get shorter lines before any line is left out. */
const DETAIL_LEVELS = [
  { title: 100, detail: 120 },
  { title: 60, detail: 60 },
  { title: 36, detail: 30 },
  { title: 20, detail: 0 },
] as const;

function checklistLines(view: RunView, now: Date, budget: number): string[] {
  const m = view.steps.length;
  if (m === 0) return ['_This runbook has no steps._'];
  const size = (lines: readonly string[]) => lines.reduce((n, l) => n + l.length + 1, 0);
  let lines: string[] = [];
  for (const level of DETAIL_LEVELS) {
    lines = view.steps.map((s, i) => stepLine(s, i + 1, m, now, level));
    if (size(lines) <= budget) return lines;
  }
  // Still too long (hundreds of steps): show a window around where the run is, and count the rest.
  const focus = focusIndex(view);
  const summaryRoom = 2 * 160;
  let lo = focus;
  let hi = focus;
  let used = (lines[focus]?.length ?? 0) + 1;
  for (let grew = true; grew; ) {
    grew = false;
    for (const next of [hi + 1, lo - 1]) {
      const line = lines[next];
      if (line === undefined || used + line.length + 1 + summaryRoom > budget) continue;
      used += line.length + 1;
      if (next > hi) hi = next;
      else lo = next;
      grew = true;
    }
  }
  const hidden = (from: number, to: number) => {
    const counts = countBy(view.steps.slice(from, to + 1).map((s) => s.status));
    const parts = Object.entries(counts).map(([status, n]) => `${n} ${status.replace('_', ' ')}`);
    return `${ELLIPSIS} steps ${from + 1}-${to + 1} not shown: ${parts.join(', ')}`;
  };
  return [
    ...(lo > 0 ? [hidden(0, lo - 1)] : []),
    ...lines.slice(lo, hi + 1),
    ...(hi < m - 1 ? [hidden(hi + 1, m - 1)] : []),
  ];
}

function focusIndex(view: RunView): number {
  const current = view.steps.findIndex((s) => s.id === view.currentStep);
  if (current !== -1) return current;
  const active = view.steps.findIndex((s) => s.status === 'running' || s.status === 'waiting_approval');
  if (active !== -1) return active;
  for (let i = view.steps.length - 1; i >= 0; i--) if (view.steps[i]?.status !== 'pending') return i;
  return 0;
}

function stepLine(
  s: StepView,
  n: number,
  m: number,
  now: Date,
  level: (typeof DETAIL_LEVELS)[number],
): string {
  const title = inline(s.title, level.title) || inline(s.id, level.title);
  const parts = [
    `${STEP_EMOJI[s.status]} ${title}${s.destructive ? ` ${DESTRUCTIVE_MARK}` : ''}`,
    `step ${n} of ${m}`,
  ];
  const open = s.status === 'running' || s.status === 'waiting_approval';
  const time = s.durationMs ?? (open ? elapsedSince(s.startedAt, now) : undefined);
  if (time !== undefined) parts.push(formatDuration(time));
  if (open && s.iteration) {
    const label = level.detail > 0 ? `: ${itemName(s.iteration, Math.min(level.detail, 60))}` : '';
    parts.push(`item ${s.iteration.n} of ${s.iteration.of}${label}`);
  }
  if (open && s.poll) {
    const summary = level.detail > 0 ? `: ${inline(s.poll.summary, level.detail)}` : '';
    parts.push(`attempt ${s.poll.attempt} of ${s.poll.of}${summary}`);
  }
  if (open && s.activity !== undefined && level.detail > 0) parts.push(inline(s.activity, level.detail));
  if (s.status === 'waiting_approval') parts.push('*waiting for approval*');
  if (!open && s.status !== 'ok' && s.status !== 'pending') {
    parts.push(`_${s.status}_`);
    if (s.message !== undefined && level.detail > 0) parts.push(inline(s.message, level.detail));
  }
  // A step that only confirmed what was expected has no post of its own: what it read is said here.
  const found = s.summary ?? s.message;
  if (s.status === 'ok' && found !== undefined && level.detail > 0) parts.push(inline(found, level.detail));
  return parts.join(' · ');
}

// ---------------------------------------------------------------------------------------------------------
// Thread posts

/**
 * The title, output and findings of the step `ref` names, as the timeline holds them since its latest
 * step.started (a step run again, after a resume, starts over).
 */
export function stepContext(entries: readonly TimelineEntry[], ref: StepRef): ThreadContext {
  let title: string | undefined;
  let output: string[] = [];
  let findings: string[] = [];
  let poll: ThreadContext['poll'];
  let items: number | undefined;
  let parsed = false;
  const same = (r: StepRef) => r.stepId === ref.stepId && r.iteration?.n === ref.iteration?.n;
  const inner = (r: StepRef) => ref.iteration === undefined && r.stepId.startsWith(`${ref.stepId}/`);
  for (const { event: e } of entries) {
    if (e.type === 'step.started' && same(e)) {
      title = e.title;
      output = [];
      findings = [];
      poll = undefined;
      items = e.kind === 'for_each' ? 0 : undefined;
      parsed = e.parsed === true;
    } else if (e.type === 'step.output' && same(e)) {
      output.push(e.line);
    } else if ((e.type === 'decision' || e.type === 'guard.skipped') && same(e)) {
      findings.push(e.message);
    } else if (e.type === 'poll.attempt' && same(e)) {
      poll = { attempt: e.attempt, of: e.of, summary: e.summary };
    } else if (e.type === 'step.started' && inner(e) && items !== undefined && e.iteration) {
      items = e.iteration.of;
    }
  }
  return {
    ...(title !== undefined ? { title } : {}),
    output,
    ...(findings.length > 0 ? { findings } : {}),
    ...(poll !== undefined ? { poll } : {}),
    ...(items !== undefined ? { items } : {}),
    ...(parsed ? { parsed } : {}),
  };
}

function where(ref: StepRef): string {
  const it = ref.iteration
    ? ` · item ${ref.iteration.n} of ${ref.iteration.of}: ${itemName(ref.iteration, 200)}`
    : '';
  return `*Step ${ref.index} of ${ref.total}*${it}`;
}

/**
 * A loop's item as a person knows it: its runbook `label:` (the server's name, the LB's name and VIP), then
 * its ids in a code span; only the ids (in a code span) when the runbook names it no other way.
 */
export function itemName(iteration: NonNullable<StepRef['iteration']>, max: number): string {
  const ids = slackName(iteration.label, Math.min(max, 80));
  return iteration.name === undefined ? ids : `${inline(iteration.name, max)} ${ids}`;
}

/** The notification text: a whole line composed from event strings, redacted and escaped like any other. */
function fallbackText(raw: string): string {
  return inline(raw, FALLBACK_MAX) || 'capi run update';
}

function post(fallback: string, blocks: Record<string, unknown>[]): SlackMessage {
  return { text: fallbackText(fallback), blocks };
}

/**
 * Events the thread shows no post of their own for (threadMessage answers undefined): the root's checklist
 * shows them, or the approval message they belong to does (a decision, a vote, a superseded request, the
 * attempt sent), or nobody needs them (a resume is the run going on as the approval message said).
 */
const QUIET_EVENTS: ReadonlySet<string> = new Set([
  'run.started',
  'run.resumed',
  'preflight',
  'step.started',
  'step.output',
  'poll.attempt',
  'decision',
  'guard.skipped',
  'approval.requested',
  'approval.decided',
  'approval.voted',
  'approval.superseded',
  'approval.refused',
  'attempt.started',
]);

/** Whether threadMessage may make a post of this event (without building it). */
export function postsInThread(type: TimelineEntry['event']['type']): boolean {
  return !QUIET_EVENTS.has(type);
}

/**
 * What the thread shows for the event at `index` of the run's timeline:
 * - `approval`: it is part of that approval's story, told by editing its message (approval-story.ts);
 *   `fallback` is the post to make instead when that message is not in the thread (Slack refused it);
 * - `post`: a post of its own. A step gets one when it found something (a decision, a guard's reason), did
 *   not pass, or changed something no approval message tells; a step that only confirmed what was expected
 *   (a wait that converged, a check that passed) is told by the root's checklist alone;
 * - undefined: nothing in the thread.
 */
export type ThreadPost =
  | { readonly kind: 'approval'; readonly approvalId: string; readonly fallback?: SlackMessage }
  | { readonly kind: 'post'; readonly message: SlackMessage; readonly context: ThreadContext };

export function threadPost(entries: readonly TimelineEntry[], index: number): ThreadPost | undefined {
  const entry = entries[index];
  if (entry === undefined) return undefined;
  const e = entry.event;
  const ctx = e.type === 'step.finished' ? stepContext(entries.slice(0, index + 1), e) : {};
  const owner = storyOwner(entries, index);
  if (owner !== undefined) {
    const fallback = threadMessage(entry, ctx);
    return { kind: 'approval', approvalId: owner, ...(fallback ? { fallback } : {}) };
  }
  if (e.type === 'step.finished' && !stepTells(entries, index, e, ctx)) return undefined;
  const message = threadMessage(entry, ctx);
  return message === undefined ? undefined : { kind: 'post', message, context: ctx };
}

type StepFinished = Extract<TimelineEntry['event'], { type: 'step.finished' }>;

/** A finished step worth a post: it found something or did not pass, and no other post said so already. */
function stepTells(
  entries: readonly TimelineEntry[],
  index: number,
  e: StepFinished,
  ctx: ThreadContext,
): boolean {
  if (e.status === 'ok') return (ctx.findings?.length ?? 0) > 0;
  if (ctx.items === undefined || e.message === undefined) return true;
  // A loop that ended on one of its items' ends: that item's post (or approval message) said it already.
  for (let i = index - 1; i >= 0; i--) {
    const x = (entries[i] as TimelineEntry).event;
    if (x.type === 'step.started' && x.stepId === e.stepId) break;
    if (x.type === 'step.finished' && x.stepId.startsWith(`${e.stepId}/`)) return x.message !== e.message;
  }
  return true;
}

/** One thread post for an event worth a notification; undefined for events the root checklist shows instead. */
export function threadMessage(entry: TimelineEntry, ctx: ThreadContext = {}): SlackMessage | undefined {
  const e = entry.event;
  switch (e.type) {
    // The root's checklist shows a step running; its one post comes when it finished, with what it found.
    case 'run.started':
    case 'run.resumed':
    case 'preflight':
    case 'step.started':
    case 'step.output':
    case 'poll.attempt':
    case 'decision':
    case 'guard.skipped':
    case 'approval.requested':
    case 'approval.decided':
    case 'approval.voted':
    case 'approval.superseded':
    case 'attempt.started':
      return undefined;
    case 'step.finished':
      return stepPost(e, ctx);
    case 'approval.rejected':
      // The decision in the store is one the agent that would run the command does not accept.
      return post(`Step ${e.index} of ${e.total}: decision refused, nothing was run`, [
        section(
          // Who the refused record names is unverified: a person's id is shown as them, anything else (a
          // group id included: it would notify the whole group) as a code span.
          `:no_entry: ${where(e)}: the agent refused the decision recorded as ${/^[UW][A-Z0-9]{2,20}$/.test(e.by) ? mention(e.by) : slackName(e.by, 80)}'s: ${inline(e.reason, 500)}. Nothing destructive was run; the run stops here.`,
        ),
      ]);
    case 'attempt.verified':
      return post(
        e.tookEffect
          ? `Step ${e.index} of ${e.total}: verified`
          : `Step ${e.index} of ${e.total}: OUTCOME UNKNOWN`,
        [
          section(
            `${e.tookEffect ? ':mag: Verified after a take-over' : ':rotating_light: *Outcome unknown*'} ${where(e)}: ${inline(e.message, 2500)}`,
          ),
        ],
      );
    case 'run.joined': {
      // The note is an alert group's labels (Alertmanager's text): a code span, so it cannot link or mention.
      const who = e.note !== undefined ? `Alert ${slackName(e.note, 300)}` : mention(e.by);
      const via = e.via !== undefined && e.note === undefined ? ` via ${inline(e.via, 60)}` : '';
      return post(`${e.note !== undefined ? 'An alert' : 'Someone'} asked for this run again and joined it`, [
        section(
          `:link: ${who}${via} asked for the same run while this one goes: joined it here instead of starting another.`,
        ),
      ]);
    }
    case 'run.finished': {
      const took = formatRunDuration(e.durationMs, e.waitingMs);
      const lines = [`${RUN_EMOJI[e.status]} *Run ${RUN_WORD[e.status]}* after ${took}`];
      lines.push(`> ${inline(e.message, 2000)}`);
      if (e.failedStep !== undefined) lines.push(`*Failed step* ${inline(e.failedStep, 100)}`);
      return post(`Run ${e.status} after ${took}: ${e.message}`, [section(lines.join('\n'))]);
    }
  }
}

/**
 * A finished step's one post: its outcome and duration, then what it found (the runbook's summary, its
 * decisions, a guard's reason, a poll's last reading, a loop's item count, why it failed), and its output
 * only when that is a short finding of its own (outputPlace); longer output is in the log file after it.
 */
function stepPost(e: Extract<TimelineEntry['event'], { type: 'step.finished' }>, ctx: ThreadContext) {
  const name = ctx.title !== undefined ? inline(ctx.title, 300) : inline(e.stepId, 200);
  const code =
    e.exitCode !== null && (e.exitCode !== 0 || e.status !== 'ok')
      ? ` · exit ${e.exitCode}`
      : e.signal !== null
        ? ` · signal ${inline(e.signal, 20)}`
        : '';
  const status = e.status === 'unobservable' ? 'not observable' : e.status;
  const lines = [
    `${STEP_EMOJI[e.status]} ${where(e)} ${status}: ${name}${code} · ${formatDuration(e.durationMs)}`,
  ];
  const facts: string[] = [];
  if (e.summary !== undefined) facts.push(e.summary);
  facts.push(...(ctx.findings ?? []));
  if (ctx.items !== undefined) facts.push(`${ctx.items} item${ctx.items === 1 ? '' : 's'}`);
  if (ctx.poll !== undefined) {
    facts.push(`attempt ${ctx.poll.attempt} of ${ctx.poll.of}: ${ctx.poll.summary}`);
  }
  let room = FACTS_BUDGET;
  let shown = 0;
  for (const fact of facts) {
    const line = `• ${inline(fact, 800)}`;
    if (line.length > room) break;
    lines.push(line);
    room -= line.length + 1;
    shown += 1;
  }
  if (shown < facts.length) lines.push(`${ELLIPSIS} and ${facts.length - shown} more in \`/capi timeline\``);
  // The message repeats a finding when a guard skipped the step or a decision failed it.
  if (e.message !== undefined && !facts.includes(e.message)) lines.push(`> ${inline(e.message, 1500)}`);
  const place = outputPlace(ctx, e.summary);
  const output = ctx.output ?? [];
  if (place === 'file') {
    lines.push(`_Output: ${output.length} line${output.length === 1 ? '' : 's'}, in the log file below_`);
  }
  const blocks = packSections(lines.map((l) => clipEscapedLine(l)));
  if (place === 'inline') {
    const { lines: code } = codeLines(output, OUTPUT_LINE_MAX);
    blocks.push(section(fenced(code)));
  }
  const cut = cutBytes(output);
  if (cut > 0) {
    blocks.push(
      context(`:scissors: ${cut} bytes of over-long output lines were not kept (RUN_MAX_LINE_BYTES)`),
    );
  }
  // The notification says the step's first finding too: what people see without opening the thread.
  const first = facts[0] ?? e.message;
  const said = first === undefined ? '' : ` · ${first}`;
  return post(`Step ${e.index} of ${e.total} ${status}: ${ctx.title ?? e.stepId}${said}`, blocks);
}

/** A line already escaped, cut to fit one section, never inside an entity (`&amp;`) or a `<...>` token. */
function clipEscapedLine(line: string): string {
  if (line.length <= SECTION_MAX) return line;
  let cut = line.slice(0, SECTION_MAX - 1);
  const open = Math.max(cut.lastIndexOf('&'), cut.lastIndexOf('<'));
  if (open > Math.max(cut.lastIndexOf(';'), cut.lastIndexOf('>'))) cut = cut.slice(0, open);
  return `${cut}${ELLIPSIS}`;
}

/**
 * What a thread that fell behind shows in one post, after an approval request that was posted ahead of it:
 * every post its events would have made (threadPost: the steps that found something or did not pass), in
 * their order, under a line that says they came before the approval; undefined when none would have (the
 * root's checklist says the rest). No log file: a catch-up is read, the timeline holds every line.
 * `entries` is the run's timeline, `from`..`to` (exclusive) the events it covers.
 */
export function catchUpMessage(
  entries: readonly TimelineEntry[],
  from: number,
  to: number,
  before: StepRef,
): SlackMessage | undefined {
  const parts: string[] = [];
  const steps = new Set<number>();
  for (let i = from; i < to; i++) {
    const e = (entries[i] as TimelineEntry).event;
    const shown = threadPost(entries, i);
    if (shown?.kind !== 'post') continue;
    const m = shown.message;
    if ('index' in e) steps.add(e.index);
    // A step's output is not repeated here (a code block cannot be split); `/capi timeline` has it.
    parts.push(
      sectionTextsOf(m)
        .filter((t) => !t.startsWith('```'))
        .flatMap((t) => t.split('\n'))
        .filter((l) => !l.startsWith('_Output: '))
        .join('\n'),
    );
  }
  if (parts.length === 0) return undefined;
  const ordered = [...steps].sort((a, b) => a - b);
  const span =
    ordered.length === 0
      ? 'what happened'
      : ordered.length === 1
        ? `step ${ordered[0]}`
        : `steps ${ordered[0]}-${ordered.at(-1)}`;
  const head = `:fast_forward: *Catching up: ${span}, before the approval above* (${where(before)}). The approval was posted first so that its time to decide starts when it is seen.`;
  const kept: string[] = [];
  let used = head.length;
  for (const part of parts) {
    if (used + part.length + 1 > CATCH_UP_BUDGET) break;
    kept.push(part);
    used += part.length + 1;
  }
  const left = parts.length - kept.length;
  const lines = [head, ...kept.flatMap((p) => p.split('\n'))];
  if (left > 0) lines.push(`${ELLIPSIS} and ${left} more: \`/capi timeline\` has every event`);
  return post(`Catching up: ${span}, before the approval`, packSections(lines.map(clipEscapedLine)));
}

function sectionTextsOf(m: SlackMessage): string[] {
  return m.blocks.flatMap((b) => {
    const block = b as { type?: string; text?: { text?: unknown } };
    return block.type === 'section' && typeof block.text?.text === 'string' ? [block.text.text] : [];
  });
}

// ---------------------------------------------------------------------------------------------------------
// Approval

/**
 * The approval request, the decision's whole story in one message edited in place: what will run, on what,
 * why, until when (buttons until decided); then who decided, when and why; then that the command was sent,
 * and its outcome (exit, duration, what it found or what reading back showed), or OUTCOME UNKNOWN with how
 * to check. A decision the agent refused is never shown as an approval.
 *
 * `runEnded`: the run stopped (cancelled, failed) while this approval was still open; the buttons
 * go, because a click could only be refused. `story`: what the timeline says happened since it was asked.
 */
export function approvalMessage(
  approval: StoredApproval,
  now: Date,
  opts: { readonly runEnded?: boolean; readonly story?: ApprovalStory } = {},
): SlackMessage {
  const r = approval.request;
  const d = approval.decision;
  const story = opts.story;
  const refused = story?.refused;
  const state =
    refused !== undefined
      ? 'Refused by the agent'
      : d === undefined
        ? approval.superseded !== undefined
          ? 'Superseded'
          : opts.runEnded === true
            ? 'Closed without a decision'
            : 'Approval needed'
        : d.approved
          ? 'Approved'
          : d.reason === 'expired'
            ? 'Expired'
            : 'Denied';
  // The header says where the decision stands: the first thing anyone reads of it, as it changes.
  const blocks: Record<string, unknown>[] = [header(`${state}: ${r.title}`)];

  const about = [
    inline(r.summary, 1200),
    `*Runbook* ${inline(r.runbook, 100)} · run id: ${inline(r.runId, 120)} · ${where(r.step)} (${inline(r.step.stepId, 140)})`,
  ];
  blocks.push(section(about.join('\n')));

  blocks.push(...commandBlocks(r.commands));
  // Targets are names and ids from the cloud: code spans, so none can pass for another or format the list.
  blocks.push(...listBlock('Targets', r.targets, slackName));
  blocks.push(...listBlock('Evidence', r.evidence));

  const expires = Date.parse(approval.expiresAt);
  const left = Number.isNaN(expires) ? undefined : expires - now.getTime();
  const expiry =
    left === undefined
      ? ''
      : left > 0
        ? ` · expires ${slackDate(approval.expiresAt)} (in ${formatDuration(left)})`
        : ` · expired ${slackDate(approval.expiresAt)}`;
  blocks.push(
    context(`Requested by ${mention(r.requestedBy)} at ${slackDate(approval.requestedAt)}${expiry}`),
  );

  const quorum = r.quorum ?? 1;
  if (quorum > 1 && d === undefined && refused === undefined)
    blocks.push(context(quorumLine(approval, quorum)));
  if (refused !== undefined) {
    // The agent that would run the command did not accept the decision on record (forged, unsigned, for
    // another action, by someone its policy does not allow): whatever that record says, nothing was approved.
    blocks.push(
      section(
        `:no_entry: *Decision refused by the agent* at ${slackDate(refused.at)}: the decision recorded as ${recordedBy(refused.by)}'s was not accepted (${inline(refused.reason, 500)}). Nothing destructive was run; the run stops here.`,
      ),
    );
  } else if (d !== undefined) {
    const via = approval.decidedVia !== undefined ? ` via ${inline(approval.decidedVia, 40)}` : '';
    const approvers = d.approved && d.approvers !== undefined ? d.approvers : [d.by];
    blocks.push(
      context(
        d.approved
          ? `:white_check_mark: *Approved*${quorum > 1 ? ` (${approvers.length} of ${quorum})` : ''} by ${approvers
              .slice(0, 5)
              .map((a) => mention(a))
              .join(', ')} at ${slackDate(d.at)}${via}` +
              (d.note !== undefined ? `: ${inline(d.note, 500)}` : '')
          : d.reason === 'expired'
            ? `:hourglass: *Expired* unanswered at ${slackDate(d.at)}: nothing destructive was run`
            : `:no_entry: *Denied* by ${mention(d.by)} at ${slackDate(d.at)}${via}` +
              (d.note !== undefined ? `: ${inline(d.note, 500)}` : ''),
      ),
    );
    if (d.approved && story !== undefined) {
      const lines = storyLines(story);
      if (lines.length > 0) blocks.push(...packSections(lines.map(clipEscapedLine)));
    }
  } else if (approval.superseded !== undefined) {
    blocks.push(
      context(
        `:arrows_counterclockwise: *Superseded* at ${slackDate(approval.superseded.at)}: ${
          approval.superseded.why === 'stale'
            ? 'it was approved too long ago to still hold'
            : 'the action changed since it was asked'
        }; decide the new request in this thread. Nothing was run on this one.`,
      ),
    );
  } else if (opts.runEnded === true) {
    blocks.push(context(':no_entry_sign: *Closed*: the run ended before a decision; nothing was run'));
  } else if (left !== undefined && left <= 0) {
    blocks.push(
      context(':hourglass: *Expired* unanswered: it counts as a denial, nothing destructive will run'),
    );
  } else if (approval.approvalId.length > BLOCK_KIT_LIMITS.buttonValue) {
    // Cannot happen with ids from approvalId(); buttons carrying a cut id would decide nothing.
    blocks.push(
      context(':warning: This approval id is too long for Slack buttons: decide it from the terminal'),
    );
  } else {
    blocks.push({
      type: 'actions',
      block_id: 'capi_approval',
      elements: [
        {
          type: 'button',
          action_id: APPROVE_ACTION_ID,
          text: plain('Approve'),
          // Red: this button runs a destructive command.
          style: 'danger',
          value: approval.approvalId,
          // Slack asks before sending the click, naming what it will act on: one misclick away otherwise.
          confirm: {
            title: plain('Approve this destructive step?'),
            text: mrkdwn(confirmText(r.title, r.targets)),
            confirm: plain('Approve'),
            deny: plain('Go back'),
            style: 'danger',
          },
        },
        {
          type: 'button',
          action_id: APPROVE_WITH_REASON_ACTION_ID,
          text: plain('Approve with reason…'),
          value: approval.approvalId,
        },
        {
          // Opens a dialog asking for an optional reason; nothing is decided until it is submitted.
          type: 'button',
          action_id: DENY_ACTION_ID,
          text: plain('Deny…'),
          value: approval.approvalId,
        },
      ],
    });
  }

  const outcome = refused === undefined && d?.approved === true && story ? outcomeWord(story) : undefined;
  return {
    text: fallbackText(`${state}: ${r.title} (run ${r.runId})${outcome ? ` · ${outcome}` : ''}`),
    blocks,
  };
}

/** Who a refused decision record names: unverified, so a person's id is shown as them, anything else as code. */
function recordedBy(by: string): string {
  return /^[UW][A-Z0-9]{2,20}$/.test(by) ? mention(by) : slackName(by, 80);
}

/** After an approval: the send, then the outcome or what reading back found, or that nobody knows it. */
function storyLines(story: ApprovalStory): string[] {
  const lines: string[] = [];
  if (story.sent) {
    lines.push(
      `:rocket: *Sent* at ${slackDate(story.sent.at)} (recorded before sending: it is never sent twice)`,
    );
  }
  const v = story.verified;
  if (v) {
    const unknown = UNKNOWN_PREFIX.exec(v.message);
    lines.push(
      v.tookEffect
        ? `:mag: *Read back after a take-over*: ${inline(v.message, 2000)}`
        : unknown
          ? `:rotating_light: *OUTCOME UNKNOWN*: ${inline(v.message.slice(unknown[0].length), 2500)}`
          : // An attempt whose failure was on record before a take-over: known, and never sent again.
            `:x: *FAILED* before a take-over: ${inline(v.message, 2000)}`,
    );
  }
  const f = story.finished;
  if (f) {
    const code =
      f.exitCode !== null ? `exit ${f.exitCode}` : f.signal !== null ? `signal ${inline(f.signal, 20)}` : '';
    const took = [code, `in ${formatDuration(f.durationMs)}`].filter((x) => x !== '').join(' ');
    const said = [f.summary, f.message === v?.message ? undefined : f.message]
      .filter((x): x is string => x !== undefined)
      .map((x) => inline(x, 1500));
    const head: Partial<Record<StepStatus, string>> = {
      ok: ':white_check_mark: *Done*',
      failed: ':x: *FAILED*',
      skipped: ':fast_forward: *Not run*: the check right before acting found',
      cancelled: ':no_entry_sign: *Cancelled*',
      interrupted: ':double_vertical_bar: *Interrupted*',
      unobservable: ':grey_question: *Not observable*',
    };
    const word = head[f.status];
    if (word !== undefined) {
      lines.push(
        f.status === 'skipped'
          ? `${word} ${said.join(' · ')}`
          : `${word}${story.sent || f.exitCode !== null ? `: ${took}` : ''}${said.length > 0 ? ` · ${said.join(' · ')}` : ''}`,
      );
    }
    for (const t of story.then) {
      const facts = [
        t.summary,
        t.poll ? `attempt ${t.poll.attempt} of ${t.poll.of}: ${t.poll.summary}` : undefined,
        t.message,
      ]
        .filter((x): x is string => x !== undefined)
        .map((x) => inline(x, 1000));
      const word = t.status === 'ok' ? 'done' : STEP_LABEL[t.status];
      lines.push(
        `${STEP_EMOJI[t.status]} *Then* ${inline(t.title, 200)}: ${word} in ${formatDuration(t.durationMs)}${facts.length > 0 ? ` · ${facts.join(' · ')}` : ''}`,
      );
    }
  } else if (story.sent && !v && story.runEnded) {
    lines.push(
      ':rotating_light: *OUTCOME UNKNOWN*: the run ended before the command reported back. Read the target back before doing anything else; `/capi timeline` shows what was sent and when.',
    );
  }
  return lines;
}

/** How the engine starts a read-back's message when it cannot show the action took effect. */
const UNKNOWN_PREFIX = /^OUTCOME UNKNOWN: /;

/** The outcome in a word or two, for the notification text. */
function outcomeWord(story: ApprovalStory): string | undefined {
  const v = story.verified;
  if (v && !v.tookEffect) return UNKNOWN_PREFIX.test(v.message) ? 'OUTCOME UNKNOWN' : 'failed';
  const f = story.finished;
  const then = story.then.find((t) => t.status !== 'ok');
  if (f?.status === 'ok' && then !== undefined) return `${then.title}: ${then.status}`;
  if (f)
    return f.status === 'ok'
      ? `done in ${formatDuration(f.durationMs)}`
      : f.status === 'skipped'
        ? 'not run'
        : f.status;
  if (story.sent) return story.runEnded ? 'OUTCOME UNKNOWN' : 'sent';
  return undefined;
}

/** "1 of 2 approvals: @a (their reason)": who approved so far a step that needs several approvers. */
function quorumLine(approval: StoredApproval, quorum: number): string {
  const votes = approval.votes ?? [];
  const who = votes
    .slice(0, 5)
    .map((v) => `${mention(v.by)}${v.note !== undefined ? ` (${inline(v.note, 200)})` : ''}`)
    .join(', ');
  return (
    `:ballot_box_with_check: *${votes.length} of ${quorum} approvals*` +
    (votes.length > 0 ? `: ${who}` : `: this step needs ${quorum} approvers, the requester not among them`)
  );
}

/** What an approver of a step that needs several hears after clicking Approve. */
export function quorumNotice(outcome: 'voted' | 'already_voted', approval: StoredApproval): string {
  const count = approval.votes?.length ?? 0;
  const quorum = approval.request.quorum ?? 1;
  return outcome === 'voted'
    ? `Your approval counts: ${count} of ${quorum}. The step runs when ${quorum - count} more approver(s) approve.`
    : `Your approval was already counted (${count} of ${quorum}); the same person counts once. Another approver must approve.`;
}

/**
 * The confirm dialog's text (Slack: at most 300 characters): the step and its exact targets, as many as fit,
 * then "and N more" for the rest, so the second look names what the click acts on.
 */
export function confirmText(title: string, targets: readonly string[]): string {
  const max = BLOCK_KIT_LIMITS.confirmText;
  const head = `*${inline(title, 120)}*\nRuns once, exactly as shown above, on ${
    targets.length === 0
      ? 'the target(s) shown above'
      : targets.length === 1
        ? '1 target'
        : `${targets.length} targets`
  }${targets.length === 0 ? '.' : ':'}`;
  let text = head;
  for (const [i, target] of targets.entries()) {
    const line = `\n• ${inline(target, 100)}`;
    const left = targets.length - i - 1;
    // Keep room for the "and N more" line whenever targets remain after this one.
    const tail = left > 0 ? `\n${ELLIPSIS} and ${left} more`.length : 0;
    if (text.length + line.length + tail > max) {
      return `${text}\n${ELLIPSIS} and ${targets.length - i} more`;
    }
    text += line;
  }
  return text;
}

/**
 * The commands exactly as they will run, in code blocks, in order. Past COMMANDS_BUDGET the rest is left out
 * (never a line from the middle) and a warning says how much, so nobody approves text they could not see.
 */
function commandBlocks(commands: readonly string[]): Record<string, unknown>[] {
  const pieces: string[] = [];
  let budget = COMMANDS_BUDGET;
  let hidden = 0;
  commands.forEach((command, i) => {
    const { lines, clipped } = codeLines(command.split('\n'), 1000);
    hidden += clipped;
    let label: string | undefined =
      commands.length > 1 ? `*Will run (${i + 1} of ${commands.length}):*` : '*Will run:*';
    let chunk: string[] = [];
    let chunkLen = 0;
    const flush = () => {
      if (chunk.length === 0) return;
      const code = fenced(chunk);
      pieces.push(label === undefined ? code : `${label}\n${code}`);
      budget -= code.length + (label?.length ?? 0) + 2;
      label = undefined;
      chunk = [];
      chunkLen = 0;
    };
    for (const [j, line] of lines.entries()) {
      const cost = line.length + 1;
      if (cost + chunkLen + (label?.length ?? 0) + 10 > budget) {
        hidden += lines.slice(j).reduce((n, l) => n + l.length + 1, 0);
        break;
      }
      if (chunkLen + cost > CODE_ROOM) flush();
      chunk.push(line);
      chunkLen += cost;
    }
    flush();
  });
  const out = packSections(pieces);
  if (hidden > 0) {
    out.push(
      context(
        `:warning: ${hidden} characters of the command(s) are not shown here: read them in the run's timeline before approving`,
      ),
    );
  }
  return out;
}

function listBlock(
  label: string,
  items: readonly string[],
  show: (raw: string, max: number) => string = inline,
): Record<string, unknown>[] {
  if (items.length === 0) return [];
  const lines: string[] = [];
  let used = 0;
  for (const item of items.slice(0, LIST_ITEMS)) {
    const line = `• ${show(item, 300)}`;
    if (used + line.length + 1 > LIST_BUDGET) break;
    lines.push(line);
    used += line.length + 1;
  }
  if (lines.length < items.length) lines.push(`${ELLIPSIS} and ${items.length - lines.length} more`);
  return [section(`*${label} (${items.length})*\n${lines.join('\n')}`)];
}
