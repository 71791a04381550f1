import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunFencedError } from '../src/errors.js';
import { usePlainJumphost } from './support/engine.js';
import { eventually } from './support/eventually.js';

const jump = usePlainJumphost();

const run = (token: number, mark: string) =>
  jump.executor.exec({
    script: `echo ${mark} >> ~/sent`,
    env: {},
    timeoutMs: 10_000,
    fence: { scope: 'r1fence', token },
  });

const sent = async () =>
  (await readFile(path.join(jump.home, 'sent'), 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('the fence on the jumphost', () => {
  it('should run commands of the newest owner and refuse an older owner once a newer one was seen', async () => {
    expect((await run(1, 'first-owner')).code).toBe(0);
    // A second agent took the run over: its first command raises the fence on the jumphost.
    expect((await run(2, 'new-owner')).code).toBe(0);
    // The first agent wakes up from a pause and sends: refused before anything of the step runs.
    const refused = await run(1, 'stale-send').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RunFencedError);
    expect((refused as Error).message).toMatch(/token 1 < 2/);
    expect((await run(2, 'new-owner-again')).code).toBe(0);
    expect(await sent()).toEqual(['first-owner', 'new-owner', 'new-owner-again']);
    // Fences of other runs are independent.
    const other = await jump.executor.exec({
      script: 'echo other >> ~/sent',
      env: {},
      timeoutMs: 10_000,
      fence: { scope: 'r2fence', token: 1 },
    });
    expect(other.code).toBe(0);
    expect((await readFile(path.join(jump.home, '.capi-chatops/fence/r1fence'), 'utf8')).trim()).toBe('2');
  });

  it('should refuse to run when the fence file on the jumphost holds anything but a token', async () => {
    const dir = path.join(jump.home, '.capi-chatops', 'fence');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'r3broken'), 'garbage\n');
    const before = await sent();
    const refused = await jump.executor.exec({
      script: 'echo past-a-broken-fence >> ~/sent',
      env: {},
      timeoutMs: 10_000,
      fence: { scope: 'r3broken', token: 3 },
    });
    expect(refused.code).toBe(74);
    expect(refused.stderr).toMatch(/fence\/r3broken on the jumphost holds no token; nothing was run/);
    expect(await sent()).toEqual(before);
  });

  it("should run the owner's later commands without the fence lock once its token is on record", async () => {
    expect((await run(7, 'owner-first')).code).toBe(0);
    // Something else holds the run's fence lock (a stuck check, a slow disk): the owner's first command
    // raised the token already, so its next ones neither wait for the lock nor fail on it.
    const lockFile = path.join(jump.home, '.capi-chatops/fence/r1fence.lock');
    const holder = spawn('flock', [lockFile, 'sleep', '60'], { stdio: 'ignore' });
    try {
      await eventually(
        'the fence lock to be held',
        () =>
          new Promise<true | undefined>((resolve) => {
            // flock -n answers 1 at once when someone else holds the lock.
            const probe = spawn('flock', ['-n', lockFile, 'true'], { stdio: 'ignore' });
            probe.once('exit', (code) => resolve(code === 1 ? true : undefined));
          }),
      );
      const next = await run(7, 'owner-second');
      expect(next.code).toBe(0);
      expect(next.durationMs).toBeLessThan(5000);
      expect((await sent()).slice(-2)).toEqual(['owner-first', 'owner-second']);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it("should remove other runs' fence files past the retention and keep the command's own run's", async () => {
    const dir = path.join(jump.home, '.capi-chatops', 'fence');
    await mkdir(dir, { recursive: true });
    const old = new Date(Date.now() - 31 * 86_400_000);
    const put = async (name: string, content: string, aged: boolean) => {
      await writeFile(path.join(dir, name), content);
      if (aged) await utimes(path.join(dir, name), old, old);
    };
    // A run nobody took for 31 days: its token and lock go.
    await put('rfold', '3\n', true);
    await put('rfold.lock', '', true);
    // A run taken over lately whose lock file is old (it is made once): both stay.
    await put('rflive', '5\n', false);
    await put('rflive.lock', '', true);
    // A lock left without its token file: it goes.
    await put('rforphan.lock', '', true);
    // The command's own run, untouched for as long: never removed by its own command.
    await put('r3fence', '1\n', true);
    await put('r3fence.lock', '', true);

    // The default retention is 30 days; a new owner's first command (token 2 over 1) prunes.
    const own = await jump.executor.exec({
      script: 'echo own >> ~/sent',
      env: {},
      timeoutMs: 10_000,
      fence: { scope: 'r3fence', token: 2 },
    });
    expect(own.code).toBe(0);
    const left = await readdir(dir);
    expect(left).not.toContain('rfold');
    expect(left).not.toContain('rfold.lock');
    expect(left).not.toContain('rforphan.lock');
    expect(left).toEqual(expect.arrayContaining(['rflive', 'rflive.lock', 'r3fence', 'r3fence.lock']));
    expect((await readFile(path.join(dir, 'r3fence'), 'utf8')).trim()).toBe('2');
  });
});
