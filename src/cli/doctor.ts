/**
 * `capi-chatops doctor [--site NAME|FILE]...`: is each site ready before the incident? Read-only checks of its
 * jumphost (over SSH, as the runbooks use it), the deployment's Redis and the Slack app; one line each, ok /
 * warn / fail with the fix. Exit 0 all ok, 1 a warning, 2 a failure (for CI and cron). Each site's report is
 * kept in Redis as its last one, which the Home tab shows. A composition root: it wires SSH, Redis and Slack.
 */
import { existsSync } from 'node:fs';
import { WebClient } from '@slack/web-api';
import { loadConfig } from '../config/env.js';
import { resolveJumphost } from '../config/jumphost.js';
import { loadSiteProfile, type SiteProfile } from '../config/site.js';
import { jumphostChecks } from '../doctor/jumphost.js';
import { redisChecks } from '../doctor/redis.js';
import {
  countsText,
  type DoctorLine,
  type DoctorReport,
  doctorExitCode,
  line,
  worstLevel,
} from '../doctor/report.js';
import { slackChecks } from '../doctor/slack.js';
import { asCodedError, CapiError, ErrorCode } from '../errors.js';
import { terminalText } from '../fronts/sanitize.js';
import { createLogger } from '../log.js';
import { connectRedis } from '../redis/connection.js';
import { loadRunbooks } from '../runbook/load.js';
import { DoctorReports } from '../runs/doctor-reports.js';
import { loadSites, siteFilesFrom } from './agent.js';

/** `--site` takes a site name among SITE_FILE's profiles, or a profile file. */
async function chosenSites(
  args: readonly string[],
  configured: ReadonlyMap<string, SiteProfile>,
): Promise<SiteProfile[]> {
  if (args.length === 0) {
    if (configured.size === 0) {
      throw new CapiError(ErrorCode.ConfigInvalid, 'no site profile: pass --site FILE or set SITE_FILE');
    }
    return [...configured.values()];
  }
  const out: SiteProfile[] = [];
  for (const arg of args) {
    const named = configured.get(arg);
    if (named !== undefined) out.push(named);
    else if (existsSync(arg)) out.push(await loadSiteProfile(arg));
    else {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        `--site ${arg}: no site of that name (SITE_FILE has ${[...configured.keys()].join(', ') || 'none'}) and no such profile file`,
      );
    }
  }
  return out;
}

const LABEL = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;

export function formatDoctorReport(report: DoctorReport): string {
  const width = Math.max(...report.lines.map((l) => l.check.length), 10);
  const rows = report.lines.flatMap((l) => [
    `  ${LABEL[l.level]}  ${l.check.padEnd(width)}  ${terminalText(l.detail)}`,
    ...(l.fix !== undefined ? [`  ${' '.repeat(4)}  ${' '.repeat(width)}  fix: ${terminalText(l.fix)}`] : []),
  ]);
  return [
    `doctor: site ${report.site} (${report.at})`,
    ...rows,
    `site ${report.site}: ${countsText(report.lines)}`,
    '',
  ].join('\n');
}

export async function doctorCommand(opts: { readonly sites: readonly string[] }): Promise<number> {
  const config = loadConfig();
  const logger = createLogger({ level: 'fatal', name: 'doctor', destination: process.stderr });
  const runbooks = await loadRunbooks(config.commandsDir);
  const files = siteFilesFrom([], config.siteFile);
  const configured = files.length > 0 ? await loadSites(files) : new Map<string, SiteProfile>();
  const sites = await chosenSites(opts.sites, configured);
  const lone = Math.max(configured.size, sites.length) === 1;

  const redis = connectRedis(config.redis, 'store', logger);
  const slack =
    config.slack.botToken !== undefined
      ? new WebClient(config.slack.botToken, {
          slackApiUrl: config.slack.apiUrl,
          retryConfig: { retries: 0 },
          timeout: 10_000,
        })
      : undefined;
  try {
    const redisLines = await redisChecks(redis);
    const redisUp = !redisLines.some((l) => l.check === 'redis reachable');
    let worst = 0;
    for (const site of sites) {
      let jumphost: DoctorLine[];
      try {
        jumphost = await jumphostChecks({ site, target: resolveJumphost(site, config.jumphost), runbooks });
      } catch (err) {
        jumphost = [
          line(
            'jumphost reachable',
            'fail',
            asCodedError(err).message,
            'Fix the jumphost settings named above.',
          ),
        ];
      }
      const slackLines =
        slack !== undefined
          ? await slackChecks(slack, site, lone)
          : [line('slack', 'ok', 'not checked: SLACK_BOT_TOKEN is not set here')];
      const report: DoctorReport = {
        site: site.name,
        at: new Date().toISOString(),
        lines: [...jumphost, ...redisLines, ...slackLines],
      };
      process.stdout.write(formatDoctorReport(report));
      if (redisUp) {
        await new DoctorReports(redis, config.queue.prefix)
          .save(report)
          .catch((err: unknown) => logger.warn({ err }, 'report not kept'));
      }
      worst = Math.max(worst, doctorExitCode(worstLevel(report.lines)));
    }
    return worst;
  } finally {
    redis.disconnect();
  }
}
