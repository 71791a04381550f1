import type { Server } from 'node:http';
import { WebClient } from '@slack/web-api';
import { startAgent } from '../agent/agent.js';
import { loadConfig } from '../config/env.js';
import { asCodedError } from '../errors.js';
import { createLogger } from '../log.js';
import { connectRedis } from '../queue/redis.js';
import { RunService } from '../queue/service.js';
import { loadRunbooks } from '../runbook/load.js';
import { checkRedisForProduction } from '../runs/redis-checks.js';
import { createSlackApp } from '../slack/app.js';
import { ThreadPoster } from '../slack/poster.js';
import { agentOptions, loadSites, siteFilesFrom } from './agent.js';

/**
 * `npm start`: the Slack front (commands, approval buttons, run threads) and an agent in one process.
 * Shutdown is repeat-safe and closes each part in its own try/catch, so one failing part does not
 * leave the others running.
 */
export async function serveCommand(siteFiles: readonly string[]): Promise<number> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel, name: 'capi-chatops' });
  const sites = await loadSites(siteFilesFrom(siteFiles, config.siteFile));
  const runbooks = await loadRunbooks(config.commandsDir);
  const redis = connectRedis(config.redis.url, 'store', logger);
  for (const warning of await checkRedisForProduction(redis))
    logger.warn({ redis: config.redis.url }, warning);

  const service = new RunService({
    redis,
    prefix: config.queue.prefix,
    runbooks,
    sites,
    approvalTimeoutMs: config.approval.timeoutMs,
    approvers: config.approval.approvers,
    allowSelfApproval: config.approval.allowSelfApproval,
    logger,
  });
  // The poster handles 429s itself (Retry-After, order kept), so its client must not retry behind its back.
  const posterClient = new WebClient(config.slack.botToken, {
    slackApiUrl: config.slack.apiUrl,
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 0 },
  });
  const poster = new ThreadPoster({
    client: posterClient,
    redis,
    prefix: config.queue.prefix,
    service,
    logger,
  });
  const app = createSlackApp({
    slack: config.slack,
    approvers: config.approval.approvers,
    operators: config.approval.operators,
    service,
    sites,
    logger,
    threads: poster,
  });
  // The Slack config is checked (createSlackApp) before an agent starts taking jobs.
  const agent = await startAgent(agentOptions(config, sites, runbooks, logger));
  const { port, host } = config.slack;
  const started = await app.start(host !== undefined ? { port, host } : port);
  await poster.resumeAll();
  const where =
    config.slack.appToken !== undefined
      ? 'socket mode'
      : `http on :${((started as Server).address() as { port: number }).port}/slack/events`;
  logger.info({ sites: [...sites.keys()], queues: agent.queueNames, slack: where }, 'capi-chatops ready');

  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  logger.info('shutting down: Slack first (no new commands), then the agent hands its runs over');
  for (const [what, close] of [
    ['slack', () => app.stop()],
    ['threads', () => poster.close()],
    ['agent', () => agent.close()],
    ['service', () => service.close()],
    ['redis', () => redis.quit()],
  ] as const) {
    try {
      await close();
    } catch (err) {
      logger.warn({ part: what, err: asCodedError(err).message }, 'closing failed');
    }
  }
  return 0;
}
