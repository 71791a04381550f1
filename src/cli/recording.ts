/**
 * `capi-chatops record --site NAME --out DIR` and `capi-chatops check-recording DIR`: a site's real outputs,
 * kept (redacted), and the runbooks' parsers checked against them.
 */
import { existsSync } from 'node:fs';
import { loadConfig } from '../config/env.js';
import { resolveJumphost } from '../config/jumphost.js';
import { loadSiteProfile, type SiteProfile } from '../config/site.js';
import { CapiError, ErrorCode } from '../errors.js';
import { terminalText } from '../fronts/sanitize.js';
import { checkRecording, formatRecordingCheck } from '../recording/check.js';
import { readRecording, writeRecording } from '../recording/format.js';
import { recordSite } from '../recording/record.js';
import { loadRunbooks } from '../runbook/load.js';
import { connectSsh } from '../ssh/executor.js';
import { loadSites, siteFilesFrom } from './agent.js';

/** A site name among SITE_FILE's profiles, or a profile file. */
async function oneSite(arg: string | undefined, siteFile: string | undefined): Promise<SiteProfile> {
  const files = siteFilesFrom([], siteFile);
  const configured = files.length > 0 ? await loadSites(files) : new Map<string, SiteProfile>();
  if (arg === undefined) {
    if (configured.size === 1) return [...configured.values()][0] as SiteProfile;
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `say which site: --site NAME (SITE_FILE has ${[...configured.keys()].join(', ') || 'none'}) or --site FILE`,
    );
  }
  const named = configured.get(arg);
  if (named !== undefined) return named;
  if (existsSync(arg)) return loadSiteProfile(arg);
  throw new CapiError(
    ErrorCode.ConfigInvalid,
    `--site ${arg}: no site of that name (SITE_FILE has ${[...configured.keys()].join(', ') || 'none'}) and no such profile file`,
  );
}

export async function recordCommand(opts: {
  readonly site?: string;
  readonly out: string;
  readonly runbooks: readonly string[];
}): Promise<number> {
  const config = loadConfig();
  const runbooks = await loadRunbooks(config.commandsDir);
  const site = await oneSite(opts.site, config.siteFile);
  const executor = await connectSsh({ target: resolveJumphost(site, config.jumphost) });
  try {
    const { meta, recorded } = await recordSite({
      site,
      executor,
      runbooks,
      progress: (line) => process.stdout.write(`${terminalText(line)}\n`),
      ...(opts.runbooks.length > 0 ? { only: opts.runbooks } : {}),
    });
    if (recorded.length === 0) {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        'nothing to record: no read-only runbook without parameters was asked for',
      );
    }
    await writeRecording(opts.out, meta, recorded);
    for (const [name, why] of Object.entries(meta.skipped)) {
      process.stdout.write(`${name}: not recorded (${why})\n`);
    }
    process.stdout.write(
      `recorded ${recorded.length} runbook(s) of site ${site.name} in ${opts.out}; outputs are redacted. Check them: capi-chatops check-recording ${opts.out}\n`,
    );
    return 0;
  } finally {
    await executor.close();
  }
}

export async function checkRecordingCommand(dir: string): Promise<number> {
  const config = loadConfig();
  const runbooks = await loadRunbooks(config.commandsDir);
  const recording = await readRecording(dir);
  const check = checkRecording(recording, runbooks);
  process.stdout.write(terminalText(formatRecordingCheck(recording, check)));
  return check.problems === 0 ? 0 : 1;
}
