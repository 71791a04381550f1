import type { RunRecord } from '../../../queue/service.js';
import { escapeSlack, mention } from '../../blocks.js';
import { type CapiContext, runIsHere } from '../../context.js';

function line(r: RunRecord): string {
  const step = r.currentStep ? ` at \`${escapeSlack(r.currentStep)}\`` : '';
  return `• run id: \`${r.runId}\` *${r.status}*${step} -- ${escapeSlack(r.runbook)} on ${escapeSlack(r.site)}, by ${mention(r.requestedBy)}${r.requestedVia ? ` via ${escapeSlack(r.requestedVia)}` : ''}`;
}

/** `/capi status [RUN]`: the active and recent runs, or one run with its pending approvals. */
export async function statusCommand(ctx: CapiContext, runId?: string): Promise<void> {
  if (runId !== undefined) {
    const record = await ctx.service.getRun(runId);
    if (!record || !runIsHere(ctx, record)) {
      await ctx.reply(`No run \`${runId}\`: \`/capi status\` lists the runs.`);
      return;
    }
    const pending = await ctx.service.pendingApprovals(runId);
    const waits = pending.map(
      (a) => `  waiting for approval: ${escapeSlack(a.request.summary)} (expires ${a.expiresAt})`,
    );
    await ctx.reply(
      [line(record), ...(record.message ? [`  ${escapeSlack(record.message)}`] : []), ...waits].join('\n'),
    );
    return;
  }
  const where = ctx.siteFor(ctx.channelId);
  if ('problem' in where) {
    await ctx.reply(`No runs to show here: ${where.problem}`);
    return;
  }
  // Several sites share the index: read past the other sites' runs to fill the list with this one's.
  const runs = (await ctx.service.listRuns({ limit: 200 }))
    .filter((r) => r.site === where.site.name)
    .slice(0, 15);
  await ctx.reply(runs.length === 0 ? 'No runs yet.' : runs.map(line).join('\n'));
}
