import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { App } from '@slack/bolt';
import type { Logger } from 'pino';
import { afterEach, expect } from 'vitest';
import { type FakeSlack, type FakeSlackOptions, startFakeSlack } from '../../dev/slack/fake-slack.js';
import type { AgentOptions } from '../../src/agent/agent.js';
import type { SiteProfile } from '../../src/config/site.js';
import { loadRunbooks, type RunbookSet } from '../../src/runbook/load.js';
import { type SlackFrontOptions as AppOptions, createSlackApp } from '../../src/slack/app.js';
import { type ApprovalPlaces, threadApprovalPlaces } from '../../src/slack/click-place.js';
import { HomeTab, threadPermalink } from '../../src/slack/home.js';
import { GroupMembership } from '../../src/slack/membership.js';
import { pacedWebClient } from '../../src/slack/paced-slack.js';
import { ThreadPoster, type ThreadPosterOptions } from '../../src/slack/poster.js';
import { SeenSignatures } from '../../src/slack/replay-guard.js';
import { SiteVisibility } from '../../src/slack/site-visibility.js';
import { ThreadCursors } from '../../src/slack/thread-cursors.js';
import { type Harness, quietLogger, startHarness } from './agent.js';
import { eventually } from './eventually.js';
import type { TestRedis } from './redis.js';
import { FAST_FAKE_SLACK, FAST_POSTER } from './slack-pace.js';
import { eventCallbackBody, postToBolt, signedHeaders, signedJsonHeaders } from './slack-requests.js';

/**
 * The Slack front as serve wires it, for tests: the strict fake Slack, a harness (simulated sites, RunService,
 * an agent), the thread poster on a paced WebClient, the App Home tab when asked, and the Bolt app over HTTP on
 * a free port, answering signed requests. Every piece is stopped after each test, in reverse order, before
 * useTestRedis deletes the test's keys.
 */

