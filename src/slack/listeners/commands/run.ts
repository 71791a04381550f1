import { asCodedError } from '../../../errors.js';
import type { CapiContext } from '../../context.js';
import { slackText } from '../../escape.js';

/** `/capi recover|park|stuck-delete|failover|sweep|diagnose`: validated and queued; the thread follows. */
export async function runCommand(ctx: CapiContext, runbook: string, args: readonly string[]): Promise<void> {
  const where = ctx.siteFor(ctx.channelId);
  if ('problem' in where) {
    await ctx.refuse(`Nothing was started: ${slackText(where.problem, 1000)}`);
    return;
  }
  try {
    const record = await ctx.service.submit({
      runbook,
      args,
      site: where.site.name,
      requestedBy: ctx.userId,
      channel: ctx.channelId,
    });
    ctx.watch(record.runId);
  } catch (err) {
    await ctx.refuse(`Nothing was started: ${slackText(asCodedError(err).message, 1000)}`);
  }
}
