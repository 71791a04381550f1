/**
 * The terminal as a front on the queue: the same RunService the Slack front uses, so a run started
 * here is served by the agents, shows in `/capi status`, and is approved by the same people.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import path from 'node:path';
import { CapiError, ErrorCode } from '../errors.js';
import { describeRefusal } from '../fronts/format.js';
import { renderMarkdown } from '../fronts/postmortem.js';
import { terminalText } from '../fronts/sanitize.js';
import { createTerminalTimeline } from '../fronts/terminal.js';
import type { RunRecord, RunService } from '../queue/service.js';
import { EXIT_CODES } from './run.js';
import { withRunService } from './session.js';

/** Prints a run's timeline from its start and keeps printing until it finishes; returns its exit code. */
async function followRun(service: RunService, runId: string, verbose: boolean): Promise<number> {
  const print = createTerminalTimeline(process.stdout, { verbose });
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  try {
    for await (const entry of service.followTimeline(runId, '0', abort.signal)) {
      print(entry.event);
      if (entry.event.type === 'approval.requested') {
        process.stdout.write(
          `    waiting for an approver (Slack, or: capi-chatops decide ${entry.event.approvalId} approve --as <your Slack user id>)\n`,
        );
      }
      if (entry.event.type === 'run.finished') return EXIT_CODES[entry.event.status];
    }
  } finally {
    process.off('SIGINT', stop);
  }
  process.stdout.write(`stopped following ${runId}; the run goes on (capi-chatops follow ${runId})\n`);
  return 0;
}

export function operatorName(): string {
  return `${userInfo().username}@${hostname()}`;
}

export async function submitCommand(opts: {
  readonly runbook: string;
  readonly args: readonly string[];
  readonly siteFiles: readonly string[];
  readonly on?: string;
  readonly as?: string;
  readonly follow: boolean;
  readonly verbose: boolean;
}): Promise<number> {
  return withRunService(opts.siteFiles, async (service) => {
    const site = opts.on ?? onlySite(service);
    const record = await service.submit({
      runbook: opts.runbook,
      args: opts.args,
      site,
      requestedBy: opts.as ?? operatorName(),
    });
    process.stdout.write(`run id: ${record.runId} (${record.runbook} on ${record.site}, queued)\n`);
    return opts.follow ? await followRun(service, record.runId, opts.verbose) : 0;
  });
}

function onlySite(service: RunService): string {
  const names = service.siteNames();
  if (names.length === 1) return names[0] as string;
  throw new CapiError(
    ErrorCode.ConfigInvalid,
    names.length === 0
      ? 'no site profile: pass --site FILE or set SITE_FILE'
      : `several sites are configured (${names.join(', ')}): say which with --on SITE`,
  );
}

export function followCommand(runId: string, verbose: boolean): Promise<number> {
  return withRunService([], (service) => followRun(service, runId, verbose));
}

export function statusCommand(runId?: string): Promise<number> {
  return withRunService([], async (service) => {
    if (runId !== undefined) {
      const record = await service.getRun(runId);
      if (!record)
        throw new CapiError(ErrorCode.RunNotFound, `no run ${runId} (capi-chatops status lists them)`);
      process.stdout.write(`${describeRun(record)}\n`);
      for (const a of await service.pendingApprovals(runId)) {
        process.stdout.write(
          `${terminalText(
            `  waiting for approval ${a.approvalId}: ${a.request.summary} (expires ${a.expiresAt})`,
          )}\n`,
        );
      }
      return 0;
    }
    const runs = await service.listRuns({ limit: 20 });
    if (runs.length === 0) process.stdout.write('no runs yet\n');
    for (const r of runs) process.stdout.write(`${describeRun(r)}\n`);
    return 0;
  });
}

function describeRun(r: RunRecord): string {
  const step = r.currentStep ? ` at ${r.currentStep}` : '';
  const cancel = r.cancelRequestedBy ? ` (cancel asked by ${r.cancelRequestedBy})` : '';
  const message = r.message ? `: ${r.message}` : '';
  // Names, messages and who asked come from the cloud and Slack: nothing in them may drive the terminal.
  return terminalText(
    `run id: ${r.runId}  ${r.status}${step}  ${r.runbook} on ${r.site}, by ${r.requestedBy}, ${r.createdAt}${cancel}${message}`,
  );
}

