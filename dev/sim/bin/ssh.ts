/** The jumphost's `ssh` to the mgmt VM: loopback only, real TCP connect, stdin read to EOF. */
import { runHopSsh } from '../cloud/hop.js';
import { simDirFromEnv } from '../cloud/store.js';

async function main(): Promise<number> {
  let dir: string;
  try {
    dir = simDirFromEnv();
  } catch (err) {
    process.stderr.write(`capi-sim ssh: ${err instanceof Error ? err.message : String(err)}\n`);
    return 255;
  }
  return runHopSsh({
    dir,
    argv: process.argv.slice(2),
    env: process.env,
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
    process.stderr.write(`capi-sim ssh: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 255;
  },
);
