/**
 * Helper process for the harness: `fip-listener.js <simDir> <port> <parentPid>` keeps the mgmt
 * VM's FIP:22 listener in step with the simulated state until SIGTERM, or until the parent dies.
 */
import { FipListener } from '../cloud/fip.js';

async function main(): Promise<void> {
  const [dir, portArg, parentArg] = process.argv.slice(2);
  const port = Number(portArg);
  const parent = Number(parentArg);
  if (dir === undefined || !Number.isInteger(port) || port <= 0) {
    process.stderr.write('usage: fip-listener.js <simDir> <port> [parentPid]\n');
    process.exitCode = 2;
    return;
  }
  const listener = new FipListener(dir, port);
  await listener.start();
  const stop = () => void listener.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  if (Number.isInteger(parent) && parent > 0) {
    // An orphaned listener would keep a loopback port open forever: follow the parent out.
    setInterval(() => {
      try {
        process.kill(parent, 0);
      } catch {
        stop();
      }
    }, 500);
  }
  process.stdout.write('ready\n');
}

void main();