export const FRONT_TOKEN = ['xoxb', '4242424242', '8484848484848', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
export const FRONT_SECRET = '5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b';
const COMMANDS = new URL('../../commands/', import.meta.url).pathname;

export interface SlackFrontOptions {
  /** A runbook set, or a directory to load one from (default commands/, loaded once per file). */
  readonly runbooks?: RunbookSet | string;
  /** One simulated site per scenario, site-0, site-1, ... (default one healthy site). */
  readonly scenarios?: readonly string[];
  /** A harness already started (its sites, service and agents); stopped by whoever started it. */
  readonly harness?: Harness;
  /** The fronts' and the agents' CAPI_APPROVERS (default U0APPROVER). */
  readonly approvers?: readonly string[];
  /** CAPI_OPERATORS (default none). */
  readonly operators?: readonly string[];
  /** RunService options (audit, logger, limits) and site profile fields for every site, as startHarness takes. */
  readonly service?: Parameters<typeof startHarness>[0]['service'];
  readonly siteFields?: Parameters<typeof startHarness>[0]['siteFields'];
  /** Start an agent (default true); an object is its options. `false` leaves the runs queued. */
  readonly agent?: boolean | Partial<AgentOptions>;
  /** The fake's channels (the first is where tests talk), its users, and any other fake option. */
  readonly channels: readonly string[];
  readonly users?: readonly string[] | FakeSlackOptions['users'];
  readonly fake?: Partial<Omit<FakeSlackOptions, 'token' | 'channels' | 'users'>>;
  /** The slack_channels of each site as the front sees them, by site index (default: the profiles' own). */
  readonly siteChannels?: readonly (readonly string[])[];
  /** The thread poster (default on, at the fast test pace); an object overrides its options. */
  readonly poster?: boolean | Partial<Omit<ThreadPosterOptions, 'client' | 'redis' | 'prefix' | 'service'>>;
  /** Where clicks count (default: where the poster recorded each approval message). */
  readonly approvalPlaces?: ApprovalPlaces;
  /** The App Home tab, wired as serve wires it (sites by channel membership, links to threads). */
  readonly home?: boolean;
  /** The Bolt app (default on); `false` for a test of another front that shares the poster. */
  readonly app?: boolean;
  /** More createSlackApp options (flood, slack.teamId via `teamId`). */
  readonly appOptions?: Partial<Omit<AppOptions, 'slack' | 'seen'>> & { readonly teamId?: string };
  /** Refuse a signed request seen before, on any replica (serve's replay check, in Redis). */
  readonly replayGuard?: boolean;
  /** For the poster, the app and the Home tab (default silent). */
  readonly logger?: Logger;
}

export interface SlackFront {
  readonly fake: FakeSlack;
  readonly harness: Harness;
  /** The sites as the front sees them (siteChannels applied). */
  readonly sites: ReadonlyMap<string, SiteProfile>;
  /** Throws when the front was started with `poster: false`. */
  readonly poster: ThreadPoster;
  /** Throws unless the front was started with `home: true`. */
  readonly home: HomeTab;
  /** The Bolt app's http://127.0.0.1:PORT; throws when started with `app: false`. */
  readonly base: string;
  /** POSTs a form body (a command, a click, a submission) signed with the app's secret: Bolt's answer. */
  post(body: string): Promise<Response>;
  /** post, and expects Slack's 200. */
  send(body: string): Promise<Response>;
  /** Opens `user`'s App Home (app_home_opened, a signed Events API request), `tab` home unless said. */
  openHome(user: string, tab?: string): Promise<void>;
  /** Another replica of the app on the same Redis, service and poster: its base URL; stopped with the rest. */
  replica(): Promise<string>;
  stop(): Promise<void>;
}

/** A reply only its reader sees: a command's goes to its response_url, a click's (or a choice's) by chat.postEphemeral. */
const REPLY_METHODS = new Set(['chat.postEphemeral', 'response_url']);

/** The text of the next reply only `user` sees, made after call number `from`, however it was sent. */
export function ephemeralTo(fake: FakeSlack, user: string, from = 0): Promise<string> {
  return eventually(`an ephemeral to ${user}`, () => {
    const hit = fake.calls
      .slice(from)
      .find((c) => REPLY_METHODS.has(c.method) && c.args.user === user && c.status === 200);
    return hit ? String(hit.args.text) : undefined;
  });
}

/**
 * Registers, once per file, the clean-up of every front a test starts; call it after useTestRedis (hooks after a
 * test run last-registered first, so the fronts stop before the keys go). Returns startSlackFront.
 */
export function useSlackFronts(db: TestRedis): (opts: SlackFrontOptions) => Promise<SlackFront> {
  const started: SlackFront[] = [];
  const loaded = new Map<string, Promise<RunbookSet>>();
  afterEach(async () => {
    for (const front of started.splice(0).reverse()) await front.stop();
  });
  return async (opts) => {
    const dir = typeof opts.runbooks === 'string' ? opts.runbooks : COMMANDS;
    let runbooks = typeof opts.runbooks === 'object' ? opts.runbooks : undefined;
    if (runbooks === undefined) {
      if (!loaded.has(dir)) loaded.set(dir, loadRunbooks(dir));
      runbooks = await (loaded.get(dir) as Promise<RunbookSet>);
    }
    const stops: (() => Promise<unknown>)[] = [];
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        for (const s of stops.splice(0).reverse()) await s();
      })();
      return stopping;
    };
    const front = await build(db, runbooks, opts, stops, stop).catch(async (err) => {
      await stop();
      throw err;
    });
    started.push(front);
    return front;
  };
}

