import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type {
  ApprovalDecision,
  ApprovalPort,
  ApprovalRequest,
  EventSink,
  RunEvent,
  StepRef,
} from '../engine/events.js';
import { inProcessApprovals } from '../engine/in-process.js';
import { redactText } from '../redact.js';
import { notOnPath } from '../runbook/tools.js';
import { formatDuration, formatRunDuration, itemText, STEP_LABEL } from './format.js';
import { terminalText } from './sanitize.js';

/**
 * Prints the run timeline as it happens; one line per event, output indented under its step.
 * Unless verbose, a command's output beyond TERMINAL_OUTPUT_LINES is counted, not printed (a
 * 200-line kubectl JSON dump would push the decisions off the screen), and a poll shows one
 * progress line per attempt instead of its output. The full output stays in the run's events.
 */
export function createTerminalTimeline(out: Writable, opts: { readonly verbose?: boolean } = {}): EventSink {
  const verbose = opts.verbose === true;
  let shown = 0;
  let hidden = 0;
  let polling = false;
  const write = (line: string) => {
    out.write(`${line}\n`);
  };
  return (e: RunEvent) => {
    if (e.type === 'step.output') {
      if (polling) return;
      if (verbose || shown < TERMINAL_OUTPUT_LINES) {
        shown += 1;
        write(formatEvent(e));
      } else {
        hidden += 1;
      }
      return;
    }
    if (e.type === 'step.started') polling = e.kind === 'poll' && !verbose;
    if (hidden > 0) write(`    | ... ${hidden} more line(s) not shown (--verbose shows all)`);
    shown = 0;
    hidden = 0;
    write(formatEvent(e));
  };
}

/** Lines of one command's output the terminal shows before it only counts the rest. */
const TERMINAL_OUTPUT_LINES = 15;

function where(ref: StepRef): string {
  const it = ref.iteration ? ` (${ref.iteration.n}/${ref.iteration.of} ${itemText(ref.iteration)})` : '';
  return `[${ref.index}/${ref.total}] ${ref.stepId}${it}`;
}

/**
 * One event as terminal lines, secrets redacted. Every string in an event may come from the cloud, Slack or a
 * command's output:
 * escape sequences are removed and control and invisible characters shown, so nothing printed can move the
 * cursor, recolour or rewrite a line, or disguise a target shown before the y/N prompt.
 */
export function formatEvent(e: RunEvent): string {
  // Redacted here too: `run` prints the engine's events as they happen, before any store has redacted them.
  return terminalText(redactText(describeEvent(e)));
}

function describeEvent(e: RunEvent): string {
  switch (e.type) {
    case 'run.started':
      return [
        `=== ${e.runbook} on site ${e.site} -- run id: ${e.runId}, requested by ${e.requestedBy}`,
        ...e.steps.map((s, i) => `    ${i + 1}. ${s.title}${s.destructive ? '  [needs approval]' : ''}`),
      ].join('\n');
    case 'approval.refused':
      return `    -- a decision by ${e.by} was refused: ${e.reason}`;
    case 'approval.voted':
      return `    -- approved by ${e.by} (${e.count} of ${e.of} approvers)${e.note ? `: ${e.note}` : ''}`;
    case 'run.joined':
      return `    -- ${e.note ?? e.by}${e.via && e.note === undefined ? ` (${e.via})` : ''} asked for the same run and joined this one`;
    case 'run.resumed':
      return `=== resumed at ${e.atStep}: ${e.reason}`;
    case 'preflight':
      return `--- jumphost ready (HOME=${e.home}; ${e.tools.join(', ') || 'no CLIs'} found)${e.missing?.length ? `; ${notOnPath(e.missing)}: the steps that call ${e.missing.length > 1 ? 'them' : 'it'} are not observable` : ''}`;
    case 'step.started':
      return `>>> ${where(e)} ${e.title}${e.destructive ? '  [DESTRUCTIVE]' : ''}`;
    case 'step.output':
      return `    ${e.stream === 'stderr' ? '!' : '|'} ${e.line}`;
    case 'poll.attempt':
      return `    ~ attempt ${e.attempt}/${e.of}: ${e.summary}`;
    case 'decision':
      return `    => ${e.message}`;
    case 'guard.skipped':
      return `    -- guard: ${e.message}`;
    case 'approval.requested':
      return formatApproval(e.request);
    case 'approval.rejected':
      return `    !! the agent refused the decision by ${e.by} on ${e.approvalId}: ${e.reason}; nothing destructive was run`;
    case 'approval.superseded':
      return `    -- approval ${e.approvalId} is superseded by ${e.supersededBy}: ${e.why === 'stale' ? 'it was given too long ago to still stand' : 'the action it approved has changed'}; asking again`;
    case 'attempt.started':
      return `    >> sending (attempt ${e.attemptId}, recorded at ${e.at}; never sent twice)`;
    case 'attempt.verified':
      return `    ${e.tookEffect ? '-- verified' : '!! OUTCOME UNKNOWN'}: ${e.message}`;
    case 'approval.decided':
      return e.decision.approved
        ? `    APPROVED by ${e.decision.by} at ${e.decision.at}${e.decision.note ? `: ${e.decision.note}` : ''}`
        : `    ${e.decision.reason === 'expired' ? 'EXPIRED' : 'DENIED'} by ${e.decision.by} at ${e.decision.at}${e.decision.note ? `: ${e.decision.note}` : ''}`;
    case 'step.finished': {
      const mark = STEP_LABEL[e.status];
      const code = e.exitCode === null ? '' : ` exit ${e.exitCode}`;
      const found = e.summary === undefined ? '' : ` -- ${e.summary}`;
      return `<<< ${where(e)} ${mark}${code} in ${formatDuration(e.durationMs)}${found}${e.message ? `: ${e.message}` : ''}`;
    }
    case 'run.finished':
      return `=== run ${e.status.toUpperCase()} after ${formatRunDuration(e.durationMs, e.waitingMs)}: ${e.message}`;
  }
}

