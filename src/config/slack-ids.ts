/**
 * People in the environment, by Slack id: who may approve or operate (CAPI_APPROVERS, CAPI_OPERATORS: user and
 * user-group ids) and who each terminal user is (CAPI_TERMINAL_USERS: Unix user -> Slack user id). Ids, never
 * names: a display name can be changed by its owner to anyone else's.
 */
import { z } from 'zod';

const SLACK_ID = /^[UWS][A-Z0-9]{6,20}$/;
const SLACK_USER_ID = /^[UW][A-Z0-9]{6,20}$/;
const UNIX_USER = /^[a-z_][a-z0-9_.-]{0,31}$/;
const TERMINAL_USERS_EXAMPLE = 'alice=U0123ABCD,bob=U0456EFGH';

/** Slack user ids (U…, W…) and user-group ids (S…), space or comma separated; duplicates kept once. */
export const slackIdListSchema = z.string().transform((value, ctx) => {
  const ids: string[] = [];
  for (const entry of value.split(/[\s,]+/)) {
    if (entry === '') continue;
    if (!SLACK_ID.test(entry)) {
      ctx.addIssue({
        code: 'custom',
        message:
          `"${entry}" is not a Slack user id (U… or W…) or user-group id (S…); ` +
          'use ids, not names: profile > ⋮ > Copy member ID, e.g. U0123ABCD',
      });
      continue;
    }
    if (!ids.includes(entry)) ids.push(entry);
  }
  return ids;
});

/** `alice=U0123ABCD,bob=U0456EFGH`: each Unix account that may use the terminal front, and the Slack user it is. */
export const terminalUsersSchema = z.string().transform((value, ctx) => {
  const users = new Map<string, string>();
  for (const entry of value.split(/[\s,]+/)) {
    if (entry === '') continue;
    const [unix = '', slack = '', ...extra] = entry.split('=');
    if (extra.length > 0 || !entry.includes('=') || !UNIX_USER.test(unix)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${entry.slice(0, 60)}" is not unixuser=SlackUserId; list them comma separated, e.g. ${TERMINAL_USERS_EXAMPLE}`,
      });
    } else if (!SLACK_USER_ID.test(slack)) {
      ctx.addIssue({
        code: 'custom',
        message: `${unix} must map to one person's Slack user id (U… or W…, not a group), e.g. ${unix}=U0123ABCD (profile > ⋮ > Copy member ID)`,
      });
    } else if (users.has(unix)) {
      ctx.addIssue({ code: 'custom', message: `${unix} is listed twice: keep one entry per Unix user` });
    } else {
      users.set(unix, slack);
    }
  }
  return users;
});
