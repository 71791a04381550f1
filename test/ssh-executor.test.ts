import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type RunningSshd, startSshd } from '../dev/sim/sshd.js';
import { ErrorCode, HostKeyMismatchError, SshError } from '../src/errors.js';
import { fingerprintOf } from '../src/host-key.js';
import { connectSsh } from '../src/ssh/executor.js';
import { shellQuote } from '../src/ssh/quote.js';
import { buildRemoteCommand } from '../src/ssh/remote-command.js';
import type { ExecRequest, OutputStream, RemoteExecutor } from '../src/ssh/types.js';

const execFileAsync = promisify(execFile);

let root: string;
let home: string;
let sshd: RunningSshd;
let ex: RemoteExecutor;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'capi-ssh-exec-test-'));
  home = path.join(root, 'home');
  await mkdir(home);
  sshd = await startSshd({ dir: path.join(root, 'sshd'), homeDir: home, pathPrepend: [] });
  ex = await connectSsh({ target: sshd.target });
});

afterAll(async () => {
  await ex?.close();
  await sshd?.stop();
  await rm(root, { recursive: true, force: true });
});

function run(script: string, more: Partial<ExecRequest> = {}) {
  return ex.exec({ script, env: {}, timeoutMs: 10_000, ...more });
}

/** Asks the jumphost itself whether any process of the group is left (zombies do not count). */
async function groupAlive(pgid: number): Promise<boolean> {
  const r = await run(
    `ps -e -o pgid=,stat= | awk '$1 == ${pgid} && $2 !~ /^Z/' | grep -q . && echo alive || echo gone`,
  );
  return r.stdout.trim() === 'alive';
}

async function expectRejection(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

describe('shellQuote and fingerprintOf', () => {
  it('should round-trip any text through bash when a value is single-quoted', async () => {
    const value = `it's "x" $(y) \`z\` \\ ; \n end`;
    const { stdout } = await execFileAsync('bash', ['-c', `printf '%s' ${shellQuote(value)}`]);
    expect(stdout).toBe(value);
  });

  it('should match ssh-keygen when fingerprinting a public key blob', async () => {
    const pub = await readFile(path.join(root, 'sshd', 'ssh_host_ed25519_key.pub'), 'utf8');
    const blob = Buffer.from(pub.split(' ')[1] ?? '', 'base64');
    expect(fingerprintOf(blob)).toBe(sshd.target.hostKey);
  });
});

describe('connectSsh', () => {
  it('should refuse with both fingerprints when the host key does not match the pin', async () => {
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const err = await expectRejection(connectSsh({ target: { ...sshd.target, hostKey: wrong } }));
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect((err as HostKeyMismatchError).code).toBe(ErrorCode.SshHostKeyMismatch);
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(sshd.target.hostKey);
  });

  it('should refuse before connecting when the pin is malformed', async () => {
    const err = await expectRejection(connectSsh({ target: { ...sshd.target, hostKey: 'ab:cd:ef' } }));
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe(ErrorCode.SshConnect);
    expect(err.message).toContain('SHA256:<43 base64 characters>');
    expect(err.message).toContain('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub');
  });

  it('should name host:port and the fix when the connection is refused', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const addr = srv.address() as net.AddressInfo;
        srv.close(() => resolve(addr.port));
      });
    });
    const err = await expectRejection(connectSsh({ target: { ...sshd.target, port } }));
    expect((err as SshError).code).toBe(ErrorCode.SshConnect);
    expect(err.message).toContain(`${sshd.target.user}@127.0.0.1:${port}`);
    expect(err.message).toMatch(/connection refused/);
  });

  it('should report a handshake timeout when the port never speaks SSH', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const err = await expectRejection(
        connectSsh({ target: { ...sshd.target, port }, readyTimeoutMs: 300 }),
      );
      expect((err as SshError).code).toBe(ErrorCode.SshConnect);
      expect(err.message).toContain(
        `no SSH handshake with ${sshd.target.user}@127.0.0.1:${port} within 300 ms`,
      );
    } finally {
      silent.close();
    }
  });

  it('should tell how to authorize the key when the server refuses it', async () => {
    const key = path.join(root, 'stranger_key');
    await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const err = await expectRejection(connectSsh({ target: { ...sshd.target, privateKeyPath: key } }));
    expect((err as SshError).code).toBe(ErrorCode.SshConnect);
    expect(err.message).toContain('authorized_keys');
    expect(err.message).toContain(key);
  });

  it('should name the key path when the key file cannot be read', async () => {
    const missing = path.join(root, 'no-such-key');
    const err = await expectRejection(connectSsh({ target: { ...sshd.target, privateKeyPath: missing } }));
    expect((err as SshError).code).toBe(ErrorCode.SshConnect);
    expect(err.message).toContain(missing);
  });
});

