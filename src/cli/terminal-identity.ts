/**
 * Who a terminal command acts as: the Unix account running it, mapped to one Slack user by
 * CAPI_TERMINAL_USERS (set by whoever runs capi-chatops on the host), with its user groups read from Slack
 * like the Slack front reads them. Nothing typed on the command line names a person or a group: a typed
 * `--as` let anyone who could reach Redis approve as any approver, or submit "as" a colleague and then
 * approve their own run.
 */
import { userInfo } from 'node:os';
import { CapiError, ErrorCode } from '../errors.js';
import type { MembershipPort } from '../slack/membership.js';

/** The Unix user running this process; tests pass another source (no root needed to act as alice). */
export type UnixUserSource = () => string;
export const systemUnixUser: UnixUserSource = () => userInfo().username;

export interface TerminalPerson {
  readonly unixUser: string;
  /** The Slack user id CAPI_TERMINAL_USERS maps the Unix user to. */
  readonly userId: string;
  /** What records and threads say about where a request came from. */
  readonly via: string;
  /** The person's user groups among `candidates` (S… ids), as Slack says today. */
  groupsAmong(candidates: readonly string[]): Promise<string[]>;
}

/**
 * The person behind this terminal, or a refusal naming the fix. `membership` is undefined when no bot token
 * is configured: then only lists of user ids can be checked, and a list naming a group is refused rather
 * than guessed.
 */
export function terminalPerson(
  unixUser: string,
  terminalUsers: ReadonlyMap<string, string>,
  membership: MembershipPort | undefined,
): TerminalPerson {
  const userId = terminalUsers.get(unixUser);
  if (userId === undefined) {
    throw new CapiError(
      ErrorCode.NotAllowed,
      `the Unix user '${unixUser}' is not in CAPI_TERMINAL_USERS, so this terminal does not know which Slack user you are; ` +
        `ask whoever runs capi-chatops on this host to add ${unixUser}=<your Slack user id> to it. Nothing was done.`,
    );
  }
  return {
    unixUser,
    userId,
    via: `terminal as ${unixUser}`,
    async groupsAmong(candidates) {
      const groups = candidates.filter((id) => id.startsWith('S'));
      if (groups.length === 0) return [];
      if (membership === undefined) {
        throw new CapiError(
          ErrorCode.ConfigInvalid,
          `the rules name user groups (${groups.join(', ')}) and group membership comes from Slack: set SLACK_BOT_TOKEN (usergroups:read) for the terminal too`,
        );
      }
      try {
        return await membership.groupsOf(userId, groups);
      } catch (err) {
        throw new CapiError(
          ErrorCode.NotAllowed,
          `could not read user-group membership from Slack (${(err as Error).message}); nothing was done, try again`,
          { cause: err },
        );
      }
    },
  };
}

/** A user id in the list, or a member of a group in it. */
export async function isListed(person: TerminalPerson, list: readonly string[]): Promise<boolean> {
  return list.includes(person.userId) || (await person.groupsAmong(list)).length > 0;
}
