/** `juju` stand-in for the jumphost; the state dir comes from CAPI_SIM_DIR. */
import { runJuju } from '../cloud/juju.js';
import { simDirFromEnv } from '../cloud/store.js';

async function main(): Promise<number> {
  return runJuju({
    dir: simDirFromEnv(),
    argv: process.argv.slice(2),
    io: { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    // stdin may still be open (a caller that never closes it); do not let it keep us alive.
    process.stdin.destroy();
  },
  (err: unknown) => {
    process.stderr.write(`capi-sim juju: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
