import { asCodedError } from '../../../errors.js';
import type { CapiContext } from '../../context.js';
import { slackName, slackText } from '../../escape.js';

/** `/capi cancel RUN`: the agent stops between steps and kills the running command; the thread says who. */
export async function cancelCommand(ctx: CapiContext, runId: string): Promise<void> {
  try {
    const record = await ctx.service.cancel(runId, ctx.userId);
    await ctx.reply(
      `Cancel requested for run ${slackName(record.runId, 100)} (${record.status}); its thread will show when it stopped.`,
    );
  } catch (err) {
    await ctx.refuse(
      `Could not cancel ${slackName(runId, 100)}: ${slackText(asCodedError(err).message, 1000)}`,
    );
  }
}
