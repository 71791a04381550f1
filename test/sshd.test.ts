import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning, type RunningSshd, startSshd } from '../dev/sim/sshd.js';
import { connectSsh } from '../src/ssh/executor.js';
import type { RemoteExecutor } from '../src/ssh/types.js';

const execFileAsync = promisify(execFile);

describe('startSshd', () => {
  let root: string;
  let home: string;
  let bin: string;
  let sshd: RunningSshd;
  let ex: RemoteExecutor;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'capi-sshd-test-'));
    home = path.join(root, 'home');
    bin = path.join(root, 'bin');
    await mkdir(home);
    await mkdir(bin);
    await writeFile(path.join(bin, 'openstack'), '#!/bin/sh\necho stand-in openstack "$@"\n');
    await chmod(path.join(bin, 'openstack'), 0o755);
    sshd = await startSshd({ dir: path.join(root, 'sshd'), homeDir: home, pathPrepend: [bin] });
    ex = await connectSsh({ target: sshd.target });
  });

  afterAll(async () => {
    await ex?.close();
    await sshd?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('should listen on loopback and pin the fingerprint ssh-keygen prints when started', async () => {
    expect(sshd.target.host).toBe('127.0.0.1');
    expect(sshd.target.port).toBeGreaterThan(0);
    expect(sshd.target.user).toBe(os.userInfo().username);
    const { stdout } = await execFileAsync('ssh-keygen', [
      '-lf',
      path.join(root, 'sshd', 'ssh_host_ed25519_key.pub'),
    ]);
    expect(stdout.split(' ')[1]).toBe(sshd.target.hostKey);
    expect(sshd.target.hostKey).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });

  it('should give the session the simulated HOME and PATH when a command runs', async () => {
    const r = await ex.exec({
      script: 'echo "$HOME"; echo "$PATH"; command -v openstack; pwd; openstack server list',
      env: {},
      timeoutMs: 10_000,
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual([
      home,
      `${bin}:/usr/local/bin:/usr/bin:/bin`,
      path.join(bin, 'openstack'),
      home,
      'stand-in openstack server list',
      '',
    ]);
  });

  it("should source the simulated HOME's .bashrc, not root's, when the login shell starts", async () => {
    await writeFile(path.join(home, '.bashrc'), 'echo sim-bashrc >&2\n');
    try {
      const r = await ex.exec({ script: 'true', env: {}, timeoutMs: 10_000 });
      // root's ~/.bashrc would put pyenv first in PATH; only the simulated one may run.
      expect(r.stderr).toBe('sim-bashrc\n');
    } finally {
      await rm(path.join(home, '.bashrc'));
    }
  });

  it('should kill sshd and its running sessions when stop() is called twice', async () => {
    const dir = path.join(root, 'sshd-stop');
    const own = await startSshd({ dir, homeDir: home, pathPrepend: [] });
    const exec = await connectSsh({ target: own.target });
    const pidFile = path.join(root, 'session.pid');
    const step = exec.exec({
      script: 'echo $$ > "$PID_FILE"; echo started; sleep 300',
      env: { PID_FILE: pidFile },
      timeoutMs: 30_000,
      onLine: (_s, line) => {
        if (line === 'started') void own.stop();
      },
    });
    await expect(step).rejects.toThrow(/UNKNOWN/);
    const first = own.stop();
    expect(own.stop()).toBe(first);
    await first;
    expect(isRunning(own.pid)).toBe(false);
    const sessionPid = Number(await readFile(pidFile, 'utf8'));
    expect(isRunning(sessionPid)).toBe(false);
    await exec.close();
  });

  it('should surface the sshd -t output when the generated config is rejected', async () => {
    const dir = path.join(root, 'sshd-bad');
    await mkdir(dir);
    // A valid public half keeps the fingerprint step happy; the private half is garbage, which sshd -t refuses.
    await copyFile(
      path.join(root, 'sshd', 'ssh_host_ed25519_key.pub'),
      path.join(dir, 'ssh_host_ed25519_key.pub'),
    );
    await writeFile(path.join(dir, 'ssh_host_ed25519_key'), 'not a key\n', { mode: 0o600 });
    await expect(startSshd({ dir, homeDir: home, pathPrepend: [] })).rejects.toThrow(
      /sshd -t -f .*sshd_config rejected the generated config: .*(host ?key|hostkeys)/is,
    );
  });
});
