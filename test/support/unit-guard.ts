/**
 * setupFiles of the `unit` project (vitest.config.ts): what makes `npm run test:unit` fast is that its files
 * start no process (no sshd, no simulator CLI, no redis-server, no tsc) and never reach the shared Redis. This
 * makes both fail at once, naming the file's way out, instead of letting a file that needs them slow the project
 * down or pass by accident where Redis happens to run.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';
import net from 'node:net';

/** As test/support/redis.ts reads it (not imported: ioredis would load into every unit file for this). */
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
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
const GUARDED = Symbol.for('capi-unit-guard');
const proto = net.Socket.prototype as net.Socket & { [GUARDED]?: true };
// The project runs its files in one process (isolate: false), and this file before each of them: wrap once.
if (!proto[GUARDED]) {
  const connect = proto.connect;
  proto.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
    // net.connect() hands its arguments on normalized: [options, callback].
    const first = Array.isArray(args[0]) ? args[0][0] : args[0];
    const port =
      typeof first === 'object' && first !== null && 'port' in first ? Number(first.port) : Number(first);
    if (port === redisPort) throw new Error(`${MOVE} (it connected to Redis at ${REDIS_URL})`);
    return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof connect;
  proto[GUARDED] = true;
}
