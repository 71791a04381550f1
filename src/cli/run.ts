import { hostname, userInfo } from 'node:os';
import { loadConfig } from '../config/env.js';
import { resolveJumphost } from '../config/jumphost.js';
import { loadSiteProfile, type SiteProfile } from '../config/site.js';
import { runToEnd } from '../engine/engine.js';
import type { RunStatus } from '../engine/events.js';
import { MemoryAttempts } from '../engine/in-process.js';
import type { FinishedRun } from '../engine/outcome.js';
import { renderPlan } from '../engine/plan.js';
import { CapiError, ErrorCode } from '../errors.js';
import { createTerminalApprovals, createTerminalTimeline } from '../fronts/terminal.js';
import { newRunId } from '../run-id.js';
import { loadRunbooks } from '../runbook/load.js';
import { validateParams } from '../runbook/params.js';
import { connectSsh } from '../ssh/executor.js';

export interface TerminalRunOptions {
  readonly runbook: string;
  readonly args: readonly string[];
  readonly siteFile?: string;
  readonly site?: SiteProfile;
  readonly commandsDir?: string;
  readonly yes: boolean;
  readonly dryRun: boolean;
  readonly verbose: boolean;
}

export const EXIT_CODES: Record<RunStatus, number> = { succeeded: 0, failed: 1, denied: 3, cancelled: 130 };

export async function listRunbooks(commandsDir?: string): Promise<string> {
  const config = loadConfig();
  const { runbooks } = await loadRunbooks(commandsDir ?? config.commandsDir);
  return `${[...runbooks.values()]
    .map((rb) => {
      const args = rb.params.map((p) => ` ${p.name.toUpperCase()}`).join('');
      const params = rb.params
        .map((p) => `\n      ${p.name.toUpperCase()}: ${p.description} (${p.type})`)
        .join('');
      const needs =
        rb.requires.length > 0 ? `\n      requires on the jumphost: ${rb.requires.join(', ')}` : '';
      return `  ${rb.name}${args}${rb.readOnly ? '  (read-only)' : ''}\n      ${rb.summary}${params}${needs}`;
    })
    .join('\n')}\n`;
}

/** The terminal front: same engine, same executor as the agent; the timeline goes to stdout. */
export async function runFromTerminal(opts: TerminalRunOptions): Promise<number> {
  const config = loadConfig();
  const { runbooks } = await loadRunbooks(opts.commandsDir ?? config.commandsDir);
  const runbook = runbooks.get(opts.runbook);
  if (!runbook) {
    throw new CapiError(
      ErrorCode.RunbookNotFound,
      `no runbook named '${opts.runbook}'; available: ${[...runbooks.keys()].join(', ')}`,
    );
  }
  const siteFile = opts.siteFile ?? config.siteFile;
  if (!opts.site && siteFile === undefined) {
    throw new CapiError(ErrorCode.ConfigInvalid, 'no site profile: pass --site FILE or set SITE_FILE');
  }
  const site = opts.site ?? (await loadSiteProfile(siteFile as string));
  const params = validateParams(runbook, opts.args);

  if (opts.dryRun) {
    process.stdout.write(renderPlan(runbook, site, params));
    return 0;
  }

  const target = resolveJumphost(site, config.jumphost);
  const operator = `${userInfo().username}@${hostname()}`;
  const executor = await connectSsh({
    target,
    maxLineBytes: config.retention.maxLineBytes,
    jumphostRetentionMs: config.retention.runMs,
  });
  const approvals = createTerminalApprovals({
    input: process.stdin,
    output: process.stdout,
    operator,
    autoApprove: opts.yes,
  });
  const abort = new AbortController();
  const onSigint = () => {
    process.stdout.write('\n^C: cancelling (the running remote command is killed)...\n');
    abort.abort();
  };
  process.once('SIGINT', onSigint);
  let outcome: FinishedRun;
  try {
    outcome = await runToEnd({
      runId: newRunId(),
      runbook,
      params,
      site,
      requestedBy: operator,
      executor,
      approvals,
      attempts: new MemoryAttempts(),
      emit: createTerminalTimeline(process.stdout, { verbose: opts.verbose }),
      signal: abort.signal,
    });
  } finally {
    process.off('SIGINT', onSigint);
    approvals.close();
    await executor.close();
  }
  return EXIT_CODES[outcome.status];
}
