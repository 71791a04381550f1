/**
 * The Slack side of a site: the bot token works and carries the scopes the app manifest lists (Slack returns
 * a token's scopes in the `x-oauth-scopes` header of every Web API answer), and the bot is a member of every
 * channel the site names (conversations.info's `is_member`): a bot outside its incident channel cannot post
 * the run's thread there.
 */
import type { WebClient } from '@slack/web-api';
import type { SiteProfile } from '../config/site.js';
import { type DoctorLine, line } from './report.js';

/** The bot scopes slack/manifest.yaml lists (test/slack-manifest.test.ts holds the two equal). */
export const BOT_SCOPES = [
  'commands',
  'chat:write',
  'files:write',
  'usergroups:read',
  'channels:read',
  'groups:read',
] as const;

function slackError(err: unknown): string {
  return (err as { data?: { error?: string } }).data?.error ?? (err as Error).message;
}

/**
 * `lone`: the site is the deployment's only one, so it serves every channel when it names none.
 */
export async function slackChecks(
  client: WebClient,
  site: SiteProfile,
  lone: boolean,
): Promise<DoctorLine[]> {
  let scopes: readonly string[] | undefined;
  let bot = 'capi-chatops';
  const lines: DoctorLine[] = [];
  try {
    const who = await client.auth.test();
    scopes = who.response_metadata?.scopes;
    bot = who.user ?? bot;
    lines.push(
      line(
        'slack token',
        'ok',
        `bot ${who.user ?? '?'} (${who.user_id ?? '?'}) in ${who.team ?? '?'} (${who.team_id ?? '?'})`,
      ),
    );
  } catch (err) {
    return [
      line(
        'slack token',
        'fail',
        `auth.test: ${slackError(err)}`,
        "Set SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-, OAuth & Permissions), and reinstall the app if it was revoked.",
      ),
    ];
  }
  const missing = scopes === undefined ? [] : BOT_SCOPES.filter((s) => !scopes.includes(s));
  lines.push(
    scopes === undefined
      ? line(
          'slack scopes',
          'warn',
          "Slack did not say the token's scopes (no x-oauth-scopes header)",
          `Check by hand that the app has ${BOT_SCOPES.join(', ')}.`,
        )
      : missing.length > 0
        ? line(
            'slack scopes',
            'fail',
            `the token lacks ${missing.join(', ')} (it has ${scopes.join(', ') || 'none'})`,
            'Add them to the app (OAuth & Permissions, or recreate it from slack/manifest.yaml) and reinstall it to the workspace.',
          )
        : line(
            'slack scopes',
            'ok',
            `the token has every scope slack/manifest.yaml lists (${BOT_SCOPES.join(', ')})`,
          ),
  );
  if (site.slack_channels.length === 0) {
    lines.push(
      lone
        ? line('slack channels', 'ok', 'the site names no channel: as the only site it serves every channel')
        : line(
            'slack channels',
            'warn',
            'the site names no channel, and there are several sites: /capi works for it from no channel',
            'Add its incident channel ids to slack_channels in the site profile.',
          ),
    );
  }
  for (const channel of site.slack_channels) {
    const check = `slack channel ${channel}`;
    try {
      const res = await client.conversations.info({ channel });
      const name = res.channel?.name !== undefined ? `#${res.channel.name}` : channel;
      lines.push(
        res.channel?.is_member === true
          ? line(check, 'ok', `the bot is a member of ${name}`)
          : line(
              check,
              'fail',
              `the bot is not a member of ${name}: it cannot post the runs' threads there`,
              `Invite it: /invite @${bot} in ${name}.`,
            ),
      );
    } catch (err) {
      const error = slackError(err);
      lines.push(
        line(
          check,
          'fail',
          `conversations.info: ${error}`,
          error === 'channel_not_found'
            ? 'A private channel the bot was never invited to, or a wrong id in slack_channels: invite the bot, or fix the id (the channel\'s "About" tab shows it).'
            : error === 'missing_scope'
              ? 'The token lacks channels:read (public) or groups:read (private channels): add them and reinstall the app.'
              : 'Check the channel id in slack_channels.',
        ),
      );
    }
  }
  return lines;
}
