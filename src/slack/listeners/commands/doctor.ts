import { type DoctorLine, type DoctorReport, line } from '../../../doctor/report.js';
import { slackChecks } from '../../../doctor/slack.js';
import type { CapiContext } from '../../context.js';
import { doctorMessage } from '../../doctor-message.js';
import { slackText } from '../../escape.js';

/**
 * `/capi doctor`: this channel's site, checked read-only. One message, posted at once and updated in place: an
 * agent runs the jumphost and Redis checks (a read-only job on the site's read-only queue: Slack never reaches
 * SSH), this front adds the Slack ones it can see itself (its token's scopes, the site's channels). The report
 * is kept as the site's last one, for the Home tab.
 */
export async function doctorCommand(ctx: CapiContext): Promise<void> {
  const where = ctx.siteFor(ctx.channelId);
  if ('problem' in where) {
    await ctx.refuse(`Nothing was checked: ${slackText(where.problem, 1000)}`);
    return;
  }
  const site = where.site.name;
  // A bot outside this channel cannot post here (that is a finding itself): the report then goes to the person.
  const posted = await ctx.client.chat
    .postMessage({ channel: ctx.channelId, ...doctorMessage(site, ctx.userId, { checking: true }) })
    .catch(() => undefined);
  const fromAgent = await ctx.service.doctor(site);
  const agentLines: DoctorLine[] =
    'error' in fromAgent
      ? [
          line(
            'jumphost and redis',
            'fail',
            `not checked: ${fromAgent.error}`,
            'Start an agent that serves this site (capi-chatops agent, or serve), or run capi-chatops doctor on its host.',
          ),
        ]
      : fromAgent.lines;
  const lone = ctx.service.siteNames().length === 1;
  const report: DoctorReport = {
    site,
    at: new Date().toISOString(),
    lines: [...agentLines, ...(await slackChecks(ctx.client, where.site, lone))],
  };
  await ctx.service.saveDoctorReport(report);
  ctx.refreshHome?.();
  const message = doctorMessage(site, ctx.userId, report);
  if (posted?.ts !== undefined) {
    await ctx.client.chat.update({ channel: ctx.channelId, ts: posted.ts, ...message });
  } else {
    await ctx.reply(message.text);
  }
}
