import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isListed, terminalPerson, type UnixAccount } from '../src/cli/terminal-identity.js';
import { assertRootOwned, loadTerminalConfig } from '../src/config/terminal.js';
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
/** A person's login account. */
const person = (name: string): UnixAccount => ({ name, uid: 1001, shell: '/bin/bash' });

describe('the person behind a terminal', () => {
  it('should be the Slack user CAPI_TERMINAL_USERS maps the Unix user to, with its groups from Slack', async () => {
    const bob = terminalPerson(person('bob'), USERS, slack);
    expect(bob).toMatchObject({ unixUser: 'bob', userId: 'U0APPROVE2', via: 'terminal as bob' });
    expect(await bob.groupsAmong(['U0APPROVE1', 'S0APPROVERS', 'S0OTHERS1'])).toEqual(['S0APPROVERS']);
    expect(await isListed(bob, ['S0APPROVERS'])).toBe(true);
    expect(await isListed(terminalPerson(person('alice'), USERS, slack), ['S0APPROVERS'])).toBe(false);
    expect(await isListed(terminalPerson(person('alice'), USERS, slack), ['U0APPROVE1'])).toBe(true);
  });

  it('should count no group when the deployment does not trust Slack groups', async () => {
    const bob = terminalPerson(person('bob'), USERS, slack, false);
    expect(await bob.groupsAmong(['S0APPROVERS'])).toEqual([]);
    expect(await isListed(bob, ['S0APPROVERS'])).toBe(false);
  });

  it('should refuse a Unix user the mapping does not name, saying what to add', () => {
    expect(() => terminalPerson(person('mallory'), USERS, slack)).toThrow(
      /the Unix user 'mallory' is not in CAPI_TERMINAL_USERS.*add mallory=<your Slack user id>/,
    );
  });

  it('should refuse root and system accounts, even when the mapping names them', () => {
    const mapped = new Map([
      ...USERS,
      ['root', 'U0ROOT0001'],
      ['www-data', 'U0WWW00001'],
      ['svc', 'U0SVC00001'],
    ]);
    expect(() => terminalPerson({ name: 'root', uid: 0, shell: '/bin/bash' }, mapped, slack)).toThrow(
      /refused: 'root' is root, not a person's account; run capi-chatops as yourself/,
    );
    expect(() => terminalPerson({ name: 'www-data', uid: 33, shell: '/bin/sh' }, mapped, slack)).toThrow(
      /'www-data' is a system account \(uid 33 < 1000\)/,
    );
    expect(() =>
      terminalPerson({ name: 'svc', uid: 1500, shell: '/usr/sbin/nologin' }, mapped, slack),
    ).toThrow(/'svc' is a service account \(its shell is \/usr\/sbin\/nologin\)/);
  });

  it('should refuse rather than guess when groups are named and Slack cannot be asked or does not answer', async () => {
    const noToken = terminalPerson(person('bob'), USERS, undefined);
    expect(await noToken.groupsAmong(['U0APPROVE2'])).toEqual([]);
    await expect(noToken.groupsAmong(['S0APPROVERS'])).rejects.toThrow(/set SLACK_BOT_TOKEN/);
    const down = terminalPerson(person('bob'), USERS, {
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

describe("the terminal's rules", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capi-policy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("should come from the deployment's policy file, never from the caller's environment", async () => {
    const file = path.join(dir, 'policy.env');
    await writeFile(
      file,
      [
        '# the deployment policy',
        'CAPI_APPROVERS=U0APPROVE1',
        'CAPI_OPERATORS="U0OPERATE1"',
        'CAPI_TERMINAL_USERS=alice=U0APPROVE1',
        'QUEUE_PREFIX=capi',
        '',
      ].join('\n'),
    );
    const caller = {
      CAPI_APPROVERS: 'U0MALLORY1',
      CAPI_TERMINAL_USERS: 'mallory=U0APPROVE1',
      CAPI_ALLOW_SELF_APPROVAL: 'true',
      COMMANDS_DIR: dir,
      REDIS_URL: 'redis://127.0.0.1:6390',
    };
    const { config, ignored } = await loadTerminalConfig({ kind: 'development', file }, caller);
    expect(config.approval).toMatchObject({
      approvers: ['U0APPROVE1'],
      operators: ['U0OPERATE1'],
      allowSelfApproval: false,
    });
    expect([...config.terminalUsers]).toEqual([['alice', 'U0APPROVE1']]);
    // What counts as read-only comes from the runbooks the deployment ships, not a copy the caller points at.
    expect(config.commandsDir).not.toBe(dir);
    // The caller's own connection is theirs to give.
    expect(config.redis).toMatchObject({ mode: 'single', url: 'redis://127.0.0.1:6390' });
    expect(ignored).toEqual([
      'CAPI_APPROVERS',
      'CAPI_ALLOW_SELF_APPROVAL',
      'CAPI_TERMINAL_USERS',
      'COMMANDS_DIR',
    ]);
    await expect(
      loadTerminalConfig({ kind: 'development', file: path.join(dir, 'none') }, {}),
    ).rejects.toThrow(/cannot read the deployment's policy file .*never from your environment/);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'should take an installed policy file only when root owns it and nobody else can write it',
    async () => {
      const etc = path.join(dir, 'etc');
      await mkdir(etc, { mode: 0o755 });
      const file = path.join(etc, 'policy.env');
      await writeFile(file, 'CAPI_APPROVERS=U0APPROVE1\n', { mode: 0o644 });
      await chmod(etc, 0o755);
      await expect(assertRootOwned(file)).resolves.toBeUndefined();
      await chmod(file, 0o666);
      await expect(assertRootOwned(file)).rejects.toThrow(
        /must be owned by root and writable by root only \(it is uid 0, mode 666\)/,
      );
      await chmod(file, 0o644);
      await chown(file, 1000, 1000);
      await expect(assertRootOwned(file)).rejects.toThrow(/\(it is uid 1000, mode 644\)/);
      await chown(file, 0, 0);
      await chmod(etc, 0o777);
      await expect(assertRootOwned(file)).rejects.toThrow(new RegExp(`${etc} must be owned by root`));
    },
  );
});
