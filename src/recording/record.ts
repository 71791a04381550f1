/**
 * Recording a site: the read-only runbooks (no destructive step, no parameter) run through the engine on the
 * site's jumphost exactly as `/capi diagnose` runs them, and every command's exit code and output is kept,
 * redacted before it is kept. Nothing here can change the cloud: a runbook with a destructive step is never
 * run, and a read-only one never asks for an approval.
 */
import { createHash } from 'node:crypto';
import type { SiteProfile } from '../config/site.js';
import { probeJumphost } from '../doctor/tools.js';
import { runToEnd } from '../engine/engine.js';
import { inProcessApprovals, MemoryAttempts } from '../engine/in-process.js';
import { CapiError, ErrorCode } from '../errors.js';
import { redactText } from '../redact.js';
import { newRunId } from '../run-id.js';
import type { RunbookSet } from '../runbook/load.js';
import type { Runbook } from '../runbook/model.js';
import { JUMPHOST_TOOLS } from '../runbook/tools.js';
import type { ExecRequest, ExecResult, RemoteExecutor } from '../ssh/types.js';
import type { RecordedCommand, RecordedRunbook, RecordingMeta } from './format.js';

/** Passes every command through and keeps, for those a runbook step sent, what came back (redacted). */
export class RecordingExecutor implements RemoteExecutor {
  readonly commands: RecordedCommand[] = [];

  constructor(private readonly inner: RemoteExecutor) {}

  async exec(req: ExecRequest): Promise<ExecResult> {
    const result = await this.inner.exec(req);
    const step = req.env.CAPI_STEP;
    if (step !== undefined) {
      this.commands.push({
        step,
        script_sha256: createHash('sha256').update(req.script).digest('hex'),
        exit: result.code,
        timed_out: result.timedOut,
        stdout: redactText(result.stdout),
        stderr: redactText(result.stderr),
      });
    }
    return result;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Why a runbook is not recorded, or undefined when it is. */
export function notRecordable(rb: Runbook): string | undefined {
  if (rb.exclusive || !rb.readOnly) return 'it can change the cloud';
  if (rb.params.length > 0) return `it takes ${rb.params.map((p) => p.name.toUpperCase()).join(' ')}`;
  return undefined;
}

export async function recordSite(opts: {
  readonly site: SiteProfile;
  readonly executor: RemoteExecutor;
  readonly runbooks: RunbookSet;
  /** One line per runbook as it goes. */
  readonly progress: (line: string) => void;
  /** Record only these runbooks (default: every one that can be recorded). */
  readonly only?: readonly string[];
}): Promise<{ readonly meta: RecordingMeta; readonly recorded: RecordedRunbook[] }> {
  const unknown = (opts.only ?? []).filter((name) => !opts.runbooks.runbooks.has(name));
  if (unknown.length > 0) {
    throw new CapiError(
      ErrorCode.RunbookNotFound,
      `no runbook named ${unknown.join(', ')}; available: ${[...opts.runbooks.runbooks.keys()].join(', ')}`,
    );
  }
  const facts = await probeJumphost(opts.executor);
  const recorded: RecordedRunbook[] = [];
  const skipped: Record<string, string> = {};
  for (const rb of opts.runbooks.runbooks.values()) {
    const why =
      opts.only !== undefined && !opts.only.includes(rb.name)
        ? 'not asked for (--runbook)'
        : notRecordable(rb);
    if (why !== undefined) {
      skipped[rb.name] = why;
      continue;
    }
    const executor = new RecordingExecutor(opts.executor);
    const outcome = await runToEnd({
      runId: newRunId(),
      runbook: rb,
      params: {},
      site: opts.site,
      requestedBy: 'capi-chatops record',
      executor,
      approvals: inProcessApprovals(async () => {
        throw new Error('a read-only runbook asked for an approval');
      }),
      attempts: new MemoryAttempts(),
      emit: () => undefined,
    });
    opts.progress(`${rb.name}: ${executor.commands.length} command(s) recorded (the run ${outcome.status})`);
    recorded.push({ runbook: rb.name, digest: rb.digest, commands: executor.commands });
  }
  const { jumphost: _omit, ...profile } = opts.site;
  const meta: RecordingMeta = {
    format: 1,
    site: opts.site.name,
    recorded_at: new Date().toISOString(),
    origin: 'capi-chatops record',
    tools: Object.fromEntries(
      JUMPHOST_TOOLS.map((t) => {
        const f = facts.tools[t];
        return [t, { ...(f.path ? { path: f.path } : {}), ...(f.version ? { version: f.version } : {}) }];
      }),
    ) as RecordingMeta['tools'],
    profile: profile as Record<string, unknown>,
    runbooks: recorded.map((r) => r.runbook),
    skipped,
  };
  return { meta, recorded };
}
