/**
 * The jumphost CLIs: where each is on the PATH capi-chatops's commands get, its version, and where an
 * interactive login shell would find one that PATH lacks (the green-in-the-shell trap of DOCFIX-035:
 * /snap/bin or /usr/local/bin added by a profile script only a login shell reads). Read by `doctor` and
 * stored with every recording.
 */
import { redactText } from '../redact.js';
import { JUMPHOST_TOOLS, type JumphostTool } from '../runbook/tools.js';
import type { RemoteExecutor } from '../ssh/types.js';

export interface ToolFacts {
  /** Its path on the PATH commands get; undefined when it is not there. */
  readonly path?: string;
  /** Its version as the tool prints it (`7.4.0`, `v1.32.3`, `9.6p1`, `3.4.2`). */
  readonly version?: string;
  /** Where the user's login shell finds it, when the commands' PATH does not. */
  readonly loginPath?: string;
}

export interface JumphostFacts {
  readonly home: string;
  /** The PATH commands get (non-interactive SSH sessions). */
  readonly path: string;
  /** The account's login shell from the passwd database. */
  readonly shell: string;
  readonly bash: boolean;
  readonly tools: Readonly<Record<JumphostTool, ToolFacts>>;
}

/** Each tool's version command; every one answers on stdout or stderr within a second on a healthy host. */
const VERSION_COMMAND: Readonly<Record<JumphostTool, string>> = {
  openstack: 'openstack --version',
  kubectl: 'kubectl version --client',
  ssh: 'ssh -V',
  juju: 'juju version',
};

const VERSION_PATTERN: Readonly<Record<JumphostTool, RegExp>> = {
  openstack: /\bopenstack (\d+\.\d+\.\d+)/,
  kubectl: /Client Version: (v\d+\.\d+\.\d+)/,
  ssh: /OpenSSH_(\d+\.\d+(?:p\d+)?)/,
  juju: /^(\d+\.\d+(?:\.\d+)?)/m,
};

/** One remote command: `key<TAB>value` lines a parser below reads. Nothing here changes the jumphost. */
const PROBE = [
  'printf "home\\t%s\\n" "$HOME"',
  'printf "path\\t%s\\n" "$PATH"',
  'printf "shell\\t%s\\n" "$(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f7)"',
  'command -v bash >/dev/null 2>&1 && printf "bash\\tyes\\n"',
  `for t in ${JUMPHOST_TOOLS.join(' ')}; do`,
  '  if p=$(command -v "$t" 2>/dev/null); then',
  '    printf "tool.%s\\t%s\\n" "$t" "$p"',
  '    case $t in',
  ...JUMPHOST_TOOLS.map(
    (t) =>
      `      ${t}) v=$(timeout 20 ${VERSION_COMMAND[t]} 2>&1 </dev/null | head -3 | tr '\\n\\t' '  ') ;;`,
  ),
  '    esac',
  '    printf "version.%s\\t%s\\n" "$t" "$v"',
  '  else',
  // The login shell, as an operator who logs in interactively gets it: does it know a tool our PATH lacks?
  '    s=$(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f7)',
  '    [ -n "$s" ] || s=/bin/sh',
  '    l=$(timeout 10 "$s" -lc "command -v $t" </dev/null 2>/dev/null | tail -1)',
  '    printf "login.%s\\t%s\\n" "$t" "$l"',
  '  fi',
  'done',
].join('\n');

export async function probeJumphost(executor: RemoteExecutor, signal?: AbortSignal): Promise<JumphostFacts> {
  const result = await executor.exec({
    script: PROBE,
    env: {},
    timeoutMs: 120_000,
    ...(signal !== undefined ? { signal } : {}),
  });
  const values = new Map<string, string>();
  for (const l of result.stdout.split('\n')) {
    const tab = l.indexOf('\t');
    if (tab > 0) values.set(l.slice(0, tab), redactText(l.slice(tab + 1)).trim());
  }
  const home = values.get('home') ?? '';
  if (result.code !== 0 || !home.startsWith('/')) {
    throw new Error(
      `the jumphost's probe failed (exit ${result.code}): ${redactText(result.stderr.trim()).slice(0, 300)}`,
    );
  }
  const tools = Object.fromEntries(
    JUMPHOST_TOOLS.map((t) => {
      const path = values.get(`tool.${t}`);
      const printed = values.get(`version.${t}`) ?? '';
      const version = VERSION_PATTERN[t].exec(printed)?.[1];
      const loginPath = values.get(`login.${t}`);
      const facts: ToolFacts = {
        ...(path ? { path } : {}),
        ...(version !== undefined ? { version } : {}),
        ...(loginPath ? { loginPath } : {}),
      };
      return [t, facts];
    }),
  ) as Record<JumphostTool, ToolFacts>;
  return {
    home,
    path: values.get('path') ?? '',
    shell: values.get('shell') ?? '',
    bash: values.get('bash') === 'yes',
    tools,
  };
}

/**
 * The CLI versions the runbooks' parsers were checked against: the formats the simulator reproduces and the
 * shipped recording holds. A site on another version may print another shape: record it and check it.
 */
export const TESTED_VERSIONS: Readonly<
  Record<JumphostTool, { readonly match: RegExp; readonly text: string }>
> = {
  openstack: { match: /^7\./, text: 'openstack 7.x (python-openstackclient)' },
  kubectl: { match: /^v1\.(29|3[0-3])\./, text: 'kubectl v1.29 to v1.33' },
  ssh: { match: /^(8|9|10)\./, text: 'OpenSSH 8 to 10' },
  juju: { match: /^3\./, text: 'juju 3.x' },
};
