import { asCodedError } from '../../../errors.js';
import { type CapiContext, runIsHere } from '../../context.js';

/** `/capi cancel RUN`: the agent stops between steps and kills the running command; the thread says who. */
export async function cancelCommand(ctx: CapiContext, runId: string): Promise<void> {
  if (!runIsHere(ctx, await ctx.service.getRun(runId))) {
    // Word for word what an unknown run gets (RunRegistry), so another site's run stays invisible.
    await ctx.reply(`Could not cancel \`${runId}\`: run ${runId} does not exist (check the run id)`);
    return;
  }
  try {
    const record = await ctx.service.cancel(runId, ctx.userId);
    await ctx.reply(
      `Cancel requested for run \`${record.runId}\` (${record.status}); its thread will show when it stopped.`,
    );
  } catch (err) {
    await ctx.reply(`Could not cancel \`${runId}\`: ${asCodedError(err).message}`);
  }
}
