/**
 * Who a terminal command acts as: the Unix account running it, mapped to one Slack user by
 * CAPI_TERMINAL_USERS (in the deployment's policy file), with its user groups read from Slack like the Slack
 * front reads them. Nothing typed on the command line names a person or a group: a typed `--as` let anyone
 * who could reach Redis approve as any approver, or submit "as" a colleague and then approve their own run.
 * Root and system accounts are refused: they are nobody in particular.
 */
import { userInfo } from 'node:os';
import { CapiError, ErrorCode } from '../errors.js';
import type { MembershipPort } from '../slack/membership.js';

/** A Unix account as the terminal sees it. */
export interface UnixAccount {
  readonly name: string;
  readonly uid: number;
  /** Its login shell (from the password database). */
  readonly shell: string;
}

/** The Unix account running this process; tests pass another source (no root needed to act as alice). */
export type UnixUserSource = () => UnixAccount;
export const systemUnixUser: UnixUserSource = () => {
  const u = userInfo();
  return { name: u.username, uid: u.uid, shell: u.shell ?? '' };
};

/**
 * The lowest uid of a person's account: Debian's and RHEL's UID_MIN (/etc/login.defs). Below it are root
 * (0) and the system accounts packages create (daemon, www-data, redis, the service account capi-chatops
 * itself runs as on most hosts).
 */
export const FIRST_PERSON_UID = 1000;
/** Shells of accounts nobody logs in to (nobody, service accounts with uids above UID_MIN). */
const NO_LOGIN_SHELL = /\/(nologin|false)$/;

/**
 * Refuses root and system accounts (uid < 1000, or a nologin/false shell): a decision, a run or a cancel
 * must be someone's, and such an account is shared by whoever can become it (sudo, a compromised service).
 */
export function assertPersonAccount(account: UnixAccount): void {
  const why =
    account.uid === 0
      ? 'root'
      : account.uid < FIRST_PERSON_UID
        ? `a system account (uid ${account.uid} < ${FIRST_PERSON_UID})`
        : NO_LOGIN_SHELL.test(account.shell)
          ? `a service account (its shell is ${account.shell})`
          : undefined;
  if (why !== undefined) {
    throw new CapiError(
      ErrorCode.NotAllowed,
      `refused: '${account.name}' is ${why}, not a person's account; run capi-chatops as yourself (your own login, listed in CAPI_TERMINAL_USERS). Nothing was done.`,
    );
  }
}

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
  account: UnixAccount,
  terminalUsers: ReadonlyMap<string, string>,
  membership: MembershipPort | undefined,
  trustSlackGroups = true,
): TerminalPerson {
  assertPersonAccount(account);
  const unixUser = account.name;
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
      // Groups grant nothing unless the deployment trusts them (CAPI_TRUST_SLACK_GROUPS).
      if (groups.length === 0 || !trustSlackGroups) return [];
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
