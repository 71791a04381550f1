import { WebClient } from '@slack/web-api';
import { pino } from 'pino';
import { loadTerminalConfig, type PolicySource } from '../config/terminal.js';
import { createLogger } from '../log.js';
import { createAuditLog } from '../ops/audit.js';
import { connectRedis } from '../redis/connection.js';
import { loadRunbooks } from '../runbook/load.js';
import { RunService } from '../service/run-service.js';
import { type AllowedSigners, loadAllowedSigners } from '../signing/allowed-signers.js';
import { GroupMembership } from '../slack/membership.js';
import { loadSites, siteFilesFrom } from './agent.js';
import { runServiceSettings } from './service-settings.js';
import {
  type TerminalPerson,
  terminalPerson,
  type UnixAccount,
  type UnixUserSource,
} from './terminal-identity.js';

/** Where a terminal command is: who runs it, and where the deployment's rules are read from. */
export interface Terminal {
  readonly unixUser: UnixUserSource;
  readonly policy: PolicySource;
}

/** What a terminal command gets besides the service: who runs it, and the rules it is held to. */
export interface TerminalSession {
  /** The person behind this Unix account (CAPI_TERMINAL_USERS), or a refusal naming the fix. */
  identify(account: UnixAccount): TerminalPerson;
  readonly operators: readonly string[];
  readonly approvers: readonly string[];
  readonly trustSlackGroups: boolean;
  /** The deployment's allowed_signers (CAPI_ALLOWED_SIGNERS), when it has one: what the agents verify with. */
  readonly allowedSigners?: AllowedSigners;
  /** The policy file the rules came from, for messages. */
  readonly policyFile: string;
}

/** What a command does: `read` commands act as nobody and may run without the policy file. */
export type CommandKind = 'read' | 'act';

/**
 * Wires one terminal command to the queue: the deployment's configuration (its policy file, never the
 * caller's environment: config/terminal.ts), a Redis connection and the RunService every front uses; closed
 * again when the command is done. The commands themselves see only the RunService.
 */
export async function withRunService<T>(
  terminal: Terminal,
  kind: CommandKind,
  siteFiles: readonly string[],
  fn: (service: RunService, session: TerminalSession) => Promise<T>,
): Promise<T> {
  const loaded = await loadTerminalConfig(terminal.policy, process.env, { readOnly: kind === 'read' });
  const { config, ignored } = loaded;
  const policyFile = loaded.policyFile ?? 'your environment (no policy file: read-only commands only)';
  if (ignored.length > 0) {
    process.stderr.write(
      `note: ignoring ${ignored.join(', ')} from your environment: the terminal's rules come from ${policyFile}\n`,
    );
  }
  const logger = createLogger({ level: 'warn', name: 'cli', destination: process.stderr });
  const files = siteFilesFrom(siteFiles, config.siteFile);
  const sites = files.length > 0 ? await loadSites(files) : new Map();
  const allowedSigners =
    config.decisions.allowedSignersFile !== undefined
      ? await loadAllowedSigners(config.decisions.allowedSignersFile)
      : undefined;
  const redis = connectRedis(config.redis, 'store', logger);
  const service = new RunService({
    ...runServiceSettings(config),
    redis,
    runbooks: await loadRunbooks(config.commandsDir),
    sites,
    logger,
    // Runs asked for, decisions and cancels from a terminal are audited like Slack's; stdout is the user's.
    audit: createAuditLog({
      destination: pino.destination({ dest: 2, sync: true }),
      ...(config.ops.auditLogFile !== undefined ? { file: config.ops.auditLogFile } : {}),
    }),
  });
  // Group membership is read from Slack, as the Slack front reads it; never typed on the command line.
  const membership =
    config.slack.botToken !== undefined && config.approval.trustSlackGroups
      ? new GroupMembership(
          new WebClient(config.slack.botToken, {
            slackApiUrl: config.slack.apiUrl,
            retryConfig: { retries: 1 },
            timeout: 10_000,
          }),
        )
      : undefined;
  const session: TerminalSession = {
    identify: (account) => {
      // Only a policy file names people; a command that acts on someone's behalf has read one.
      if (loaded.policyFile === undefined)
        throw new Error('a read-only terminal command has no one to identify');
      return terminalPerson(account, config.terminalUsers, membership, config.approval.trustSlackGroups);
    },
    operators: config.approval.operators,
    approvers: config.approval.approvers,
    trustSlackGroups: config.approval.trustSlackGroups,
    ...(allowedSigners !== undefined ? { allowedSigners } : {}),
    policyFile,
  };
  try {
    return await fn(service, session);
  } finally {
    await service.close();
    redis.disconnect();
  }
}
