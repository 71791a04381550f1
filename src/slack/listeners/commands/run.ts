import { asCodedError } from '../../../errors.js';
import { mention } from '../../blocks.js';
import type { CapiContext } from '../../context.js';
import { slackName, slackText } from '../../escape.js';

/**
 * `/capi recover|park|stuck-delete|failover|sweep|diagnose`: validated and queued; the thread follows. A
 * read-only run identical to one already going joins it: the person is told, and its thread mentions them.
 */
export async function runCommand(ctx: CapiContext, runbook: string, args: readonly string[]): Promise<void> {
  const where = ctx.siteFor(ctx.channelId);
  if ('problem' in where) {
    await ctx.refuse(`Nothing was started: ${slackText(where.problem, 1000)}`);
    return;
  }
  try {
    const result = await ctx.service.start({
      runbook,
      args,
      site: where.site.name,
      requestedBy: ctx.userId,
      channel: ctx.channelId,
    });
    ctx.watch(result.record.runId);
    if (result.kind === 'joined') {
      const r = result.record;
      await ctx.reply(
        `The same ${slackName(r.runbook, 60)} of site ${slackName(r.site, 60)} is already ${slackText(r.status, 30)} ` +
          `(run id: ${slackName(r.runId, 100)}, asked by ${mention(r.requestedBy)}): you joined it instead of starting another. ` +
          `Its thread in this channel ${result.firstJoin ? 'mentions you and ' : ''}shows what it finds.`,
      );
    }
  } catch (err) {
    await ctx.refuse(`Nothing was started: ${slackText(asCodedError(err).message, 1000)}`);
  }
}
