/**
 * Start-up checks of a whole deployment, after every variable parsed on its own (env.ts): the combinations
 * that cannot work or are unsafe. Each problem is named with its fix, all at once, and the process exits 2
 * before it takes a command, a click or a job. Until now an empty CAPI_APPROVERS started fine and then refused
 * every click; a site without a pinned host key failed only when its first run tried to connect.
 */
import { CapiError, ConfigError, ErrorCode } from '../errors.js';
import { type DecisionKeys, loadDecisionKeys } from '../signing/keys.js';
import { type AppConfig, loadConfig } from './env.js';
import { resolveJumphost } from './jumphost.js';
import type { SiteProfile } from './site.js';

/** `serve` takes Slack commands and clicks and runs an agent; `agent` only runs the sites' jobs. */
export type DeploymentRole = 'serve' | 'agent';

export function deploymentProblems(
  config: AppConfig,
  sites: ReadonlyMap<string, SiteProfile>,
  role: DeploymentRole,
): string[] {
  const problems: string[] = [];
  const { approval, decisions } = config;
  if (!approval.trustSlackGroups) {
    for (const [name, list] of [
      ['CAPI_APPROVERS', approval.approvers],
      ['CAPI_OPERATORS', approval.operators],
    ] as const) {
      const groups = list.filter((id) => id.startsWith('S'));
      if (groups.length > 0) {
        problems.push(
          `${name} names user groups (${groups.join(', ')}) and CAPI_TRUST_SLACK_GROUPS is not true: by default any workspace member can edit a user group and so make themselves an approver; list user ids (U…), or restrict user-group editing to admins (Slack admin settings) and set CAPI_TRUST_SLACK_GROUPS=true`,
        );
      }
    }
  }
  if (role === 'agent') {
    // The agent judges every decision itself, with its own policy and keys (src/runs/judge.ts).
    if (approval.approvers.length === 0) {
      problems.push(
        'CAPI_APPROVERS is empty: this agent judges every decision against it and would refuse every destructive step; set it as serve has it, e.g. CAPI_APPROVERS=U0456LEAD',
      );
    }
    if (decisions.verifyKeyFile === undefined && decisions.allowedSignersFile === undefined) {
      problems.push(
        "CAPI_DECISION_VERIFY_KEY is not set: this agent could verify no decision; set it to serve's public key (openssl pkey -in decision.key -pubout), and CAPI_ALLOWED_SIGNERS for decisions from the terminal",
      );
    }
  }
  if (role === 'serve') {
    const { slack } = config;
    if (decisions.signingKeyFile === undefined) {
      problems.push(
        'CAPI_DECISION_SIGNING_KEY is not set: serve signs every decision taken in Slack with it and the agents accept no other; make one with `openssl genpkey -algorithm ed25519 -out /etc/capi-chatops/decision.key`, readable by the service account only',
      );
    }
    if (approval.operators.length === 0) {
      problems.push(
        'CAPI_OPERATORS is empty: nobody could start or cancel a run; list Slack user ids (U…) or user-group ids (S…), e.g. CAPI_OPERATORS=S0123ONCALL',
      );
    }
    if (approval.approvers.length === 0) {
      problems.push(
        'CAPI_APPROVERS is empty: every destructive step would be refused; list Slack user ids (U…) or user-group ids (S…), e.g. CAPI_APPROVERS=S0456LEADS',
      );
    }
    if (slack.botToken === undefined) {
      problems.push(
        'SLACK_BOT_TOKEN is not set: the Bot User OAuth Token (xoxb-…, OAuth & Permissions page)',
      );
    }
    if (config.ops.alertWebhookToken !== undefined && config.ops.metricsPort === undefined) {
      problems.push(
        "ALERT_WEBHOOK_TOKEN is set but METRICS_PORT is not: Alertmanager's webhook is served on the ops port only (never on PORT, which faces Slack); set METRICS_PORT, e.g. 9464",
      );
    }
    if (slack.appToken === undefined && slack.signingSecret === undefined) {
      problems.push(
        'SLACK_SIGNING_SECRET is not set: HTTP mode verifies every request with it (Basic Information > App Credentials), or set SLACK_APP_TOKEN (xapp-…) for Socket Mode',
      );
    }
  }
  for (const site of sites.values()) {
    try {
      resolveJumphost(site, config.jumphost);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const issue of err.issues) problems.push(`site ${site.name}: ${issue}`);
    }
  }
  return problems;
}

/** The variable an issue is about (`SLACK_SIGNING_SECRET: must be ...` -> SLACK_SIGNING_SECRET). */
function variableOf(issue: string): string | undefined {
  return /^([A-Z][A-Z0-9_]+)\b/.exec(issue)?.[1];
}

/**
 * The configuration and sites of a `serve` or `agent` process, or one ConfigError naming every problem:
 * variables of the wrong shape, unreadable site profiles and the deployment checks above, together, so an
 * operator fixes the whole .env in one go. A variable of the wrong shape is left out to run the other checks
 * (and is not reported a second time as missing).
 */
export async function loadDeployment(
  role: DeploymentRole,
  loadSites: (config: AppConfig) => Promise<Map<string, SiteProfile>>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ config: AppConfig; sites: Map<string, SiteProfile>; keys: DecisionKeys }> {
  const problems: string[] = [];
  let config: AppConfig;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(...err.issues);
    const bad = new Set(err.issues.map(variableOf));
    const rest = Object.fromEntries(Object.entries(env).filter(([name]) => !bad.has(name)));
    try {
      config = loadConfig(rest);
    } catch {
      throw new ConfigError(ErrorCode.ConfigInvalid, `this ${role} deployment`, problems);
    }
  }
  let sites = new Map<string, SiteProfile>();
  try {
    sites = await loadSites(config);
  } catch (err) {
    if (err instanceof ConfigError) problems.push(...err.issues.map((issue) => `${err.source}: ${issue}`));
    else if (err instanceof CapiError) problems.push(err.message);
    else throw err;
  }
  let keys: DecisionKeys = { verifiers: {} };
  try {
    keys = await loadDecisionKeys(config.decisions);
  } catch (err) {
    if (err instanceof ConfigError) problems.push(...err.issues.map((issue) => `${err.source}: ${issue}`));
    else if (err instanceof CapiError) problems.push(err.message);
    else throw err;
  }
  const reported = new Set(problems.map(variableOf).filter((v) => v !== undefined));
  for (const problem of deploymentProblems(config, sites, role)) {
    const variable = variableOf(problem);
    if (variable === undefined || !reported.has(variable)) problems.push(problem);
  }
  if (problems.length > 0)
    throw new ConfigError(ErrorCode.ConfigInvalid, `this ${role} deployment`, problems);
  return { config, sites, keys };
}
