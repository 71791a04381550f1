import { type SiteProfile, siteEnv } from '../config/site.js';
import { redactText } from '../redact.js';
import type { Runbook } from '../runbook/model.js';
import { notOnPath } from '../runbook/tools.js';
import type { RemoteExecutor } from '../ssh/types.js';
import { cancelMessage, Stop } from './control.js';

/**
 * Before the first step: learns the jumphost's $HOME (site paths are written ~/... and a quoted value
 * would keep the ~ literally) and which of the CLIs the runbook's steps call are on the PATH its commands
 * get. A tool the runbook `requires:` being missing refuses the run here, before any step; any other
 * missing tool only makes the steps that call it not observable (observability.ts). Returns the tools
 * found and missing, and the site's environment with ~ resolved.
 */
export async function preflight(
  opts: { readonly runbook: Runbook; readonly executor: RemoteExecutor; readonly site: SiteProfile },
  signal: AbortSignal,
): Promise<{ home: string; tools: string[]; missing: string[]; env: Record<string, string> }> {
  const wanted = opts.runbook.tools;
  const result = await opts.executor.exec({
    script:
      'printf "%s\\n" "$HOME"; for t in $CAPI_TOOLS; do command -v "$t" >/dev/null 2>&1 || echo "missing $t"; done',
    env: { CAPI_TOOLS: wanted.join(' ') },
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
  const required = missing.filter((t) => (opts.runbook.requires as readonly string[]).includes(t));
  if (required.length > 0) {
    throw new Stop(
      'failed',
      `${opts.runbook.name} cannot start: ${notOnPath(required)} and it requires ${required.length > 1 ? 'them' : 'it'}; nothing was run. Install ${required.join(', ')} on the jumphost or fix the PATH its non-interactive SSH sessions get (capi-chatops doctor checks it)`,
    );
  }
  return {
    home,
    tools: wanted.filter((t) => !missing.includes(t)),
    missing,
    env: siteEnvAt(opts.site, home),
  };
}

/** The site's values as remote commands get them, `~/` resolved against the jumphost's $HOME. */
export function siteEnvAt(site: SiteProfile, home: string): Record<string, string> {
  const env = siteEnv(site);
  // Site paths are written ~/...; a quoted value would keep the ~ literally, so resolve it here.
  for (const [k, v] of Object.entries(env)) if (v.startsWith('~/')) env[k] = `${home}/${v.slice(2)}`;
  return env;
}
