import { pino } from 'pino';
import { loadConfig } from '../config/env.js';
import { createLogger } from '../log.js';
import { createAuditLog } from '../ops/audit.js';
import { connectRedis } from '../queue/redis.js';
import { RunService } from '../queue/service.js';
import { loadRunbooks } from '../runbook/load.js';
import { loadSites, siteFilesFrom } from './agent.js';

/**
 * Wires one terminal command to the queue: configuration, a Redis connection and the RunService every
 * front uses; closed again when the command is done. The commands themselves see only the RunService.
 */
export async function withRunService<T>(
  siteFiles: readonly string[],
  fn: (service: RunService) => Promise<T>,
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
  });
  try {
    return await fn(service);
  } finally {
    await service.close();
    redis.disconnect();
  }
}
