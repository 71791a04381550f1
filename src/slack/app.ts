import type { RespondFn } from '@slack/bolt';
import { App, HTTPReceiver, LogLevel } from '@slack/bolt';
import type { FetchFunction, WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AppConfig } from '../config/env.js';
import type { SiteProfile } from '../config/site.js';
import { asCodedError, CapiError, ErrorCode } from '../errors.js';
import type { RunService } from '../service/run-service.js';
import { validationMessage } from '../validation.js';
import { APPROVE_ACTION_ID } from './blocks.js';
import type { ApprovalPlaces } from './click-place.js';
import { capiCommands } from './command.js';
import { type CapiContext, siteResolver } from './context.js';
import { slackText } from './escape.js';
import type { FloodLimit } from './flood-limit.js';
import type { HomeTab } from './home.js';
import { decideAction } from './listeners/actions/decide.js';
import { dispatchCapi } from './listeners/commands/index.js';
import { registerHomeOpened } from './listeners/events/home.js';
import { registerReasonDialogs } from './listeners/reason.js';
import { registerPickSubmission } from './listeners/views/pick.js';
import { GroupMembership } from './membership.js';
import { replayGuard, type SeenSignatures, signedRequestHeaders } from './replay-guard.js';
import { requestGuard, UNKNOWN_CLICK_REPLY } from './request-guard.js';

export interface SlackFrontOptions {
  readonly slack: AppConfig['slack'];
  readonly approvers: readonly string[];
  readonly operators: readonly string[];
  readonly service: RunService;
  readonly sites: ReadonlyMap<string, SiteProfile>;
  /** Where the thread poster put each approval message: clicks count only there. */
  readonly approvalPlaces: ApprovalPlaces;
  readonly logger: Logger;
  /** Thread mirroring of runs (the poster); optional so handlers can be tested alone. */
  readonly threads?: { watch(runId: string): void; approvalDecided(approvalId: string): void };
  /** Test knob: the Web API client's retries (the reference notes: default retries hang tests). */
  readonly webApiRetries?: number;
  /** The Web API client's fetch (counts calls for /metrics). */
  readonly fetch?: FetchFunction;
  /** Per-user flood limits on refusals and uploads (serve always sets it). */
  readonly flood?: FloodLimit;
  /** The App Home tab, published when someone opens it (app_home_opened). */
  readonly home?: HomeTab;
  /** HTTP mode: signatures already taken, so a replayed request is refused (serve always sets it). */
  readonly seen?: SeenSignatures;
}

/** Slack gives up on an answer after 3 s; what no listener acked is answered a little before. */
const UNHANDLED_ACK_MS = 2500;