export function timelineCommand(runId: string): Promise<number> {
  return withRunService([], async (service) => {
    const entries = await service.readTimeline(runId);
    if (entries.length === 0) throw new CapiError(ErrorCode.RunNotFound, `run ${runId} has no timeline`);
    process.stdout.write(renderMarkdown(entries));
    return 0;
  });
}

/**
 * Writes a run's postmortem before its retention runs out: `<run>.md` (the timeline as Markdown) and
 * `<run>.json` (the record, every approval with its decision, every destructive attempt, every event).
 */
export function exportCommand(runId: string, outDir: string): Promise<number> {
  return withRunService([], async (service) => {
    const archive = await service.archiveRun(runId);
    if (!archive) {
      throw new CapiError(
        ErrorCode.RunNotFound,
        `no run ${runId}: a wrong id, or it finished longer ago than RUN_RETENTION and has expired (capi-chatops status lists runs)`,
      );
    }
    const { record, approvals, attempts, timeline, expiresInMs } = archive;
    const exported = {
      format: 'capi-chatops-run/1',
      exportedAt: new Date().toISOString(),
      record,
      approvals,
      attempts,
      timeline,
    };
    await mkdir(outDir, { recursive: true });
    const md = path.join(outDir, `${runId}.md`);
    const json = path.join(outDir, `${runId}.json`);
    await writeFile(md, renderMarkdown(timeline));
    await writeFile(json, `${JSON.stringify(exported, null, 2)}\n`);
    const expiry =
      expiresInMs !== null
        ? `it expires from Redis on ${new Date(Date.now() + expiresInMs).toISOString()}`
        : 'it does not expire yet (not finished)';
    process.stdout.write(`wrote ${md} and ${json}; ${expiry}\n`);
    return 0;
  });
}

export function cancelCommand(runId: string, as: string | undefined): Promise<number> {
  return withRunService([], async (service) => {
    const record = await service.cancel(runId, as ?? operatorName());
    process.stdout.write(
      `cancel requested for run ${record.runId} (${record.status}); its agent stops it now\n`,
    );
    return 0;
  });
}

export function decideCommand(opts: {
  readonly approvalId: string;
  readonly verdict: string;
  readonly as: string | undefined;
  readonly groups: readonly string[];
}): Promise<number> {
  if (opts.verdict !== 'approve' && opts.verdict !== 'deny') {
    throw new CapiError(ErrorCode.ConfigInvalid, `say approve or deny, not '${opts.verdict}'`);
  }
  if (opts.as === undefined) {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      'say who decides: --as <your Slack user id> (it is checked against CAPI_APPROVERS)',
    );
  }
  const userId = opts.as;
  return withRunService([], async (service) => {
    const result = await service.decide(
      opts.approvalId,
      { userId, groupIds: opts.groups },
      opts.verdict === 'approve',
      'terminal',
    );
    switch (result.outcome) {
      case 'decided':
        process.stdout.write(`${opts.verdict === 'approve' ? 'approved' : 'denied'}: the run continues\n`);
        return 0;
      case 'already_decided':
      case 'expired': {
        const d = result.approval.decision;
        process.stdout.write(
          `already decided: ${d?.approved ? 'approved' : d?.reason === 'expired' ? 'expired' : 'denied'} by ${d?.by} at ${d?.at}\n`,
        );
        return 1;
      }
      case 'superseded':
        process.stderr.write(
          `superseded: this request was replaced (${result.approval.superseded?.why === 'stale' ? 'it was approved too long ago' : 'the action changed'}); decide the newer request (capi-chatops status RUN lists it)\n`,
        );
        return 1;
      case 'refused':
        process.stderr.write(`refused: ${describeRefusal(result.refusal)}\n`);
        return 3;
      case 'not_found':
        process.stderr.write(
          `no approval ${opts.approvalId} (capi-chatops status RUN lists a run's pending ones)\n`,
        );
        return 2;
    }
  });
}
