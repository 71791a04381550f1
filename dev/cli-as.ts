/**
 * `node dist/dev/cli-as.js UNIXUSER COMMAND ...`: capi-chatops as if UNIXUSER ran it, for tests and demos
 * that need several people on one machine without root. Development code: the product build has no way to
 * name the Unix user, the installed `capi-chatops` always acts as the account that runs it.
 */
import { main } from '../src/cli/main.js';

const [unixUser, ...argv] = process.argv.slice(2);
if (unixUser === undefined || unixUser === '') {
  process.stderr.write('usage: cli-as UNIXUSER COMMAND [ARGS...]\n');
  process.exitCode = 2;
} else {
  process.exitCode = await main(argv, { unixUser: () => unixUser });
}
