import type { Server } from 'node:http';
import { loadDeployment } from '../config/deployment.js';
import { asCodedError } from '../errors.js';
import { alertWebhookRoute } from '../fronts/alert-webhook.js';
import { createLogger } from '../log.js';
import { type ReadinessCheck, redisCheck } from '../ops/http.js';
import { meteredFetch } from '../ops/metrics.js';
import { processOps } from '../ops/process-ops.js';
import { connectRedis } from '../redis/connection.js';
import { loadRunbooks } from '../runbook/load.js';
import { reportRedisAtStartup } from '../runs/redis-checks.js';
import { RunService } from '../service/run-service.js';
import { createSlackApp } from '../slack/app.js';
import { threadApprovalPlaces } from '../slack/click-place.js';
import { FloodLimit } from '../slack/flood-limit.js';
import { HomeTab, threadPermalink } from '../slack/home.js';
import { GroupMembership } from '../slack/membership.js';
import { pacedWebClient } from '../slack/paced-slack.js';
import { ThreadPoster } from '../slack/poster.js';
import { SeenSignatures } from '../slack/replay-guard.js';
import { SiteVisibility } from '../slack/site-visibility.js';
import { ThreadCursors } from '../slack/thread-cursors.js';
import { loadSites, siteFilesFrom } from './agent.js';
import { type AgentThread, startAgentThread } from './agent-thread.js';
import { runServiceSettings } from './service-settings.js';

/**
 * `npm start`: the Slack front (commands, approval buttons, run threads) and an agent in one process, the
 * agent on a thread of its own (agent-thread.ts) so that no run ever delays an ack. Shutdown is repeat-safe
 * and closes each part in its own try/catch, so one failing part does not leave the others running. The
 * agent thread stopping by itself stops serve with exit code 1: a front without its agent would take
 * commands that nothing runs.
 */
