import type { RunRecord } from '../../../service/run-service.js';
import { mention } from '../../blocks.js';
import { type CapiContext, runIsHere } from '../../context.js';
import { slackName, slackText } from '../../escape.js';

function line(r: RunRecord): string {
  // The same escaping as the thread's messages: names as code, everything redacted, escaped and clipped.
  const step = r.currentStep ? ` at ${slackName(r.currentStep, 100)}` : '';
  const via = r.requestedVia ? ` via ${slackText(r.requestedVia, 60)}` : '';
  return `• run id: ${slackName(r.runId, 100)} *${slackText(r.status, 30)}*${step} -- ${slackText(r.runbook, 60)} on ${slackText(r.site, 60)}, by ${mention(r.requestedBy)}${via}`;
}

/** `/capi status [RUN]`: the active and recent runs, or one run with its pending approvals. */
export async function statusCommand(ctx: CapiContext, runId?: string): Promise<void> {
  if (runId !== undefined) {
    const record = await ctx.service.getRun(runId);
    if (!record || !runIsHere(ctx, record)) {
      await ctx.refuse(`No run ${slackName(runId, 100)}: \`/capi status\` lists the runs.`);
      return;
    }
    const pending = await ctx.service.pendingApprovals(runId);
    const waits = pending.map(
      (a) =>
        `  waiting for approval: ${slackText(a.request.summary, 300)} (expires ${slackText(a.expiresAt, 40)})`,
    );
    await ctx.reply(
      [line(record), ...(record.message ? [`  ${slackText(record.message, 1000)}`] : []), ...waits].join(
        '\n',
      ),
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
