/**
 * A step's raw output as a log file in its run's thread, when its post says what the step found and the
 * output is too long to show there (blocks.ts outputPlace): the file holds every line it printed. Built from the timeline (redacted when stored) and redacted again here.
 */
import type { StepRef } from '../engine/events.js';
import { revealControls, terminalText } from '../fronts/sanitize.js';
import { redactText } from '../redact.js';
import type { TimelineEntry } from '../service/run-service.js';
import { stepContext } from './blocks.js';
import type { ThreadFile } from './paced-slack.js';

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
