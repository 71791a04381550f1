import { renderMarkdown } from '../../../fronts/postmortem.js';
import { type CapiContext, runIsHere } from '../../context.js';
import { slackName } from '../../escape.js';

/** `/capi timeline RUN`: the run as Markdown, uploaded to the channel for the postmortem. */
export async function timelineCommand(ctx: CapiContext, runId: string): Promise<void> {
  const here = runIsHere(ctx, await ctx.service.getRun(runId));
  const entries = here ? await ctx.service.readTimeline(runId) : [];
  if (entries.length === 0) {
    await ctx.refuse(`No timeline for run ${slackName(runId, 100)}: \`/capi status\` lists the runs.`);
    return;
  }
  // Each upload is a file in the channel: a user repeating it is flood-limited (SLACK_FLOOD_UPLOADS).
  if (!(await ctx.mayUpload())) return;
  await ctx.client.files.uploadV2({
    channel_id: ctx.channelId,
    file: Buffer.from(renderMarkdown(entries), 'utf8'),
    filename: `${runId}-timeline.md`,
    title: `Timeline of run ${runId}`,
  });
}
