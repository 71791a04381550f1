import type { CapiContext } from '../../context.js';
import { type PickMetadata, pickListView, pickLoadingView } from '../../pick-modal.js';

/**
 * `/capi failover` (no id): open the picker at once with the command's trigger_id (valid 3 s), ask the service
 * for the list (an agent reads it on the jumphost), then show it in the same dialog. Choosing starts the run
 * through the same path as typing it (listeners/views/pick.ts).
 */
export async function pickCommand(ctx: CapiContext, runbook: string): Promise<void> {
  const where = ctx.siteFor(ctx.channelId);
  if ('problem' in where) {
    await ctx.reply(`Nothing was started: ${where.problem}`);
    return;
  }
  const title =
    ctx.service.runbooks().find((r) => r.name === runbook)?.params[0]?.pick?.title ?? 'Candidates';
  const meta: PickMetadata = { v: 1, runbook, site: where.site.name, channel: ctx.channelId };
  if (ctx.triggerId === undefined) {
    await ctx.reply(`Say which one: \`/capi ${runbook} …\``);
    return;
  }
  let viewId: string | undefined;
  try {
    const opened = await ctx.client.views.open({
      trigger_id: ctx.triggerId,
      view: pickLoadingView(meta, title) as never,
    });
    viewId = opened.view?.id;
  } catch (err) {
    const slackError = (err as { data?: { error?: string } }).data?.error ?? (err as Error).message;
    await ctx.reply(
      `The list did not open (Slack said: ${slackError}); type the argument: \`/capi ${runbook} …\``,
    );
    return;
  }
  if (viewId === undefined) return;
  const result = await ctx.service.pick(runbook, where.site.name);
  try {
    await ctx.client.views.update({ view_id: viewId, view: pickListView(meta, title, result) as never });
  } catch (err) {
    // Closed meanwhile (not_found) or Slack refused: the person can type the argument instead.
    ctx.logger.info(
      { runbook, err: (err as { data?: { error?: string } }).data?.error },
      'picker not updated',
    );
  }
}
