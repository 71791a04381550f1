/**
 * The bare building blocks of a step, on the same sshd the product talks to:
 * - one ssh2 connection (Nagle off, as the product's), N exec channels of `true` one after the other;
 * - an operator's loop: N separate `ssh host true` processes (OpenSSH client: connect, key exchange,
 *   auth, one command, close each time).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import ssh2 from 'ssh2';
import type { JumphostTarget } from '../../src/ssh/types.js';

const execFileAsync = promisify(execFile);

/** Total ms for `count` sequential `true` execs on one open connection (after one warm-up exec). */
export async function ssh2ExecFloor(target: JumphostTarget, count: number): Promise<number> {
  const conn = new ssh2.Client();
  await new Promise<void>((resolve, reject) => {
    conn.once('ready', () => resolve()).once('error', reject);
    const sock = net.connect(target.port, target.host);
    sock.setNoDelay(true);
    sock.once('connect', () =>
      conn.connect({ sock, username: target.user, privateKey: readFileSync(target.privateKeyPath) }),
    );
  });
  const exec = () =>
    new Promise<void>((resolve, reject) =>
      conn.exec('true', (err, stream) => {
        if (err) return reject(err);
        stream.on('close', (code: number | null) =>
          code === 0 ? resolve() : reject(new Error(`true exited with ${code}`)),
        );
        stream.resume();
        stream.stderr.resume();
        stream.end();
      }),
    );
  try {
    await exec();
    const start = performance.now();
    for (let i = 0; i < count; i++) await exec();
    return performance.now() - start;
  } finally {
    conn.end();
  }
}

/** Total ms for `count` sequential `ssh host true` processes, host key pinned, batch mode. */
export async function sshProcessLoop(
  target: JumphostTarget,
  sshdDir: string,
  count: number,
): Promise<number> {
  const knownHosts = path.join(sshdDir, 'bench_known_hosts');
  const hostPub = (await readFile(path.join(sshdDir, 'ssh_host_ed25519_key.pub'), 'utf8')).trim();
  await writeFile(knownHosts, `[${target.host}]:${target.port} ${hostPub}\n`);
  const args = [
    '-F',
    '/dev/null',
    '-i',
    target.privateKeyPath,
    '-p',
    String(target.port),
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'LogLevel=ERROR',
    `${target.user}@${target.host}`,
    'true',
  ];
  await execFileAsync('ssh', args);
  const start = performance.now();
  for (let i = 0; i < count; i++) await execFileAsync('ssh', args);
  return performance.now() - start;
}

export async function opensshVersion(): Promise<string> {
  const { stderr } = await execFileAsync('ssh', ['-V']);
  return stderr.trim();
}