function formatApproval(r: ApprovalRequest): string {
  return [
    `!!! APPROVAL NEEDED: ${r.summary}`,
    '    targets:',
    ...r.targets.map((t) => `      - ${t}`),
    '    evidence:',
    ...r.evidence.map((t) => `      - ${t}`),
    '    will run:',
    ...r.commands.flatMap((c) => c.split('\n').map((l) => `      $ ${l}`)),
  ].join('\n');
}

/**
 * Asks y/N on the terminal. Anything but an explicit yes is a denial, and so is end of input:
 * a run started without a human at the keyboard never approves itself (that is what --yes is for).
 */
export function createTerminalApprovals(opts: {
  readonly input: Readable;
  readonly output: Writable;
  readonly operator: string;
  readonly autoApprove: boolean;
}): ApprovalPort & {
  ask(req: ApprovalRequest, signal: AbortSignal): Promise<ApprovalDecision>;
  close(): void;
} {
  const rl = opts.autoApprove ? undefined : createInterface({ input: opts.input, terminal: false });
  const lines: string[] = [];
  const waiters: ((line: string | undefined) => void)[] = [];
  let ended = false;
  rl?.on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else lines.push(line);
  });
  rl?.on('close', () => {
    ended = true;
    for (const w of waiters.splice(0)) w(undefined);
  });
  const nextLine = (signal: AbortSignal) =>
    new Promise<string | undefined>((resolve) => {
      const queued = lines.shift();
      if (queued !== undefined || ended) return resolve(queued);
      waiters.push(resolve);
      signal.addEventListener('abort', () => resolve(undefined), { once: true });
    });

  const ask = async (_req: ApprovalRequest, signal: AbortSignal): Promise<ApprovalDecision> => {
    const at = () => new Date().toISOString();
    if (opts.autoApprove) {
      opts.output.write('    approve? --yes given: approving\n');
      return { approved: true, by: `${opts.operator} (--yes)`, at: at() };
    }
    opts.output.write('    approve? [y/N] ');
    const answer = await nextLine(signal);
    // A piped answer is not echoed by a terminal: echo it so the transcript reads like a session.
    if (answer !== undefined && (opts.input as { isTTY?: boolean }).isTTY !== true)
      opts.output.write(`${terminalText(answer)}\n`);
    if (answer === undefined) {
      opts.output.write('\n');
      return {
        approved: false,
        by: opts.operator,
        at: at(),
        reason: 'denied',
        note: 'no answer (end of input)',
      };
    }
    return /^\s*y(es)?\s*$/i.test(answer)
      ? { approved: true, by: opts.operator, at: at() }
      : { approved: false, by: opts.operator, at: at(), reason: 'denied' };
  };
  return {
    ...inProcessApprovals(ask),
    ask,
    close() {
      rl?.close();
    },
  };
}
