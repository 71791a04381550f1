import type { Logger } from 'pino';
import { resolveJumphost } from '../config/jumphost.js';
import type { SiteProfile } from '../config/site.js';
import { preflight } from '../engine/preflight.js';
import { withPreamble } from '../engine/script.js';
import { asCodedError } from '../errors.js';
import type { Metrics } from '../ops/metrics.js';
import { PICK_MAX_ITEMS, type PickJob, type PickResult } from '../queue/job.js';
import { redactText } from '../redact.js';
import type { RunbookSet } from '../runbook/load.js';
import { checkParamValue } from '../runbook/params.js';
import { connectSsh } from '../ssh/executor.js';
import type { JumphostTarget } from '../ssh/types.js';

export interface PickDeps {
  readonly sites: ReadonlyMap<string, SiteProfile>;
  readonly runbooks: RunbookSet;
  readonly jumphostEnv: Partial<JumphostTarget>;
  readonly logger: Logger;
  readonly metrics?: Metrics;
}

/**
 * Runs a parameter's read-only listing on the site's jumphost and returns the candidates: one per output
 * line, the first word the value (kept only when it is a valid value of the parameter's type), the rest its
 * label. Failures come back as `{ error }` for the picker to show; nothing here starts a run.
 */
export async function runPick(deps: PickDeps, job: PickJob, jobId: string): Promise<PickResult> {
  const site = deps.sites.get(job.site);
  const runbook = deps.runbooks.runbooks.get(job.runbook);
  const param = runbook?.params.find((p) => p.name === job.param);
  if (!site) return { error: `this agent has no site profile named ${job.site}` };
  if (!runbook || !param?.pick) return { error: `${job.runbook} offers no list for ${job.param}` };
  const pick = param.pick;
  let ssh: Awaited<ReturnType<typeof connectSsh>>;
  try {
    ssh = await connectSsh({ target: resolveJumphost(site, deps.jumphostEnv) });
    deps.metrics?.sshConnects.inc({ result: 'ok' });
  } catch (err) {
    deps.metrics?.sshConnects.inc({ result: 'error' });
    return { error: `cannot reach the jumphost: ${asCodedError(err).message}`.slice(0, 500) };
  }
  try {
    // The site's values with ~ resolved on the jumphost, as a run gets them.
    const { env } = await preflight({ runbook, executor: ssh, site }, new AbortController().signal);
    const result = await ssh.exec({
      script: withPreamble(pick.scope, pick.script),
      // Like every remote command: the jumphost's own audit can say what issued it.
      env: {
        ...env,
        CAPI_RUN_ID: `pick-${jobId}`,
        CAPI_STEP: `pick/${runbook.name}/${param.name}`,
      },
      timeoutMs: pick.timeoutMs,
    });
    if (result.code !== 0 || result.timedOut) {
      const last = redactText(result.stderr.trim().split('\n').at(-1) ?? '').slice(0, 300);
      return {
        error: `listing ${pick.title.toLowerCase()} failed (${result.timedOut ? 'timed out' : `exit ${result.code}`})${last ? `: ${last}` : ''}`,
      };
    }
    const items: { value: string; label: string }[] = [];
    let skipped = 0;
    for (const line of result.stdout.split('\n')) {
      const [value, ...rest] = line.trim().split(/\s+/);
      if (value === undefined || value === '') continue;
      try {
        checkParamValue(param.name, param.type, value);
      } catch {
        skipped += 1;
        continue;
      }
      if (items.length >= PICK_MAX_ITEMS || items.some((i) => i.value === value)) {
        skipped += 1;
        continue;
      }
      items.push({ value, label: redactText(rest.join(' ')).slice(0, 150) });
    }
    return { items, skipped };
  } catch (err) {
    deps.logger.warn({ runbook: runbook.name, err }, 'pick listing failed');
    return { error: `listing failed: ${asCodedError(err).message}`.slice(0, 500) };
  } finally {
    await ssh.close();
  }
}
