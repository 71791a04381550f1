/**
 * `node dist/dev/cli-as.js UNIXUSER COMMAND ...`: capi-chatops as if UNIXUSER ran it, for tests and demos
 * that need several people on one machine without root. Development code: the product build has no way to
 * name the Unix user or the policy file; the installed `capi-chatops` always acts as the account that runs
 * it, under /etc/capi-chatops/policy.env.
 *
 * The policy file is CAPI_DEV_POLICY_FILE (required here). UNIXUSER's uid and shell come from /etc/passwd
 * when it is listed there (so `root` or `nobody` are refused as the product refuses them), else it is a
 * person's account (uid 2000, /bin/bash).
 */
import { readFileSync } from 'node:fs';
import { main } from '../src/cli/main.js';
import type { UnixAccount } from '../src/cli/terminal-identity.js';

function account(name: string): UnixAccount {
  let passwd = '';
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    // No password database: every name is a person's account.
  }
  for (const line of passwd.split('\n')) {
    const [user, , uid, , , , shell] = line.split(':');
    if (user === name && uid !== undefined) return { name, uid: Number(uid), shell: shell ?? '' };
  }
  return { name, uid: 2000, shell: '/bin/bash' };
}

const [unixUser, ...argv] = process.argv.slice(2);
const policyFile = process.env.CAPI_DEV_POLICY_FILE;
if (unixUser === undefined || unixUser === '' || policyFile === undefined || policyFile === '') {
  process.stderr.write('usage: CAPI_DEV_POLICY_FILE=FILE cli-as UNIXUSER COMMAND [ARGS...]\n');
  process.exitCode = 2;
} else {
  process.exitCode = await main(argv, {
    unixUser: () => account(unixUser),
    policy: { kind: 'development', file: policyFile },
  });
}