// Slack payloads are untrusted input like any other edge: the fields handlers use are checked.
const CommandPayload = z.object({
  user_id: z.string().min(1),
  channel_id: z.string().min(1),
  text: z.string().default(''),
  trigger_id: z.string().min(1).max(200).optional(),
  response_url: z
    .url({ protocol: /^https?$/ })
    .max(2000)
    .optional(),
});
const ActionPayload = z.object({
  user: z.object({ id: z.string().min(1) }),
  channel: z.object({ id: z.string().min(1) }),
  container: z.object({ message_ts: z.string().min(1).optional() }).optional(),
  message: z.object({ ts: z.string().min(1) }).optional(),
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
    const receiver = new HTTPReceiver({
      signingSecret: slack.signingSecret,
      logLevel: LogLevel.WARN,
      // The signature and its timestamp reach the replay check (replay-guard.ts) through the context.
      customPropertiesExtractor: signedRequestHeaders,
      // A signed payload Bolt itself cannot take apart (a click without its user, say) throws before any
      // listener could ack; Bolt would answer 500 and Slack would show the person an error. It is acked
      // instead: nothing was done, and no listener saw it.
      processEventErrorHandler: async ({ error, response }) => {
        logger.warn({ err: error }, 'request Bolt could not process: acked, nothing done');
        if (!response.headersSent) {
          response.writeHead(200);
          response.end();
        }
        return true;
      },
      // The backstop for anything no listener acks (a shortcut or a modal this version does not know):
      // answered before Slack's 3 s run out, rather than Bolt's 404 just after them.
      unhandledRequestTimeoutMillis: UNHANDLED_ACK_MS,
      unhandledRequestHandler: ({ response }) => {
        logger.warn('request no listener acked: acked empty, nothing done');
        if (!response.headersSent) {
          response.writeHead(200);
          response.end();
        }
      },
    });
    app = new App({ ...common, receiver });
  }
  const membership = new GroupMembership(app.client);
  if (opts.seen !== undefined && slack.appToken === undefined) {
    app.use(replayGuard({ seen: opts.seen, logger }));
  }
  app.use(requestGuard({ workspace: workspaceOf(app, slack.teamId, logger), logger }));
  const siteFor = siteResolver(opts.sites);
  // Every runbook the service can start is a subcommand; a runbook named like a built-in stops start-up here.
  const commands = capiCommands(opts.service.runbooks());

  /**
   * A /capi command as typed, or a picker's choice as the same text: one path, the same checks. `respond`
   * posts to the command's response_url; without one (a picker's choice) replies go by chat.postEphemeral.
   */
  const runCapi = async (
    client: WebClient,
    userId: string,
    channelId: string,
    text: string,
    triggerId: string | undefined,
    respond?: RespondFn,
  ): Promise<void> => {
    const { flood } = opts;
    // A user past a flood limit is acked and otherwise ignored until the window ends.
    if (flood !== undefined && (await flood.blocked(userId))) return;
    const reply = replyTo(client, channelId, userId, respond, logger);
    const ctx: CapiContext = {
      userId,
      channelId,
      service: opts.service,
      client,
      logger,
      reply,
      refuse: async (message) => {
        if (flood === undefined || (await flood.allow(userId, 'refusal', reply))) await reply(message);
      },
      mayUpload: async () => flood === undefined || (await flood.allow(userId, 'upload', reply)),
      siteFor,
      watch: (runId) => opts.threads?.watch(runId),
      refreshHome: () => opts.home?.changed(),
      ...(triggerId !== undefined ? { triggerId } : {}),
    };
    const isOperator = async () =>
      opts.operators.includes(userId) || (await membership.groupsOf(userId, opts.operators)).length > 0;
    try {
      await dispatchCapi(ctx, commands, text, isOperator);
    } catch (err) {
      logger.error({ err }, '/capi failed');
      await ctx
        .reply(`Something went wrong: ${slackText(asCodedError(err).message, 1000)}`)
        .catch(() => undefined);
    }
  };

  app.command('/capi', async ({ ack, body, client, respond }) => {
    await ack();
    const parsed = CommandPayload.safeParse(body);
    if (!parsed.success) {
      logger.warn({ problem: validationMessage(parsed.error) }, 'malformed /capi payload');
      return;
    }
    const { user_id: userId, channel_id: channelId, text, trigger_id: triggerId } = parsed.data;
    // Bolt's respond() posts to the body's response_url; it is used only once that URL passed the check above.
    const viaUrl = parsed.data.response_url !== undefined ? respond : undefined;
    await runCapi(client, userId, channelId, text, triggerId, viaUrl);
  });
  registerPickSubmission(app, { siteFor, logger, runCapi });

  // Approve decides in one click (after Slack's confirm); Deny and "Approve with reason" open a dialog.
  for (const [actionId, approved] of [[APPROVE_ACTION_ID, true]] as const) {
    app.action(actionId, async ({ ack, body, client }) => {
      await ack();
      const parsed = ActionPayload.safeParse(body);
      if (!parsed.success) {
        logger.warn({ problem: validationMessage(parsed.error) }, 'malformed approval click');
        const { user, channel } = body as { user?: { id?: unknown }; channel?: { id?: unknown } };
        if (typeof user?.id === 'string' && typeof channel?.id === 'string') {
          await client.chat
            .postEphemeral({ channel: channel.id, user: user.id, text: UNKNOWN_CLICK_REPLY })
            .catch(() => undefined);
        }
        return;
      }
      const action = parsed.data.actions.find((a) => a.action_id === actionId);
      if (!action) return;
      if (opts.flood !== undefined && (await opts.flood.blocked(parsed.data.user.id))) return;
      await decideAction(
        {
          service: opts.service,
          client,
          membership,
          approvers: opts.approvers,
          places: opts.approvalPlaces,
          logger,
          onDecided: (id) => opts.threads?.approvalDecided(id),
          ...(opts.flood !== undefined ? { flood: opts.flood } : {}),
        },
        {
          userId: parsed.data.user.id,
          channelId: parsed.data.channel.id,
          messageTs: parsed.data.container?.message_ts ?? parsed.data.message?.ts,
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
    places: opts.approvalPlaces,
    ...(opts.flood !== undefined ? { flood: opts.flood } : {}),
  });

  app.error(async (err) => {
    logger.error({ err }, 'slack listener error');
  });
  return app;
}

/**
 * How a /capi command's answer reaches the person who typed it: the command's response_url (Slack counts no
 * app-wide rate limit on it; chat.postEphemeral is Tier 4, about 100 a minute for the whole app, and in an
 * incident most would be refused), else chat.postEphemeral. A response_url that refuses (spent after 5
 * messages, expired after 30 minutes) is not the person's fault: the answer then goes by chat.postEphemeral.
 */
function replyTo(
  client: WebClient,
  channel: string,
  user: string,
  respond: RespondFn | undefined,
  logger: Logger,
): (text: string) => Promise<void> {
  const ephemeral = async (text: string) => {
    await client.chat.postEphemeral({ channel, user, text });
  };
  if (respond === undefined) return ephemeral;
  return async (text) => {
    try {
      await respond({ response_type: 'ephemeral', text });
    } catch (err) {
      logger.warn({ err }, 'response_url refused the reply: sent as an ephemeral');
      await ephemeral(text);
    }
  };
}

/**
 * The one workspace whose requests are accepted: SLACK_TEAM_ID, else the team auth.test reports for the bot
 * token, asked once (and again after a failure, so a Slack hiccup at start-up does not lock everyone out).
 */
function workspaceOf(
  app: App,
  configured: string | undefined,
  logger: Logger,
): () => Promise<string | undefined> {
  if (configured !== undefined) return async () => configured;
  let asked: Promise<string | undefined> | undefined;
  return () => {
    asked ??= app.client.auth.test().then(
      (res) => {
        if (typeof res.team_id === 'string' && res.team_id !== '') return res.team_id;
        asked = undefined;
        return undefined;
      },
      (err: unknown) => {
        logger.error({ err }, 'auth.test failed: the workspace is not known yet');
        asked = undefined;
        return undefined;
      },
    );
    return asked;
  };
}
