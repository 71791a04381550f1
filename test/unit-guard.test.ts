/**
 * The unit project's promise (vitest.config.ts): its files start no process and never reach Redis, so
 * `npm run test:unit` stays fast and needs neither. A file listed there that tries either fails at once.
 */
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { REDIS_URL } from './support/redis.js';

describe('the unit project', () => {
  it('should fail a unit test that starts a process, naming where the file belongs', () => {
    expect(() => spawn('true')).toThrow(/list this file in vitest\.config\.ts as integration .*spawn/);
    expect(() => execFileSync('true')).toThrow(/execFileSync/);
  });

  it('should fail a unit test that connects to the shared Redis, and let it reach other loopback ports', async () => {
    const port = Number(new URL(REDIS_URL).port || 6379);
    expect(() => net.connect(port, '127.0.0.1')).toThrow(/use no Redis/);
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port: free } = server.address() as net.AddressInfo;
    const socket = net.connect(free, '127.0.0.1');
    await new Promise((r) => socket.once('close', r));
    server.close();
  });
});
