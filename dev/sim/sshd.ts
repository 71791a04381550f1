/**
 * A real OpenSSH sshd on a loopback port, for tests and the demo: the executor is only trusted once it
 * has talked to the same server it will meet on a jumphost (channels, exit-signal, EOF, kills).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fingerprintOfPublicKeyLine } from '../../src/host-key.js';
import type { JumphostTarget } from '../../src/ssh/types.js';
import { freePort } from '../net.js';

const execFileAsync = promisify(execFile);

/** sshd refuses to re-exec itself unless started by absolute path. */
const SSHD = '/usr/sbin/sshd';
const PRIVSEP_DIR = '/run/sshd';
const READY_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 5;

export interface SshdOptions {
  /** A directory this sshd owns: host key, client key, sshd_config, authorized_keys, pid, log go here. Created if missing. */
  readonly dir: string;
  /** The session's HOME (e.g. where the simulator put admin-openrc). */
  readonly homeDir: string;
  /** Directories put in front of the session's PATH (the simulator's stand-in `openstack`, `kubectl`, `ssh`). */
  readonly pathPrepend: readonly string[];
  /** The system part of the session's PATH; default /usr/local/bin, /usr/bin, /bin. */
  readonly systemPath?: readonly string[];
}

export interface RunningSshd {
  readonly target: JumphostTarget;
  readonly logFile: string;
  /** The listening sshd (per-connection sshd processes are its children). */
  readonly pid: number;
  /** Idempotent: the same promise twice. Kills sshd and every session it spawned. */
  stop(): Promise<void>;
}

/** Synchronous so the process 'exit' hook can use it: nothing async runs at exit. */
const running = new Map<number, ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const pid of running.keys()) killTree(pid);
  });
}

export async function startSshd(opts: SshdOptions): Promise<RunningSshd> {
  const dir = path.resolve(opts.dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(PRIVSEP_DIR)) await mkdir(PRIVSEP_DIR, { recursive: true, mode: 0o755 });

  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  const clientKey = path.join(dir, 'client_ed25519_key');
  await ensureKey(hostKey, 'capi-chatops-sim-host');
  await ensureKey(clientKey, 'capi-chatops-sim-client');
  const authorizedKeys = path.join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, await readFile(`${clientKey}.pub`, 'utf8'), { mode: 0o600 });
  const fingerprint = fingerprintOfPublicKeyLine(await readFile(`${hostKey}.pub`, 'utf8'));

  const user = os.userInfo().username;
  const configFile = path.join(dir, 'sshd_config');
  const logFile = path.join(dir, 'sshd.log');
  const sessionPath = [
    ...opts.pathPrepend.map((p) => path.resolve(p)),
    ...(opts.systemPath ?? ['/usr/local/bin', '/usr/bin', '/bin']),
  ];

  let lastError: Error | undefined;
  for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
    const port = await freePort();
    await writeFile(
      configFile,
      sshdConfig({
        port,
        dir,
        hostKey,
        authorizedKeys,
        user,
        home: path.resolve(opts.homeDir),
        path: sessionPath,
      }),
      { mode: 0o600 },
    );
    await checkConfig(configFile);

    const logFd = openSync(logFile, 'a');
    const child = spawn(SSHD, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', logFd] });
    closeSync(logFd);
    const pid = child.pid;
    if (pid === undefined) {
      await new Promise((resolve) => child.once('error', resolve).once('exit', resolve));
      throw new Error(`could not spawn ${SSHD}: is openssh-server installed?`);
    }
    running.set(pid, child);
    installExitHook();
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    child.once('exit', () => running.delete(pid));

    const outcome = await waitReady(port, exited);
    if (outcome === 'ready') {
      let stopping: Promise<void> | undefined;
      return {
        target: { host: '127.0.0.1', port, user, privateKeyPath: clientKey, hostKey: fingerprint },
        logFile,
        pid,
        stop() {
          stopping ??= (async () => {
            const killed = killTree(pid);
            await exited;
            running.delete(pid);
            await waitGone(killed);
          })();
          return stopping;
        },
      };
    }

    killTree(pid);
    await exited;
    const tail = await logTail(logFile);
    // Another process may take the port between freePort() closing it and sshd binding it.
    if (outcome === 'exited' && /Address already in use/i.test(tail)) {
      lastError = new Error(`sshd could not bind 127.0.0.1:${port} (in use); log tail:\n${tail}`);
      continue;
    }
    throw new Error(
      outcome === 'exited'
        ? `sshd exited during startup; log ${logFile} ends with:\n${tail}`
        : `sshd did not accept connections on 127.0.0.1:${port} within ${READY_TIMEOUT_MS} ms; log ${logFile} ends with:\n${tail}`,
    );
  }
  throw lastError ?? new Error('sshd could not start');
}

interface ConfigInput {
  readonly port: number;
  readonly dir: string;
  readonly hostKey: string;
  readonly authorizedKeys: string;
  readonly user: string;
  readonly home: string;
  readonly path: readonly string[];
}

