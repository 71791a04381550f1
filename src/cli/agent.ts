import type { Logger } from 'pino';
import { type Agent, type AgentOptions, startAgent } from '../agent/agent.js';
import { loadDeployment } from '../config/deployment.js';
import type { AppConfig } from '../config/env.js';
import { loadSiteProfile, type SiteProfile } from '../config/site.js';
import { CapiError, ErrorCode } from '../errors.js';
import { createLogger } from '../log.js';
import { type ReadinessCheck, redisCheck } from '../ops/http.js';
import { processOps } from '../ops/process-ops.js';
import { connectRedis } from '../redis/connection.js';
import { loadRunbooks, type RunbookSet } from '../runbook/load.js';
import { reportRedisAtStartup } from '../runs/redis-checks.js';
import type { DecisionKeys } from '../signing/keys.js';

export interface AgentCommandOptions {
  readonly siteFiles: readonly string[];
  readonly concurrency?: number;
  readonly lockDurationMs?: number;
  readonly stalledIntervalMs?: number;
}

/** Site profiles from --site (repeatable) or SITE_FILE (comma separated); names must be unique. */
export async function loadSites(files: readonly string[]): Promise<Map<string, SiteProfile>> {
  if (files.length === 0) {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      'no site profile: pass --site FILE or set SITE_FILE (comma separated for several)',
    );
  }
  const sites = new Map<string, SiteProfile>();
  for (const file of files) {
    const site = await loadSiteProfile(file);
    if (sites.has(site.name))
      throw new CapiError(ErrorCode.ConfigInvalid, `two site profiles are named ${site.name}: ${file}`);
    sites.set(site.name, site);
  }
  return sites;
}

export function siteFilesFrom(flags: readonly string[], env: string | undefined): string[] {
  if (flags.length > 0) return [...flags];
  return (env ?? '')
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
}

/** What every agent of this process takes from the environment. */
export function agentOptions(
  config: AppConfig,
  sites: ReadonlyMap<string, SiteProfile>,
  runbooks: RunbookSet,
  keys: DecisionKeys,
  logger: Logger,
): AgentOptions {
  return {
    redis: config.redis,
    prefix: config.queue.prefix,
    sites,
    jumphostEnv: config.jumphost,
    runbooks,
    approvalTimeoutMs: config.approval.timeoutMs,
    decisions: {
      policy: {
        approvers: config.approval.approvers,
        allowSelfApproval: config.approval.allowSelfApproval,
        trustSlackGroups: config.approval.trustSlackGroups,
      },
      verifiers: keys.verifiers,
    },
    siteLockTtlMs: config.siteLockTtlMs,
    retentionMs: config.retention.runMs,
    maxOutputBytesPerRun: config.retention.maxOutputBytesPerRun,
    maxLineBytes: config.retention.maxLineBytes,
    concurrency: config.agentConcurrency,
    logger,
  };
}

/** `capi-chatops agent`: serve the sites' queues until SIGINT/SIGTERM, then stop gracefully. */
export async function runAgentCommand(opts: AgentCommandOptions): Promise<number> {
  const { config, sites, keys } = await loadDeployment('agent', (c) =>
    loadSites(siteFilesFrom(opts.siteFiles, c.siteFile)),
  );
  const logger = createLogger({ level: config.logLevel, name: 'agent' });
  const runbooks = await loadRunbooks(config.commandsDir);

  // Health checks and metrics scrapes read Redis on this connection; the agent has its own.
  const redis = connectRedis(config.redis, 'store', logger);
  await redis.ping();
  await reportRedisAtStartup(redis, config.redis, logger);
  const ops = processOps({ config, redis, sites, logger });

  const agent = await startAgent({
    ...agentOptions(config, sites, runbooks, keys, logger),
    metrics: ops.metrics,
    audit: ops.audit,
    ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
    ...(opts.lockDurationMs !== undefined ? { lockDurationMs: opts.lockDurationMs } : {}),
    ...(opts.stalledIntervalMs !== undefined ? { stalledIntervalMs: opts.stalledIntervalMs } : {}),
  });
  await ops.serve({ redis: redisCheck(redis), agent: agentCheck(agent) });
  logger.info({ queues: agent.queueNames, sites: [...sites.keys()] }, 'agent ready');

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down: the running step may finish, then the run is handed over');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await agent.close();
  await ops.close();
  await redis.quit();
  logger.info('agent stopped');
  return 0;
}

/** The agent's workers are all running (a worker stopped by an error takes no runs). */
export function agentCheck(agent: Agent): ReadinessCheck {
  return async () => {
    const stopped = agent.stoppedWorkers();
    return stopped.length === 0 ? true : `workers not running for queue(s) ${stopped.join(', ')}`;
  };
}
