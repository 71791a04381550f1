/**
 * Bolt global middleware in front of every listener: what a request must be before any handler sees it.
 *
 * - One workspace. A command, click or event from any team but ours (another workspace of an Enterprise
 *   Grid, a Slack Connect channel shared with another company, an org-wide install) is acked and refused.
 * - Known clicks only. A click on a button this version does not post (a message from an older version
 *   after an upgrade, a tampered or truncated payload) matches no listener, so Bolt would leave it unacked,
 *   answer 404 after 3 s, and Slack would show the person an error. Here it is acked at once and the person
 *   is told, privately, that nothing happened and why.
 *
 * A refused request never reaches a listener, so nothing is stored, queued or decided.
 */
import type { AnyMiddlewareArgs, Middleware } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import { z } from 'zod';
import { APPROVE_ACTION_ID, APPROVE_WITH_REASON_ACTION_ID, DENY_ACTION_ID } from './blocks.js';

/** The block that holds the Approve/Deny buttons of an approval message (blocks.ts posts it). */
export const APPROVAL_BLOCK_ID = 'capi_approval';
/** What an approval button carries: an approval id (see runs/approvals.ts approvalId()). */
export const APPROVAL_VALUE = /^approval~[A-Za-z0-9_.%~-]{1,1000}$/;

/**
 * Every button a listener handles, with the block it sits in and the shape of its value. A new button
 * needs its line here, or its clicks are refused as unknown.
 */
export const KNOWN_CLICKS: ReadonlyMap<string, { readonly block: string; readonly value: RegExp }> = new Map([
  [APPROVE_ACTION_ID, { block: APPROVAL_BLOCK_ID, value: APPROVAL_VALUE }],
  [DENY_ACTION_ID, { block: APPROVAL_BLOCK_ID, value: APPROVAL_VALUE }],
  [APPROVE_WITH_REASON_ACTION_ID, { block: APPROVAL_BLOCK_ID, value: APPROVAL_VALUE }],
]);

export const UNKNOWN_CLICK_REPLY =
  'Nothing happened: this button is not one this version of capi-chatops posts (the message may be from an ' +
  'older version, or changed on the way). `/capi status` shows the runs and the approvals they wait for.';

export const FOREIGN_TEAM_REPLY =
  'capi-chatops only takes commands and clicks from its own workspace; nothing happened.';

export interface RequestGuardOptions {
  /** The one workspace (team id) accepted; undefined while it is not known (auth.test has not answered). */
  readonly workspace: () => Promise<string | undefined>;
  readonly logger: Logger;
}

// Only the fields the guard reads; the rest of a payload is the listeners' business.
const Teams = z.object({
  team_id: z.string().nullish(),
  team: z.object({ id: z.string().nullish() }).nullish(),
  user: z.object({ id: z.string().optional(), team_id: z.string().nullish() }).nullish(),
  is_enterprise_install: z.union([z.boolean(), z.string()]).nullish(),
});
const Click = z.object({
  user: z.object({ id: z.string().min(1) }),
  channel: z.object({ id: z.string().min(1) }).nullish(),
  actions: z.array(
    z.object({ action_id: z.string(), block_id: z.string().optional(), value: z.string().optional() }),
  ),
});

/** Every team a request names (its team, its user's team); empty when it names none. */
function teamsOf(body: unknown): { teams: string[]; orgWide: boolean } {
  const parsed = Teams.safeParse(body);
  if (!parsed.success) return { teams: [], orgWide: false };
  const b = parsed.data;
  const teams = [b.team_id, b.team?.id, b.user?.team_id].filter(
    (t): t is string => typeof t === 'string' && t !== '',
  );
  return { teams, orgWide: b.is_enterprise_install === true || b.is_enterprise_install === 'true' };
}

/** Why a block_actions payload is not one of our clicks; undefined when it is. */
export function unknownClick(body: unknown): string | undefined {
  const parsed = Click.safeParse(body);
  if (!parsed.success) return 'malformed click payload';
  const { actions } = parsed.data;
  if (actions.length !== 1) return `${actions.length} actions in one click`;
  const [action] = actions as [(typeof actions)[number]];
  const known = KNOWN_CLICKS.get(action.action_id);
  if (!known) return 'unknown action id';
  if (action.block_id !== known.block) return 'unknown block id';
  if (action.value === undefined || !known.value.test(action.value)) return 'unknown value';
  return undefined;
}

export function requestGuard(opts: RequestGuardOptions): Middleware<AnyMiddlewareArgs> {
  return async (args) => {
    const { body, next, client } = args;
    // Bolt types ack per kind of request; a command's takes the reply to show, the others take nothing.
    const ack =
      'ack' in args && typeof args.ack === 'function'
        ? (args.ack as (reply?: { response_type: 'ephemeral'; text: string }) => Promise<void>)
        : undefined;
    const type = (body as { type?: unknown }).type;
    const isCommand = typeof (body as { command?: unknown }).command === 'string';

    const expected = await opts.workspace().catch(() => undefined);
    const { teams, orgWide } = teamsOf(body);
    if (expected === undefined || orgWide || teams.length === 0 || teams.some((t) => t !== expected)) {
      opts.logger.warn(
        { teams, orgWide, expected: expected ?? 'unknown', type: isCommand ? 'command' : type },
        'request from another workspace refused',
      );
      const text =
        expected === undefined
          ? 'capi-chatops could not confirm its own workspace yet (Slack auth.test has not answered); nothing happened, try again in a minute.'
          : FOREIGN_TEAM_REPLY;
      if (isCommand && ack) {
        await ack({ response_type: 'ephemeral', text });
        return;
      }
      await ack?.();
      if (type === 'block_actions') await tellClicker(client, body, text, opts.logger);
      return;
    }

    if (type === 'block_actions') {
      const why = unknownClick(body);
      if (why !== undefined) {
        opts.logger.warn({ why }, 'click refused: not a button this version posts');
        await ack?.();
        await tellClicker(client, body, UNKNOWN_CLICK_REPLY, opts.logger);
        return;
      }
    }
    await next();
  };
}

/** An ephemeral to the person who clicked, where they clicked; nothing when the payload says neither. */
async function tellClicker(client: WebClient, body: unknown, text: string, logger: Logger): Promise<void> {
  const parsed = Click.safeParse(body);
  const user = parsed.success ? parsed.data.user.id : undefined;
  const channel = parsed.success ? parsed.data.channel?.id : undefined;
  if (user === undefined || channel === undefined) return;
  try {
    await client.chat.postEphemeral({ channel, user, text });
  } catch (err) {
    logger.warn({ err }, 'could not tell the clicker why nothing happened');
  }
}