function sshdConfig(c: ConfigInput): string {
  return `${[
    'ListenAddress 127.0.0.1',
    `Port ${c.port}`,
    `HostKey ${c.hostKey}`,
    `PidFile ${path.join(c.dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${c.authorizedKeys}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    // Tests run as root; keys only.
    'PermitRootLogin prohibit-password',
    'UsePAM no',
    // dir lives under /tmp, whose permissions StrictModes rejects.
    'StrictModes no',
    `AllowUsers ${c.user}`,
    'PrintMotd no',
    'PermitUserRC no',
    'AllowAgentForwarding no',
    'AllowTcpForwarding no',
    'X11Forwarding no',
    'MaxSessions 50',
    'MaxStartups 50',
    'LogLevel VERBOSE',
    // SetEnv is applied after sshd's own HOME/PATH, so it overrides them; the login shell (bash -c) then
    // sources $HOME/.bashrc of the *simulated* HOME, never root's (whose pyenv init costs ~100 ms a command).
    `SetEnv ${sshdArg(`HOME=${c.home}`)} ${sshdArg(`PATH=${c.path.join(':')}`)}`,
    // sshd chdirs to the passwd home (/root); a jumphost session starts in its user's HOME, so go there.
    // eval keeps the client's command in this same shell, so its `exec` keeps sshd's session pid.
    'ForceCommand cd "$HOME" && eval "$SSH_ORIGINAL_COMMAND"',
  ].join('\n')}\n`;
}

/** sshd splits config arguments itself (quotes, backslashes): refuse what it would reinterpret. */
function sshdArg(value: string): string {
  if (/["'\\\r\n]/.test(value)) {
    throw new Error(
      `cannot put ${JSON.stringify(value)} in sshd_config: quotes, backslashes and newlines are not supported`,
    );
  }
  return /\s/.test(value) ? `"${value}"` : value;
}

async function ensureKey(file: string, comment: string): Promise<void> {
  if (existsSync(file) && existsSync(`${file}.pub`)) return;
  await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]).catch(
    (err: unknown) => {
      throw new Error(`ssh-keygen could not create ${file}: ${errorText(err)}`);
    },
  );
}

async function checkConfig(configFile: string): Promise<void> {
  try {
    await execFileAsync(SSHD, ['-t', '-f', configFile]);
  } catch (err) {
    throw new Error(`sshd -t -f ${configFile} rejected the generated config: ${errorText(err)}`);
  }
}

function errorText(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { stderr?: unknown; stdout?: unknown; message?: unknown };
    const out =
      `${typeof e.stderr === 'string' ? e.stderr : ''}${typeof e.stdout === 'string' ? e.stdout : ''}`.trim();
    if (out) return out;
    if (typeof e.message === 'string') return e.message;
  }
  return String(err);
}

/**
 * Ready means *our* sshd answers: a connect alone could reach whoever grabbed the port, so wait for the
 * SSH identification banner while the child is still alive.
 */
async function waitReady(port: number, exited: Promise<void>): Promise<'ready' | 'exited' | 'timeout'> {
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let delay = 5;
  while (Date.now() < deadline) {
    if (hasExited) return 'exited';
    if (await bannerAt(port)) return hasExited ? 'exited' : 'ready';
    await Promise.race([new Promise((resolve) => setTimeout(resolve, delay)), exited]);
    delay = Math.min(delay * 2, 200);
  }
  return hasExited ? 'exited' : 'timeout';
}

function bannerAt(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes('\n')) done(buf.startsWith('SSH-2.0-OpenSSH'));
    });
    sock.on('end', () => done(false));
  });
}

async function logTail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Per-connection sshd processes call setsid(), and so do their sessions, so neither a process-group kill
 * nor killing the listener reaches them: walk /proc for the whole tree and SIGKILL it top-down, so no
 * sshd is left alive to report a session's exit before its connection drops.
 */
function killTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    // No /proc: the listener alone is the best we can do.
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // comm (field 2) may hold spaces and parens; the fields after the last ')' are fixed.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const order: number[] = [rootPid];
  for (let i = 0; i < order.length; i++) {
    for (const child of children.get(order[i] as number) ?? []) order.push(child);
  }
  for (const pid of order) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  return order;
}

/** SIGKILL is asynchronous: callers of stop() expect the sessions to be gone, not merely signalled. */
async function waitGone(pids: readonly number[], timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(isRunning);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    left = left.filter(isRunning);
  }
}

/** A zombie has already died; only its parent's wait() is missing. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * One directory of links to every command in the system's PATH directories except `missing`: the PATH of a
 * jumphost that lacks those tools, whatever this machine has installed.
 */
export async function systemPathWithout(dir: string, missing: readonly string[]): Promise<string> {
  const sysbin = path.join(dir, 'sysbin');
  await mkdir(sysbin, { recursive: true });
  const seen = new Set(missing);
  for (const from of ['/usr/local/bin', '/usr/bin', '/bin']) {
    const names = await readdir(from).catch(() => [] as string[]);
    for (const name of names) {
      if (seen.has(name)) continue;
      seen.add(name);
      await symlink(path.join(from, name), path.join(sysbin, name));
    }
  }
  return sysbin;
}