async function build(
  db: TestRedis,
  runbooks: RunbookSet,
  opts: SlackFrontOptions,
  stops: (() => Promise<unknown>)[],
  stop: () => Promise<void>,
): Promise<SlackFront> {
  const logger = opts.logger ?? quietLogger;
  const approvers = opts.approvers ?? ['U0APPROVER'];
  const users = Array.isArray(opts.users)
    ? Object.fromEntries(opts.users.map((u) => [u, { groups: [] }]))
    : (opts.users as FakeSlackOptions['users']);
  const fake = await startFakeSlack({
    token: FRONT_TOKEN,
    channels: opts.channels,
    ...(users !== undefined ? { users } : {}),
    ...FAST_FAKE_SLACK,
    ...opts.fake,
  });
  stops.push(() => fake.close());
  let harness = opts.harness;
  if (harness === undefined) {
    const started = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks,
      scenarios: opts.scenarios ?? ['healthy'],
      approvers,
      ...(opts.service !== undefined ? { service: opts.service } : {}),
      ...(opts.siteFields !== undefined ? { siteFields: opts.siteFields } : {}),
    });
    stops.push(() => started.stop());
    harness = started;
  }
  if (opts.agent !== false) await harness.startAgent(opts.agent === true ? {} : opts.agent);
  const { siteChannels } = opts;
  const sites: ReadonlyMap<string, SiteProfile> =
    siteChannels === undefined
      ? harness.sites
      : new Map(
          [...harness.sites.values()].map((site, i) => [
            site.name,
            { ...site, slack_channels: [...(siteChannels[i] ?? [])] },
          ]),
        );
  const client = pacedWebClient(FRONT_TOKEN, { slackApiUrl: fake.url });
  const cursors = new ThreadCursors(db.redis, db.prefix);

  let home: HomeTab | undefined;
  if (opts.home === true) {
    const visibility = new SiteVisibility(client, sites, logger);
    const tab = new HomeTab({
      client,
      service: harness.service,
      membership: new GroupMembership(client),
      approvers,
      logger,
      coalesceMs: 50,
      sitesFor: (userId) => visibility.sitesFor(userId),
      permalink: async (runId) => {
        const c = await cursors.load(runId);
        return c.channel && c.rootTs
          ? threadPermalink('https://ops.slack.test/', c.channel, c.rootTs)
          : undefined;
      },
    });
    stops.push(() => tab.close());
    home = tab;
  }

  let poster: ThreadPoster | undefined;
  if (opts.poster !== false) {
    const started = new ThreadPoster({
      client,
      redis: db.redis,
      prefix: db.prefix,
      service: harness.service,
      logger,
      ...(home !== undefined ? { onRunEvent: (_runId: string, type: string) => home.runEvent(type) } : {}),
      ...FAST_POSTER,
      ...(typeof opts.poster === 'object' ? opts.poster : {}),
    } as ThreadPosterOptions);
    stops.push(() => started.close());
    poster = started;
  }

  const { teamId, ...appOptions } = opts.appOptions ?? {};
  const startApp = async (): Promise<string> => {
    const app: App = createSlackApp({
      slack: {
        botToken: FRONT_TOKEN,
        signingSecret: FRONT_SECRET,
        apiUrl: fake.url,
        port: 0,
        ...(teamId !== undefined ? { teamId } : {}),
      },
      approvers,
      operators: opts.operators ?? [],
      service: (harness as Harness).service,
      sites,
      approvalPlaces: opts.approvalPlaces ?? threadApprovalPlaces(cursors),
      logger,
      ...(poster !== undefined ? { threads: poster } : {}),
      ...(home !== undefined ? { home } : {}),
      webApiRetries: 0,
      ...(opts.replayGuard === true ? { seen: new SeenSignatures(db.redis, db.prefix) } : {}),
      ...appOptions,
    });
    const server = (await app.start(0)) as Server;
    stops.push(() => app.stop());
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const base = opts.app === false ? undefined : await startApp();

  const baseUrl = () => {
    if (base === undefined) throw new Error('this Slack front was started with app: false: no Bolt app');
    return base;
  };
  const post = (body: string) => postToBolt(baseUrl(), body, signedHeaders(body, FRONT_SECRET));
  return {
    fake,
    harness,
    sites,
    get poster() {
      if (poster === undefined) throw new Error('this Slack front was started with poster: false');
      return poster;
    },
    get home() {
      if (home === undefined) throw new Error('this Slack front was started without home: true');
      return home;
    },
    get base() {
      return baseUrl();
    },
    post,
    async send(body) {
      const res = await post(body);
      expect(res.status, 'Bolt answered the signed request').toBe(200);
      return res;
    },
    async openHome(user, tab = 'home') {
      const body = eventCallbackBody({ type: 'app_home_opened', user, channel: 'D0HOME0001', tab });
      const res = await postToBolt(baseUrl(), body, signedJsonHeaders(body, FRONT_SECRET));
      expect(res.status, 'Bolt answered app_home_opened').toBe(200);
    },
    replica: startApp,
    stop,
  };
}
