/**
 * A run's timeline as a Markdown postmortem: summary, step table, then every event in order. Pure; the
 * terminal (`capi-chatops timeline`) prints it and Slack (`/capi timeline`) uploads it.
 */
import type { ApprovalDecision, RunEvent, StepRef } from '../engine/events.js';
import { notOnPath } from '../runbook/tools.js';
import type { TimelineEntry } from '../service/run-service.js';
import { formatDuration, formatRunDuration, itemText, STEP_LABEL } from './format.js';
import { terminalText } from './sanitize.js';

/** `HH:MM:SS` in UTC: the document says so in its header, and a postmortem mixes people in several zones. */
function clock(iso: string): string {
  return iso.slice(11, 19);
}

function utc(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

/**
 * Untrusted text (names, messages, command output, who decided) as Markdown text: every character that could
 * open emphasis, a link, an image, HTML, an entity, a code span or a table cell is backslash-escaped, line
 * breaks become `<br>` (a line could otherwise start a heading, a list or a fence), and terminal escapes,
 * control and invisible characters are removed or shown (the file is also read with `cat`).
 */
function md(text: string): string {
  return (
    terminalText(text)
      .replace(/[\\`*[\]<>|~&]/g, '\\$&')
      // `_` inside a word never opens emphasis (CommonMark), and `provisioning_status` must stay searchable.
      .replace(/(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])/g, '\\_')
      .replace(/\r?\n/g, '<br>')
  );
}

const cell = md;

/** A code block's line: it cannot end the block (see fenced), but a terminal must not interpret it either. */
function codeLine(text: string): string {
  return terminalText(text);
}

function inline(raw: string): string {
  const text = terminalText(raw).replace(/\s+/g, ' ');
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

/** Already Markdown: the item label is a name from the cloud. */
function stepLabel(ref: StepRef): string {
  const it = ref.iteration ? ` (${ref.iteration.n}/${ref.iteration.of} ${md(itemText(ref.iteration))})` : '';
  return `${md(ref.stepId)}${it}`;
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
  out.push(`# Run ${md(start?.runId ?? '(unknown id)')}: ${md(runbook)} on ${md(site)}`, '');
  if (start?.summary) out.push(`> ${md(start.summary)}`, '');

  const firstAt = started?.at ?? entries[0]?.at;
  // The run's time counts from its request; the first run.started says when that was.
  const requestedAt = start?.requestedAt ?? firstAt;
  const durationMs =
    end?.durationMs ??
    (requestedAt && entries.length > 0
      ? Date.parse((entries[entries.length - 1] as TimelineEntry).at) - Date.parse(requestedAt)
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
    `| Requested | ${requestedAt ? utc(requestedAt) : 'unknown'} |`,
    `| Started | ${firstAt ? utc(firstAt) : 'unknown'} |`,
    `| Finished | ${finished ? utc(finished.at) : 'not finished'} |`,
    `| Duration | ${durationMs === undefined ? 'unknown' : formatRunDuration(durationMs, end?.waitingMs)} |`,
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
        `| ${e.index}/${e.total} | ${stepLabel(e)} | ${cell(title)} | ${STEP_LABEL[e.status]} | ` +
          `${e.exitCode ?? '-'} | ${formatDuration(e.durationMs)} |`,
      );
    }
  }
  // A step that started but never reported back: the run was cut off (agent killed, cancelled).
  for (const { ref, title } of open.values()) {
    rows.push(`| ${ref.index}/${ref.total} | ${stepLabel(ref)} | ${cell(title)} | unfinished | - | - |`);
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
      block.lines.push(codeLine(e.line));
      continue;
    }
    flush();
    const t = `\`${clock(at)}\``;
    switch (e.type) {
      case 'run.started':
        out.push(`- ${t} run started by ${md(e.requestedBy)}: ${md(e.runbook)} on ${md(e.site)}`);
        break;
      case 'run.resumed':
        out.push(`- ${t} run resumed at ${md(e.atStep)}: ${md(e.reason)}`);
        break;
      case 'run.joined':
        out.push(
          `- ${t} ${e.note !== undefined ? `alert ${md(e.note)}` : md(e.by)}${e.via && e.note === undefined ? ` (${md(e.via)})` : ''} asked for the same run and joined this one`,
        );
        break;
      case 'approval.refused':
        out.push(`- ${t} a decision by ${md(e.by)} was refused: ${md(e.reason)}`);
        break;
      case 'approval.voted':
        out.push(
          `- ${t} approved by ${md(e.by)} (${e.count} of ${e.of} approvers)${e.note ? `: ${md(e.note)}` : ''}`,
        );
        break;
      case 'preflight':
        out.push(
          `- ${t} jumphost ready (HOME=${md(e.home)}; ${md(e.tools.join(', ')) || 'no CLIs'} found)` +
            (e.missing?.length
              ? `; ${md(notOnPath(e.missing))}: the steps that call it are not observable`
              : ''),
        );
        break;
      case 'step.started':
        out.push(
          '',
          `${e.iteration ? '####' : '###'} ${e.index}/${e.total} ${stepLabel(e)}: ${md(e.title)}` +
            `${e.destructive ? ' (destructive)' : ''}`,
          '',
          `- ${t} step started`,
        );
        break;
      case 'poll.attempt':
        out.push(`- ${t} attempt ${e.attempt}/${e.of}: ${md(e.summary)}`);
        break;
      case 'decision':
        out.push(`- ${t} decision: ${md(e.message)}`);
        break;
      case 'guard.skipped':
        out.push(`- ${t} guard skipped the step: ${md(e.message)}`);
        break;
      case 'approval.requested': {
        const r = e.request;
        out.push(
          `- ${t} **approval requested** from the approvers (run requested by ${md(r.requestedBy)}): ${md(r.summary)}`,
        );
        if (r.targets.length > 0) out.push(`  - targets: ${r.targets.map(inline).join(', ')}`);
        for (const ev of r.evidence) out.push(`  - evidence: ${md(ev)}`);
        out.push(
          '  - will run:',
          '',
          ...fenced(
            r.commands.flatMap((c) => c.split('\n').map(codeLine)),
            'sh',
          ).map((l) => `    ${l}`),
          '',
        );
        break;
      }
      case 'approval.decided':
        out.push(`- ${t} ${describeDecision(e.decision)}`);
        break;
      case 'approval.rejected':
        out.push(
          `- ${t} the agent refused the decision by ${md(e.by)} on ${md(e.approvalId)}: ${md(e.reason)}; nothing destructive was run`,
        );
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
          `- ${t} ${e.tookEffect ? 'verified after a take-over' : '**OUTCOME UNKNOWN**'}: ${md(e.message)}`,
        );
        break;
      case 'step.finished': {
        const code = e.exitCode === null ? '' : `, exit code ${e.exitCode}`;
        const sig = e.signal === null ? '' : `, signal ${md(e.signal)}`;
        out.push(
          `- ${t} ${stepLabel(e)} ${STEP_LABEL[e.status]} after ${formatDuration(e.durationMs)}${code}${sig}` +
            `${e.summary ? ` (found: ${md(e.summary)})` : ''}${e.message ? `: ${md(e.message)}` : ''}`,
        );
        break;
      }
      case 'run.finished':
        out.push(
          '',
          `- ${t} **run ${e.status}** after ${formatRunDuration(e.durationMs, e.waitingMs)}: ${md(e.message)}`,
        );
        break;
    }
  }
  flush();
  return out;
}

function describeDecision(d: ApprovalDecision): string {
  if (d.approved) {
    const who = d.approvers !== undefined ? d.approvers.map(md).join(', ') : md(d.by);
    return `**approved** by ${who} at ${clock(d.at)}${d.note ? `: ${md(d.note)}` : ''}`;
  }
  if (d.reason === 'expired')
    return `**approval expired** at ${clock(d.at)} (no decision in time; counts as a denial)`;
  return `**denied** by ${md(d.by)} at ${clock(d.at)}${d.note ? `: ${md(d.note)}` : ''}`;
}