describe('exec', () => {
  it('should report exit codes and signals when steps end', async () => {
    expect((await run('true')).code).toBe(0);
    const three = await run('exit 3');
    expect(three).toMatchObject({ code: 3, signal: null, timedOut: false, cancelled: false });
    const killed = await run('kill -KILL $$');
    expect(killed).toMatchObject({ code: null, signal: 'SIGKILL' });
  });

  it('should start the script as bash -c would: no arguments, no wrapper variables, its values exported', async () => {
    const r = await run(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansion, not a JS template
      'echo "$#|$0|${capi_script-unset}|${g-unset}|$A"; bash --norc -c \'echo "child sees $A"\'; exit 4',
      { env: { A: "it's $HOME" } },
    );
    expect(r.stdout).toBe("0|capi-step|unset|unset|it's $HOME\nchild sees it's $HOME\n");
    expect(r.code).toBe(4);
  });

  it('should run the script under bash when it uses bash-only syntax', async () => {
    const r = await run('shopt -s extglob; x=abbc; [[ $x == a+(b)c ]] && echo bash');
    expect(r.stdout).toBe('bash\n');
  });

  it('should stream stdout and stderr line by line in order when a step writes both', async () => {
    const lines: [OutputStream, string][] = [];
    const r = await run('echo out1; echo err1 >&2; echo out2; echo err2 >&2; printf "partial"', {
      onLine: (s, l) => lines.push([s, l]),
    });
    expect(lines.filter(([s]) => s === 'stdout').map(([, l]) => l)).toEqual(['out1', 'out2', 'partial']);
    expect(lines.filter(([s]) => s === 'stderr').map(([, l]) => l)).toEqual(['err1', 'err2']);
    // The pgid marker the wrapper prints never reaches the caller.
    expect(r.stdout).toBe('out1\nout2\npartial');
    expect(r.stderr).toBe('err1\nerr2\n');
  });

  it('should keep multi-byte characters whole when they are split across chunks', async () => {
    const lines: string[] = [];
    // The pause makes sshd ship the two halves of '€' (e2 82 | ac) in separate packets.
    const r = await run(String.raw`printf 'a\xe2\x82'; sleep 0.2; printf '\xac b\n'`, {
      onLine: (_s, l) => lines.push(l),
    });
    expect(lines).toEqual(['a€ b']);
    expect(r.stdout).toBe('a€ b\n');
    const big = await run(`head -c 100000 /dev/zero | tr '\\0' x | sed 's/x/€/g'`);
    expect(big.stdout).toBe('€'.repeat(100_000));
  });

  it('should pass env values verbatim and execute nothing in them when they hold shell syntax', async () => {
    const marker = path.join(os.tmpdir(), `capi-pwned-${process.pid}-${Date.now()}`);
    const hostile = [
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `'; touch ${marker}; echo '`,
      `"; touch ${marker}; echo "`,
      `a\nb; touch ${marker}`,
      `\\' $HOME * ~ !! & | > ${marker}`,
    ];
    const env = Object.fromEntries(hostile.map((v, i) => [`V${i}`, v]));
    const r = await run(hostile.map((_, i) => `printf '%s\\0' "$V${i}"`).join('; '), { env });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(hostile);
    expect(existsSync(marker)).toBe(false);
  });

  it('should refuse env names that are not shell-safe or are reserved', async () => {
    await expect(run('true', { env: { 'A;B': 'x' } })).rejects.toThrow(/\^\[A-Z_\]\[A-Z0-9_\]\*\$/);
    await expect(run('true', { env: { lower: 'x' } })).rejects.toThrow(/not allowed/);
    await expect(run('true', { env: { BASH_ENV: '/tmp/x' } })).rejects.toThrow(/reserved/);
    expect(() => buildRemoteCommand('true', { LD_PRELOAD: 'x' })).toThrow(/reserved/);
  });

  it('should close stdin when a step reads it', async () => {
    const cat = await run('cat', { timeoutMs: 5000 });
    expect(cat).toMatchObject({ stdout: '', code: 0, timedOut: false });
    const read = await run('read x; echo "rc=$?"', { timeoutMs: 5000 });
    expect(read.stdout).toBe('rc=1\n');
  });

  it('should kill the remote process group and report timedOut when the timeout elapses', async () => {
    const pidFile = path.join(home, 'timeout.pid');
    const r = await run('echo $$ > "$PID_FILE"; sleep 300 & sleep 300', {
      env: { PID_FILE: pidFile },
      timeoutMs: 500,
    });
    expect(r).toMatchObject({ timedOut: true, cancelled: false, code: null, signal: 'SIGTERM' });
    expect(r.durationMs).toBeGreaterThanOrEqual(500);
    expect(r.durationMs).toBeLessThan(3000);
    const pgid = Number(await readFile(pidFile, 'utf8'));
    expect(await groupAlive(pgid)).toBe(false);
  });

  it('should SIGKILL the group after the grace when the step ignores TERM', async () => {
    const own = await connectSsh({ target: sshd.target, killGraceMs: 300 });
    try {
      const pidFile = path.join(home, 'ignore-term.pid');
      const r = await own.exec({
        script: `trap '' TERM; echo $$ > "$PID_FILE"; sleep 300`,
        env: { PID_FILE: pidFile },
        timeoutMs: 300,
      });
      expect(r).toMatchObject({ timedOut: true, code: null, signal: 'SIGKILL' });
      expect(await groupAlive(Number(await readFile(pidFile, 'utf8')))).toBe(false);
    } finally {
      await own.close();
    }
  });

  it('should kill the group and report cancelled when the signal aborts', async () => {
    const pidFile = path.join(home, 'abort.pid');
    const ac = new AbortController();
    const r = await run('echo $$ > "$PID_FILE"; echo started; sleep 300', {
      env: { PID_FILE: pidFile },
      timeoutMs: 30_000,
      signal: ac.signal,
      onLine: (_s, line) => {
        if (line === 'started') ac.abort();
      },
    });
    expect(r).toMatchObject({ cancelled: true, timedOut: false, code: null, signal: 'SIGTERM' });
    expect(r.stdout).toBe('started\n');
    expect(await groupAlive(Number(await readFile(pidFile, 'utf8')))).toBe(false);
  });

  it('should not start the step when the signal is already aborted', async () => {
    const file = path.join(home, 'never-created');
    const r = await run('touch "$F"', { env: { F: file }, signal: AbortSignal.abort() });
    expect(r.cancelled).toBe(true);
    expect(existsSync(file)).toBe(false);
  });

  it('should kill the step and reject with SshOutputTooLarge when a stream exceeds the limit', async () => {
    const own = await connectSsh({ target: sshd.target, maxOutputBytes: 64 * 1024 });
    try {
      const err = await expectRejection(
        own.exec({
          script: 'echo $$ > "$PID_FILE"; yes',
          env: { PID_FILE: path.join(home, 'yes.pid') },
          timeoutMs: 10_000,
        }),
      );
      expect((err as SshError).code).toBe(ErrorCode.SshOutputTooLarge);
      expect(await groupAlive(Number(await readFile(path.join(home, 'yes.pid'), 'utf8')))).toBe(false);
    } finally {
      await own.close();
    }
  });

  it('should kill the step and reject when the onLine handler throws', async () => {
    const pidFile = path.join(home, 'throwing.pid');
    const err = await expectRejection(
      run('echo $$ > "$PID_FILE"; echo boom; sleep 300', {
        env: { PID_FILE: pidFile },
        onLine: () => {
          throw new Error('handler bug');
        },
      }),
    );
    expect(err.message).toMatch(/onLine handler threw.*handler bug/);
    expect(await groupAlive(Number(await readFile(pidFile, 'utf8')))).toBe(false);
  });

  it('should reuse one connection when many steps run', async () => {
    const accepted = async () =>
      (await readFile(sshd.logFile, 'utf8')).match(/Accepted publickey/g)?.length ?? 0;
    const before = await accepted();
    const own = await connectSsh({ target: sshd.target });
    try {
      for (let i = 0; i < 30; i++)
        expect((await own.exec({ script: 'true', env: {}, timeoutMs: 5000 })).code).toBe(0);
      const parallel = await Promise.all(
        Array.from({ length: 8 }, (_, i) => own.exec({ script: `echo ${i}`, env: {}, timeoutMs: 5000 })),
      );
      expect(parallel.map((r) => r.stdout)).toEqual(Array.from({ length: 8 }, (_, i) => `${i}\n`));
    } finally {
      await own.close();
    }
    expect((await accepted()) - before).toBe(1);
  });

  it('should return the same promise and refuse later steps when closed twice', async () => {
    const own = await connectSsh({ target: sshd.target });
    const first = own.close();
    expect(own.close()).toBe(first);
    await first;
    await expect(own.exec({ script: 'true', env: {}, timeoutMs: 1000 })).rejects.toThrow(/closed/);
  });
});

describe('connection loss', () => {
  it('should reject with an UNKNOWN outcome and fail fast afterwards when the connection drops mid-step', async () => {
    const lost = await startSshd({ dir: path.join(root, 'sshd-lost'), homeDir: home, pathPrepend: [] });
    const onDisconnect = vi.fn();
    const own = await connectSsh({ target: lost.target, onDisconnect });
    try {
      const err = await expectRejection(
        own.exec({
          script: 'echo started; sleep 5',
          env: {},
          timeoutMs: 30_000,
          onLine: (_s, line) => {
            if (line === 'started') void lost.stop();
          },
        }),
      );
      expect(err).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe(ErrorCode.SshExec);
      expect(err.message).toMatch(/lost while the step was running/);
      expect(err.message).toMatch(/UNKNOWN/);
      expect(onDisconnect).toHaveBeenCalledTimes(1);
      const started = Date.now();
      await expect(own.exec({ script: 'true', env: {}, timeoutMs: 1000 })).rejects.toThrow(/was lost/);
      expect(Date.now() - started).toBeLessThan(100);
    } finally {
      await own.close();
      await lost.stop();
    }
  });
});
