/**
 * A step's raw output as a log file in its run's thread: the step's post says what the step found, the file
 * holds every line it printed. Built from the timeline (redacted when stored) and redacted again here.
 */
import type { StepRef } from '../engine/events.js';
import { revealControls, terminalText } from '../fronts/sanitize.js';
import type { TimelineEntry } from '../queue/service.js';
import { redactText } from '../redact.js';
import { outputPlace, stepContext } from './blocks.js';
import type { ThreadFile } from './paced-slack.js';

type StepFinished = Extract<TimelineEntry['event'], { type: 'step.finished' }>;

/** The step.finished at `index` has output that its post does not show: it goes into a log file. */
export function wantsLogFile(entries: readonly TimelineEntry[], index: number): boolean {
  const e = entries[index]?.event;
  if (e?.type !== 'step.finished') return false;
  return outputPlace(stepContext(entries.slice(0, index + 1), e), e.summary) === 'file';
}

/** The log file of the step.finished at `index` of the run's timeline; undefined for any other event. */
export function stepLogFile(
  runId: string,
  entries: readonly TimelineEntry[],
  index: number,
): ThreadFile | undefined {
  const e = entries[index]?.event;
  if (e?.type !== 'step.finished') return undefined;
  const ctx = stepContext(entries.slice(0, index + 1), e);
  return {
    // Read with `cat` or `less` once downloaded: no escape sequence of the output may reach that terminal.
    content: terminalText(redactText(`${(ctx.output ?? []).join('\n')}\n`)),
    filename: logFileName(runId, e),
    title: oneLine(`Output of ${stepName(e)}: ${ctx.title ?? e.stepId}`),
  };
}

/**
 * One log file for the steps a catch-up post covers (entries `from`..`to`, exclusive): each step's output
 * under a line naming it, in order; undefined when none of them printed anything.
 */
export function catchUpLogFile(
  runId: string,
  entries: readonly TimelineEntry[],
  from: number,
  to: number,
): ThreadFile | undefined {
  const parts: string[] = [];
  let first: StepFinished | undefined;
  let last: StepFinished | undefined;
  for (let i = from; i < to; i++) {
    const e = entries[i]?.event;
    if (e?.type !== 'step.finished') continue;
    const ctx = stepContext(entries.slice(0, i + 1), e);
    const output = ctx.output ?? [];
    if (output.length === 0) continue;
    first ??= e;
    last = e;
    parts.push(`===== ${stepName(e)}: ${ctx.title ?? e.stepId}`, ...output, '');
  }
  if (first === undefined || last === undefined) return undefined;
  const span = first.index === last.index ? `step ${first.index}` : `steps ${first.index}-${last.index}`;
  return {
    // Read with `cat` or `less` once downloaded: no escape sequence of the output may reach that terminal.
    content: terminalText(redactText(parts.join('\n'))),
    filename: `${runId}-${first.index === last.index ? `step-${first.index}` : `steps-${first.index}-${last.index}`}.log`,
    title: oneLine(`Output of ${span} (catching up)`),
  };
}

function stepName(e: StepRef): string {
  const item = e.iteration ? ` (item ${e.iteration.n} of ${e.iteration.of})` : '';
  return `step ${e.index} of ${e.total}${item}`;
}

function oneLine(raw: string): string {
  return revealControls(redactText(raw)).replace(/\s+/g, ' ').slice(0, 250);
}

/** A file name Slack shows as is: the step id of a loop's inner step holds a `/`. */
function logFileName(runId: string, ref: StepRef): string {
  const step = ref.stepId.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${runId}-${step}${ref.iteration ? `-${ref.iteration.n}` : ''}.log`;
}
