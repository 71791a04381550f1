/**
 * What the terminal front (submit, cancel, decide, status …) is configured by: the deployment's policy file,
 * never its caller's environment. `CAPI_APPROVERS=… capi-chatops decide …` once made anyone an approver in
 * their own shell; now the rules (approvers, operators, self-approval, who each Unix account is, trusted
 * groups, allowed_signers, the runbooks and so what counts as read-only) come from one file the deployment
 * installs, and only a caller's own connection credentials come from the environment.
 *
 * The file is /etc/capi-chatops/policy.env: fixed in the product, never a path the caller names, in
 * systemd's EnvironmentFile format (NAME=value lines, # comments), so serve and the agents load the very same
 * file (EnvironmentFile=/etc/capi-chatops/policy.env) and every front holds one policy. It holds no secret
 * (every operator reads it); secrets stay in /etc/capi-chatops/env, mode 0600. It must be owned by root and
 * writable by no one else, and so must its directory: otherwise whoever can write it writes the policy.
 *
 * Whatever the terminal concludes is an early, clear answer only: the agent judges every decision again with
 * its own configuration and verifies its signature (src/runs/judge.ts).
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { CapiError, ConfigError, ErrorCode } from '../errors.js';
import { type AppConfig, loadConfig } from './env.js';

/** The deployment's policy file. A constant: no environment variable or flag of the product moves it. */
export const POLICY_FILE = '/etc/capi-chatops/policy.env';

/**
 * Where the policy is read from. `installed` is the product's: POLICY_FILE, whose ownership is checked.
 * `development` is for the repository's own tests and demos (dev/cli-as.ts passes it; the product build,
 * which compiles src/ only, has nothing that does): a file the test wrote, owned by whoever runs the tests.
 * Someone who writes their own program around this module can of course pass anything, as they could write
 * to Redis directly: the protection is the agent's judgement and the signatures, not this file.
 */
export type PolicySource =
  | { readonly kind: 'installed' }
  | { readonly kind: 'development'; readonly file: string };

/**
 * The caller's own connection settings: where Redis is and their own credentials for it and for Slack's
 * group lookups (the Slack API URL stays the deployment's, so membership answers come from Slack).
 */
const CALLER_VARIABLES = [
  'REDIS_URL',
  'REDIS_PASSWORD',
  'REDIS_SENTINEL_PASSWORD',
  'SLACK_BOT_TOKEN',
  'LOG_LEVEL',
] as const;

/** Policy variables a caller might set hoping to change the rules; named when ignored, so nobody is misled. */
const POLICY_VARIABLES = [
  'CAPI_APPROVERS',
  'CAPI_OPERATORS',
  'CAPI_ALLOW_SELF_APPROVAL',
  'CAPI_TERMINAL_USERS',
  'CAPI_TRUST_SLACK_GROUPS',
  'CAPI_ALLOWED_SIGNERS',
  'COMMANDS_DIR',
  'SITE_FILE',
  'QUEUE_PREFIX',
  'SLACK_API_URL',
  'AUDIT_LOG_FILE',
] as const;

export interface TerminalConfig {
  readonly config: AppConfig;
  /** Where the policy came from, for messages; undefined when there is none (a read-only command). */
  readonly policyFile?: string;
  /** Policy variables set in the caller's environment that were ignored. */
  readonly ignored: readonly string[];
}

/** systemd EnvironmentFile lines: NAME=value, optional matching quotes, # comments and blank lines. */
export function parseEnvFile(text: string, source: string): Record<string, string> {
  const out: Record<string, string> = {};
  const issues: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!m) {
      issues.push(`line ${i + 1}: expected NAME=value`);
      return;
    }
    let value = (m[2] as string).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) {
      value = value.slice(1, -1);
    }
    out[m[1] as string] = value;
  });
  if (issues.length > 0) throw new ConfigError(ErrorCode.ConfigInvalid, source, issues);
  return out;
}

/** Owned by root and writable by nobody else: the file and the directory it is in. */
export async function assertRootOwned(file: string): Promise<void> {
  for (const p of [file, path.dirname(file)]) {
    const info = await stat(p);
    if (info.uid !== 0 || (info.mode & 0o022) !== 0) {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        `${p} must be owned by root and writable by root only (it is uid ${info.uid}, mode ${(info.mode & 0o777).toString(8)}): whoever can write it can make themselves an approver; ask whoever installed capi-chatops to run chown root:root ${p} && chmod go-w ${p}`,
      );
    }
  }
}

/**
 * The terminal's configuration. `readOnly`: the command acts as nobody (status, follow, timeline, export);
 * on a host without a policy file (a laptop exporting a postmortem) it then takes its connection from the
 * environment as before: it grants no right and checks none.
 */
export async function loadTerminalConfig(
  source: PolicySource,
  env: NodeJS.ProcessEnv = process.env,
  opts: { readonly readOnly?: boolean } = {},
): Promise<TerminalConfig> {
  const file = source.kind === 'installed' ? POLICY_FILE : source.file;
  if (opts.readOnly === true && source.kind === 'installed' && !existsSync(file)) {
    return { config: loadConfig(env), ignored: [] };
  }
  let text: string;
  try {
    if (source.kind === 'installed') await assertRootOwned(file);
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof CapiError) throw err;
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `cannot read the deployment's policy file ${file} (${(err as Error).message}): the terminal takes its rules from it, never from your environment; ask whoever installed capi-chatops (README, "Security: identity and authorization")`,
    );
  }
  const policy = parseEnvFile(text, file);
  const caller: Record<string, string> = {};
  for (const name of CALLER_VARIABLES) {
    const v = env[name];
    if (v !== undefined && v.trim() !== '') caller[name] = v;
  }
  const ignored = POLICY_VARIABLES.filter((name) => {
    const v = env[name];
    return v !== undefined && v.trim() !== '' && v !== policy[name];
  });
  let config: AppConfig;
  try {
    config = loadConfig({ ...policy, ...caller });
  } catch (err) {
    if (err instanceof ConfigError)
      throw new ConfigError(ErrorCode.ConfigInvalid, `${file} (and your environment)`, err.issues);
    throw err;
  }
  return { config, policyFile: file, ignored };
}
