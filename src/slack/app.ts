import { App, LogLevel } from '@slack/bolt';
import type { FetchFunction, WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AppConfig } from '../config/env.js';
import type { SiteProfile } from '../config/site.js';
import { asCodedError, CapiError, ErrorCode } from '../errors.js';
import type { OpsRoute } from '../ops/http.js';
import type { RunService } from '../queue/service.js';
import { validationMessage } from '../validation.js';
import { APPROVE_ACTION_ID } from './blocks.js';
import { capiCommands } from './command.js';
import { type CapiContext, siteResolver } from './context.js';
import type { HomeTab } from './home.js';
import { decideAction } from './listeners/actions/decide.js';
import { dispatchCapi } from './listeners/commands/index.js';
import { registerHomeOpened } from './listeners/events/home.js';
import { registerReasonDialogs } from './listeners/reason.js';
import { registerPickSubmission } from './listeners/views/pick.js';
import { GroupMembership } from './membership.js';

export interface SlackFrontOptions {
  readonly slack: AppConfig['slack'];
  readonly approvers: readonly string[];
  readonly operators: readonly string[];
  readonly service: RunService;
  readonly sites: ReadonlyMap<string, SiteProfile>;
  readonly logger: Logger;
  /** Thread mirroring of runs (the poster); optional so handlers can be tested alone. */
  readonly threads?: { watch(runId: string): void; approvalDecided(approvalId: string): void };
  /** Test knob: the Web API client's retries (the reference notes: default retries hang tests). */
  readonly webApiRetries?: number;
  /** The Web API client's fetch (counts calls for /metrics). */
  readonly fetch?: FetchFunction;
  /** Served next to /slack/events in HTTP mode (health and metrics); Socket Mode serves them elsewhere. */
  readonly httpRoutes?: readonly OpsRoute[];
  /** The App Home tab, published when someone opens it (app_home_opened). */
  readonly home?: HomeTab;
}

// Slack payloads are untrusted input like any other edge: the fields handlers use are checked.
const CommandPayload = z.object({
  user_id: z.string().min(1),
  channel_id: z.string().min(1),
  text: z.string().default(''),
  trigger_id: z.string().min(1).max(200).optional(),
});
const ActionPayload = z.object({
  user: z.object({ id: z.string().min(1) }),
  channel: z.object({ id: z.string().min(1) }),
  actions: z.array(z.object({ action_id: z.string(), value: z.string().min(1).max(2000) })).min(1),
});

/**
 * The Slack front: Bolt routes /capi and the Approve/Deny buttons; HTTP (signed requests at
 * /slack/events) unless SLACK_APP_TOKEN asks for Socket Mode. Every listener acks first.
 */
export function createSlackApp(opts: SlackFrontOptions): App {
  const { slack, logger } = opts;
  if (slack.botToken === undefined) {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      'SLACK_BOT_TOKEN is not set: the Slack front needs the bot token (xoxb-...)',
    );
  }
  const common = {
    token: slack.botToken,
    logLevel: LogLevel.WARN,
    clientOptions: {
      slackApiUrl: slack.apiUrl,
      retryConfig: { retries: opts.webApiRetries ?? 10 },
      rejectRateLimitedCalls: false,
      ...(opts.fetch !== undefined ? { fetch: opts.fetch } : {}),
    },
  };
  let app: App;
  if (slack.appToken !== undefined) {
    app = new App({ ...common, appToken: slack.appToken, socketMode: true });
  } else {
    if (slack.signingSecret === undefined) {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        'SLACK_SIGNING_SECRET is not set: HTTP mode verifies every request with it (or set SLACK_APP_TOKEN for Socket Mode)',
      );
    }
    app = new App({
      ...common,
      signingSecret: slack.signingSecret,
      ...(opts.httpRoutes !== undefined ? { customRoutes: [...opts.httpRoutes] } : {}),
    });
  }
  const membership = new GroupMembership(app.client);
  const siteFor = siteResolver(opts.sites);
  // Every runbook the service can start is a subcommand; a runbook named like a built-in stops start-up here.
  const commands = capiCommands(opts.service.runbooks());

  /** A /capi command as typed, or a picker's choice as the same text: one path, the same checks. */
  const runCapi = async (
    client: WebClient,
    userId: string,
    channelId: string,
    text: string,
    triggerId: string | undefined,
  ): Promise<void> => {
    const ctx: CapiContext = {
      userId,
      channelId,
      service: opts.service,
      client,
      logger,
      reply: async (message) => {
        await client.chat.postEphemeral({ channel: channelId, user: userId, text: message });
      },
      siteFor,
      watch: (runId) => opts.threads?.watch(runId),
      ...(triggerId !== undefined ? { triggerId } : {}),
    };
    const isOperator = async () =>
      opts.operators.includes(userId) || (await membership.groupsOf(userId, opts.operators)).length > 0;
    try {
      await dispatchCapi(ctx, commands, text, isOperator);
    } catch (err) {
      logger.error({ err: asCodedError(err).message }, '/capi failed');
      await ctx.reply(`Something went wrong: ${asCodedError(err).message}`).catch(() => undefined);
    }
  };

  app.command('/capi', async ({ ack, body, client }) => {
    await ack();
    const parsed = CommandPayload.safeParse(body);
    if (!parsed.success) {
      logger.warn({ problem: validationMessage(parsed.error) }, 'malformed /capi payload');
      return;
    }
    const { user_id: userId, channel_id: channelId, text, trigger_id: triggerId } = parsed.data;
    await runCapi(client, userId, channelId, text, triggerId);
  });
  registerPickSubmission(app, { siteFor, logger, runCapi });

  // Approve decides in one click (after Slack's confirm); Deny and "Approve with reason" open a dialog.
  for (const [actionId, approved] of [[APPROVE_ACTION_ID, true]] as const) {
    app.action(actionId, async ({ ack, body, client }) => {
      await ack();
      const parsed = ActionPayload.safeParse(body);
      if (!parsed.success) {
        logger.warn({ problem: validationMessage(parsed.error) }, 'malformed approval click');
        return;
      }
      const action = parsed.data.actions.find((a) => a.action_id === actionId);
      if (!action) return;
      await decideAction(
        {
          service: opts.service,
          client,
          membership,
          approvers: opts.approvers,
          logger,
          onDecided: (id) => opts.threads?.approvalDecided(id),
        },
        {
          userId: parsed.data.user.id,
          channelId: parsed.data.channel.id,
          approvalId: action.value,
          approved,
        },
      );
    });
  }

  if (opts.home !== undefined) registerHomeOpened(app, opts.home, logger);
  registerReasonDialogs(app, {
    service: opts.service,
    membership,
    approvers: opts.approvers,
    logger,
    onDecided: (id) => opts.threads?.approvalDecided(id),
  });

  app.error(async (err) => {
    logger.error({ err: err.message }, 'slack listener error');
  });
  return app;
}
