import { asCodedError } from '../../../errors.js';
import { unconfirmedNotice } from '../../../fronts/format.js';
import { type CapiContext, runIsHere } from '../../context.js';
import { slackName, slackText } from '../../escape.js';

/** `/capi cancel RUN`: the agent stops between steps and kills the running command; the thread says who. */
export async function cancelCommand(ctx: CapiContext, runId: string): Promise<void> {
  if (!runIsHere(ctx, await ctx.service.getRun(runId))) {
    // Word for word what an unknown run gets (RunRegistry), so another site's run stays invisible.
    await refuseCancel(ctx, runId, `run ${runId} does not exist (check the run id)`);
    return;
  }
  try {
    const record = await ctx.service.cancel(runId, ctx.userId);
    const unsure =
      record.unconfirmed !== undefined ? ` ${unconfirmedNotice('cancel', record.unconfirmed)}` : '';
    await ctx.reply(
      `Cancel requested for run ${slackName(record.runId, 100)} (${record.status}); its thread will show when it stopped.${slackText(unsure, 600)}`,
    );
  } catch (err) {
    await refuseCancel(ctx, runId, asCodedError(err).message);
  }
}

function refuseCancel(ctx: CapiContext, runId: string, why: string): Promise<void> {
  return ctx.refuse(`Could not cancel ${slackName(runId, 100)}: ${slackText(why, 1000)}`);
}