export async function serveCommand(siteFiles: readonly string[]): Promise<number> {
  const { config, sites, keys } = await loadDeployment('serve', (c) =>
    loadSites(siteFilesFrom(siteFiles, c.siteFile)),
  );
  const logger = createLogger({ level: config.logLevel, name: 'capi-chatops' });
  const runbooks = await loadRunbooks(config.commandsDir);
  const redis = connectRedis(config.redis, 'store', logger);
  await reportRedisAtStartup(redis, config.redis, logger);
  const ops = processOps({ config, redis, sites, logger });

  const service = new RunService({
    ...runServiceSettings(config),
    redis,
    runbooks,
    sites,
    // Every decision taken in Slack is signed with serve's key: the agents accept no unsigned one.
    ...(keys.signer !== undefined ? { decisionSigner: keys.signer } : {}),
    logger,
    audit: ops.audit,
    metrics: ops.metrics,
  });
  // The poster handles 429s itself (Retry-After, order kept), so its client must not retry behind its back.
  const posterClient = pacedWebClient(config.slack.botToken, {
    slackApiUrl: config.slack.apiUrl,
    fetch: meteredFetch(ops.metrics),
  });
  // The App Home tab links each run to its thread (the poster's cursor); auth.test tells the workspace's URL.
  let workspaceUrl = 'https://slack.com/';
  const cursors = new ThreadCursors(redis, config.queue.prefix);
  const visibility = new SiteVisibility(posterClient, sites, logger);
  const home = new HomeTab({
    client: posterClient,
    service,
    membership: new GroupMembership(posterClient),
    approvers: config.approval.approvers,
    logger,
    // Home shows a person the sites whose incident channels they are in.
    sitesFor: (userId) => visibility.sitesFor(userId),
    permalink: async (runId) => {
      const c = await cursors.load(runId);
      return c.channel !== undefined && c.rootTs !== undefined
        ? threadPermalink(workspaceUrl, c.channel, c.rootTs)
        : undefined;
    },
  });
  const poster = new ThreadPoster({
    onRunEvent: (_runId, type) => home.runEvent(type),
    client: posterClient,
    redis,
    prefix: config.queue.prefix,
    service,
    logger,
    leaseTtlMs: config.threadLeaseTtlMs,
    rescanIntervalMs: Math.ceil(config.threadLeaseTtlMs / 2),
  });
  let agent: AgentThread | undefined;
  let slackAuth: true | string = 'auth.test has not answered yet';
  const checks: Record<string, ReadinessCheck> = {
    redis: redisCheck(redis),
    slack: async () => slackAuth,
    agent: async () => (agent ? agent.check() : 'the agent has not started yet'),
  };
  // Alertmanager's webhook, when ALERT_WEBHOOK_TOKEN is set: a firing alert group gets a diagnose run.
  const alertRoutes =
    config.ops.alertWebhookToken !== undefined
      ? [
          alertWebhookRoute({
            token: config.ops.alertWebhookToken,
            service,
            sites,
            logger,
            onStarted: (runId) => poster.watch(runId),
          }),
        ]
      : [];
  const app = createSlackApp({
    slack: config.slack,
    fetch: meteredFetch(ops.metrics),
    approvers: config.approval.approvers,
    operators: config.approval.operators,
    service,
    sites,
    approvalPlaces: threadApprovalPlaces(new ThreadCursors(redis, config.queue.prefix)),
    logger,
    threads: poster,
    flood: new FloodLimit(redis, config.queue.prefix, config.slackFlood),
    seen: new SeenSignatures(redis, config.queue.prefix),
    home,
  });
  // The Slack config is checked (createSlackApp) before an agent starts taking jobs.
  let crashed: ((why: string) => void) | undefined;
  const crash = new Promise<string>((resolve) => {
    crashed = resolve;
  });
  agent = await startAgentThread({ siteFiles, logger, onCrash: (why) => crashed?.(why) });
  const thread = agent;
  ops.metrics.mergeFrom(() => thread.metrics());
  try {
    const auth = await posterClient.auth.test();
    if (auth.url !== undefined) workspaceUrl = auth.url;
    const teamId = config.slack.teamId;
    if (teamId !== undefined && auth.team_id !== teamId) {
      // Requests from SLACK_TEAM_ID would be answered with a token of another workspace: a mix-up to fix.
      slackAuth = `SLACK_TEAM_ID is ${teamId} but SLACK_BOT_TOKEN belongs to workspace ${auth.team_id ?? '?'}: set one of them right`;
      logger.error({ teamId, tokenTeam: auth.team_id }, slackAuth);
    } else {
      slackAuth = true;
      logger.info({ team: auth.team, teamId: auth.team_id, bot: auth.user }, 'slack auth.test succeeded');
    }
  } catch (err) {
    slackAuth = `Slack auth.test failed: ${asCodedError(err).message}; check SLACK_BOT_TOKEN`;
    logger.error({ err: asCodedError(err).message }, 'slack auth.test failed: not ready');
  }
  const { port, host } = config.slack;
  const started = await app.start(host !== undefined ? { port, host } : port);
  // Health, readiness (whose reasons name internals), metrics and Alertmanager's webhook: on METRICS_PORT only,
  // never next to /slack/events, which faces the internet.
  await ops.serve(checks, alertRoutes);
  await poster.resumeAll();
  const where =
    config.slack.appToken !== undefined
      ? 'socket mode'
      : `http on :${((started as Server).address() as { port: number }).port}/slack/events`;
  logger.info({ sites: [...sites.keys()], queues: agent.queueNames, slack: where }, 'capi-chatops ready');

  const stopped = await Promise.race([
    crash,
    new Promise<undefined>((resolve) => {
      process.once('SIGINT', () => resolve(undefined));
      process.once('SIGTERM', () => resolve(undefined));
    }),
  ]);
  logger.info('shutting down: Slack first (no new commands), then the agent hands its runs over');
  for (const [what, close] of [
    ['slack', () => app.stop()],
    ['threads', () => poster.close()],
    ['home', () => home.close()],
    ['agent', () => agent?.close()],
    ['service', () => service.close()],
    ['ops', () => ops.close()],
    ['redis', () => redis.quit()],
  ] as const) {
    try {
      await close();
    } catch (err) {
      logger.warn({ part: what, err: asCodedError(err).message }, 'closing failed');
    }
  }
  if (stopped !== undefined) {
    logger.fatal({ why: stopped }, 'serve stopped because its agent thread stopped');
    return 1;
  }
  return 0;
}
