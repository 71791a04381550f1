import { type SiteProfile, siteEnv } from '../config/site.js';
import { redactText } from '../redact.js';
import { leafSteps } from '../runbook/load.js';
import type { Runbook } from '../runbook/model.js';
import type { RemoteExecutor } from '../ssh/types.js';
import { cancelMessage, Stop } from './control.js';

/**
 * Before the first step: learns the jumphost's $HOME (site paths are written ~/... and a quoted value
 * would keep the ~ literally) and checks that the CLIs the runbook uses are on the login PATH. Returns
 * the site's environment with ~ resolved.
 */
export async function preflight(
  opts: { readonly runbook: Runbook; readonly executor: RemoteExecutor; readonly site: SiteProfile },
  signal: AbortSignal,
): Promise<{ home: string; tools: string[]; env: Record<string, string> }> {
  const text = leafSteps(opts.runbook.steps)
    .map((s) => `${s.scope?.preamble ?? ''}\n${s.command.script}`)
    .join('\n');
  const tools = ['openstack', 'kubectl', 'ssh', 'juju'].filter((t) => new RegExp(`\\b${t}\\b`).test(text));
  const result = await opts.executor.exec({
    script:
      'printf "%s\\n" "$HOME"; for t in $CAPI_TOOLS; do command -v "$t" >/dev/null 2>&1 || echo "missing $t"; done',
    env: { CAPI_TOOLS: tools.join(' ') },
    timeoutMs: 30_000,
    signal,
  });
  if (result.cancelled) throw new Stop('cancelled', cancelMessage(signal));
  const lines = result.stdout.split('\n').filter((l) => l !== '');
  const home = lines[0] ?? '';
  const missing = lines.slice(1).map((l) => l.replace(/^missing /, ''));
  if (result.code !== 0 || !home.startsWith('/')) {
    throw new Stop(
      'failed',
      `preflight on the jumphost failed (exit ${result.code}): ${redactText(result.stderr.trim())}`,
    );
  }
  if (missing.length > 0) {
    throw new Stop(
      'failed',
      `the jumphost lacks ${missing.join(', ')} on its PATH: install it or fix the login PATH`,
    );
  }
  const env = siteEnv(opts.site);
  // Site paths are written ~/...; a quoted value would keep the ~ literally, so resolve it here.
  for (const [k, v] of Object.entries(env)) if (v.startsWith('~/')) env[k] = `${home}/${v.slice(2)}`;
  return { home, tools, env };
}
