/**
 * The CLIs the runbooks call on the jumphost, and which of them a piece of shell names. A step needs the
 * tools its commands (scope preamble, command, guards, read-back) call; a runbook's `requires:` lists the
 * ones it cannot do without.
 */
export const JUMPHOST_TOOLS = ['openstack', 'kubectl', 'ssh', 'juju'] as const;
export type JumphostTool = (typeof JUMPHOST_TOOLS)[number];

/**
 * A tool is named where it could be a command word: not inside a longer word or path (`sshd`, `~/.ssh/`,
 * `ssh-keygen`, `$MGMT_SSH_KEY`), and `ssh` not as `juju ssh` (a juju subcommand, not the ssh client).
 */
const CALLS: Readonly<Record<JumphostTool, RegExp>> = Object.fromEntries(
  JUMPHOST_TOOLS.map((tool) => [
    tool,
    new RegExp(`(?<![\\w./$-])${tool === 'ssh' ? '(?<!\\bjuju\\s+)' : ''}${tool}(?![\\w./-])`),
  ]),
) as Record<JumphostTool, RegExp>;

/** The tools a shell text calls, in JUMPHOST_TOOLS order; comment lines do not count. */
export function toolsIn(...scripts: readonly string[]): JumphostTool[] {
  const text = scripts
    .join('\n')
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n');
  return JUMPHOST_TOOLS.filter((tool) => CALLS[tool].test(text));
}

/** "juju is" / "kubectl and juju are": what a person reads about missing tools. */
export function toolsPhrase(tools: readonly string[]): string {
  if (tools.length <= 1) return `${tools[0] ?? 'nothing'} is`;
  return `${tools.slice(0, -1).join(', ')} and ${tools.at(-1)} are`;
}

/** Why steps needing these tools cannot run: "juju is not on the jumphost's PATH". */
export function notOnPath(tools: readonly string[]): string {
  return `${toolsPhrase(tools)} not on the jumphost's PATH`;
}
