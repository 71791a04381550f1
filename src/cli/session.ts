import { WebClient } from '@slack/web-api';
import { pino } from 'pino';
import { loadConfig } from '../config/env.js';
import { createLogger } from '../log.js';
import { createAuditLog } from '../ops/audit.js';
import { connectRedis } from '../queue/redis.js';
import { RunService } from '../queue/service.js';
import { loadRunbooks } from '../runbook/load.js';
import { GroupMembership } from '../slack/membership.js';
import { loadSites, siteFilesFrom } from './agent.js';
import { type TerminalPerson, terminalPerson } from './terminal-identity.js';

/** What a terminal command gets besides the service: who runs it, and the rules it is held to. */
export interface TerminalSession {
  /** The person behind this Unix user (CAPI_TERMINAL_USERS), or a refusal naming the fix. */
  identify(unixUser: string): TerminalPerson;
  readonly operators: readonly string[];
  readonly approvers: readonly string[];
}

/**
 * Wires one terminal command to the queue: configuration, a Redis connection and the RunService every
 * front uses; closed again when the command is done. The commands themselves see only the RunService.
 */
export async function withRunService<T>(
  siteFiles: readonly string[],
  fn: (service: RunService, session: TerminalSession) => Promise<T>,
): Promise<T> {
  const config = loadConfig();
  const logger = createLogger({ level: 'warn', name: 'cli', destination: process.stderr });
  const files = siteFilesFrom(siteFiles, config.siteFile);
  const sites = files.length > 0 ? await loadSites(files) : new Map();
  const redis = connectRedis(config.redis, 'store', logger);
  const service = new RunService({
    redis,
    prefix: config.queue.prefix,
    runbooks: await loadRunbooks(config.commandsDir),
    sites,
    approvalTimeoutMs: config.approval.timeoutMs,
    approvers: config.approval.approvers,
    allowSelfApproval: config.approval.allowSelfApproval,
    logger,
    // Runs asked for, decisions and cancels from a terminal are audited like Slack's; stdout is the user's.
    audit: createAuditLog({
      destination: pino.destination({ dest: 2, sync: true }),
      ...(config.ops.auditLogFile !== undefined ? { file: config.ops.auditLogFile } : {}),
    }),
    waitReplicas: config.redis.waitReplicas,
  });
  // Group membership is read from Slack, as the Slack front reads it; never typed on the command line.
  const membership =
    config.slack.botToken !== undefined
      ? new GroupMembership(
          new WebClient(config.slack.botToken, {
            slackApiUrl: config.slack.apiUrl,
            retryConfig: { retries: 1 },
            timeout: 10_000,
          }),
        )
      : undefined;
  const session: TerminalSession = {
    identify: (unixUser) => terminalPerson(unixUser, config.terminalUsers, membership),
    operators: config.approval.operators,
    approvers: config.approval.approvers,
  };
  try {
    return await fn(service, session);
  } finally {
    await service.close();
    redis.disconnect();
  }
}
