/**
 * A step's long output as a log file in its run's thread: the thread post shows the last lines, the file
 * holds all of them. Built from the timeline (redacted when stored) and redacted again here.
 */
import type { StepRef } from '../engine/events.js';
import { revealControls, terminalText } from '../fronts/sanitize.js';
import type { TimelineEntry } from '../queue/service.js';
import { redactText } from '../redact.js';
import { stepContext } from './blocks.js';
import type { ThreadFile } from './paced-slack.js';

/** A step's output goes into a log file past this many lines (the thread post shows the last 25 at most). */
const FILE_MIN_LINES = 20;
/** ... or past this many characters (the thread post shows about 2500). */
const FILE_MIN_CHARS = 2000;

export function wantsLogFile(output: readonly string[]): boolean {
  return output.length > FILE_MIN_LINES || output.reduce((n, l) => n + l.length + 1, 0) > FILE_MIN_CHARS;
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
  const item = e.iteration ? ` (item ${e.iteration.n} of ${e.iteration.of})` : '';
  return {
    // Read with `cat` or `less` once downloaded: no escape sequence of the output may reach that terminal.
    content: terminalText(redactText(`${(ctx.output ?? []).join('\n')}\n`)),
    filename: logFileName(runId, e),
    title: revealControls(
      redactText(`Output of step ${e.index} of ${e.total}${item}: ${ctx.title ?? e.stepId}`),
    )
      .replace(/\s+/g, ' ')
      .slice(0, 250),
  };
}

/** A file name Slack shows as is: the step id of a loop's inner step holds a `/`. */
function logFileName(runId: string, ref: StepRef): string {
  const step = ref.stepId.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${runId}-${step}${ref.iteration ? `-${ref.iteration.n}` : ''}.log`;
}
