import { describe, expect, it } from 'vitest';
import { isListed, terminalPerson } from '../src/cli/terminal-identity.js';
import { CapiError, ErrorCode } from '../src/errors.js';
import type { MembershipPort } from '../src/slack/membership.js';

const USERS = new Map([
  ['alice', 'U0APPROVE1'],
  ['bob', 'U0APPROVE2'],
]);
/** Slack's answer: bob is in S0APPROVERS. */
const slack: MembershipPort = {
  groupsOf: async (userId, candidates) =>
    userId === 'U0APPROVE2' ? candidates.filter((g) => g === 'S0APPROVERS') : [],
};

describe('the person behind a terminal', () => {
  it('should be the Slack user CAPI_TERMINAL_USERS maps the Unix user to, with its groups from Slack', async () => {
    const bob = terminalPerson('bob', USERS, slack);
    expect(bob).toMatchObject({ unixUser: 'bob', userId: 'U0APPROVE2', via: 'terminal as bob' });
    expect(await bob.groupsAmong(['U0APPROVE1', 'S0APPROVERS', 'S0OTHERS1'])).toEqual(['S0APPROVERS']);
    expect(await isListed(bob, ['S0APPROVERS'])).toBe(true);
    expect(await isListed(terminalPerson('alice', USERS, slack), ['S0APPROVERS'])).toBe(false);
    expect(await isListed(terminalPerson('alice', USERS, slack), ['U0APPROVE1'])).toBe(true);
  });

  it('should refuse a Unix user the mapping does not name, saying what to add', () => {
    expect(() => terminalPerson('mallory', USERS, slack)).toThrow(
      /the Unix user 'mallory' is not in CAPI_TERMINAL_USERS.*add mallory=<your Slack user id>/,
    );
  });

  it('should refuse rather than guess when groups are named and Slack cannot be asked or does not answer', async () => {
    const noToken = terminalPerson('bob', USERS, undefined);
    expect(await noToken.groupsAmong(['U0APPROVE2'])).toEqual([]);
    await expect(noToken.groupsAmong(['S0APPROVERS'])).rejects.toThrow(/set SLACK_BOT_TOKEN/);
    const down = terminalPerson('bob', USERS, {
      groupsOf: async () => {
        throw new Error('fetch failed');
      },
    });
    const err = await down.groupsAmong(['S0APPROVERS']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CapiError);
    expect((err as CapiError).code).toBe(ErrorCode.NotAllowed);
    expect((err as CapiError).message).toMatch(
      /could not read user-group membership from Slack \(fetch failed\); nothing was done/,
    );
  });
});
