import { asCodedError } from '../../../errors.js';
import type { CapiContext } from '../../context.js';
import { slackName, slackText } from '../../escape.js';

/**
 * `/capi release REASON`: frees the site this channel acts on, held after a run ended while a destructive
 * command may have landed; the reason (what was checked by hand) is kept in the audit trail.
 */
export async function releaseCommand(ctx: CapiContext, reason: string): Promise<void> {
  const where = ctx.siteFor(ctx.channelId);
  if (!('site' in where)) {
    await ctx.refuse(`Could not release: ${slackText(where.problem, 1000)}`);
    return;
  }
  const site = where.site.name;
  try {
    const released = await ctx.service.release(site, ctx.userId, reason, 'slack');
    if (released.length === 0) {
      await ctx.reply(`Site ${slackName(site, 100)} is not held: nothing to release.`);
      return;
    }
    ctx.refreshHome?.();
    const runs = released.map((h) => slackName(h.runId, 100)).join(', ');
    await ctx.reply(
      `Released site ${slackName(site, 100)} (held for run ${runs}); runs that can change the cloud may start again.`,
    );
  } catch (err) {
    await ctx.refuse(
      `Could not release ${slackName(site, 100)}: ${slackText(asCodedError(err).message, 1000)}`,
    );
  }
}
