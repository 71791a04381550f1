/**
 * setupFiles of the `unit` project (vitest.config.ts): what makes `npm run test:unit` fast is that its files
 * start no process (no sshd, no simulator CLI, no redis-server, no tsc) and never reach the shared Redis. This
 * makes both fail at once, naming the file's way out, instead of letting a file that needs them slow the project
 * down or pass by accident where Redis happens to run.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import { REDIS_URL } from './redis.js';

const MOVE =
  'unit tests start no process and use no Redis: list this file in vitest.config.ts as integration';

const require = createRequire(import.meta.url);
const childProcess = require('node:child_process') as Record<string, unknown>;
for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
  childProcess[name] = () => {
    throw new Error(`${MOVE} (it called child_process.${name})`);
  };
}
// ESM imports of node:child_process see the replaced functions too.
syncBuiltinESMExports();

const redisPort = Number(new URL(REDIS_URL).port || 6379);
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
  // net.connect() hands its arguments on normalized: [options, callback].
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  const port =
    typeof first === 'object' && first !== null && 'port' in first ? Number(first.port) : Number(first);
  if (port === redisPort) throw new Error(`${MOVE} (it connected to Redis at ${REDIS_URL})`);
  return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
} as typeof connect;
