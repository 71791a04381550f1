/**
 * The hop `ssh` from the jumphost to the mgmt VM. It behaves like the OpenSSH client where the
 * product can tell the difference: loopback-only destinations (anything else is refused before
 * any socket is opened), a real TCP connect (refused while the VM's sshd is down), host-key and
 * identity-file checks, stdin consumed to EOF before the remote command runs unless `-n`
 * (DOCFIX-021), and the remote command run by bash on "the VM" with the VM's PATH.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { verifyHostKey } from './hostkey.js';
import { appendViolation, readState, withState } from './store.js';

const WITH_ARG = new Set('BbcDEeFIiJLlmOopQRSWw');
const FLAGS = new Set('46AaCfGgKkMNnqsTtVvXxYy');
/** Options that would make a real client dial or listen somewhere other than the destination. */
const FORBIDDEN_OPTS = new Set('DJLRW');
const FORBIDDEN_CONFIG = new Set([
  'proxycommand',
  'proxyjump',
  'localforward',
  'remoteforward',
  'dynamicforward',
  'localcommand',
  'permitlocalcommand',
]);

/** How long an open stdin may stay silent before we call it a DOCFIX-021 hang. */
export const STDIN_GRACE_MS = 1500;

export interface HopIo {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

interface Parsed {
  flags: Set<string>;
  identities: string[];
  config: Map<string, string>;
  user: string | undefined;
  port: number | undefined;
  host: string | undefined;
  command: string[];
}

class HopExit extends Error {
  constructor(
    readonly code: number,
    readonly stderr: string,
  ) {
    super(stderr);
  }
}

const USAGE =
  'usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface] [-b bind_address]\n' +
  '           [-c cipher_spec] [-D [bind_address:]port] [-E log_file]\n' +
  '           [-e escape_char] [-F configfile] [-I pkcs11] [-i identity_file]\n' +
  '           [-J destination] [-L address] [-l login_name] [-m mac_spec]\n' +
  '           [-O ctl_cmd] [-o option] [-P tag] [-p port] [-R address]\n' +
  '           [-S ctl_path] [-W host:port] [-w local_tun[:remote_tun]]\n' +
  '           destination [command [argument ...]]\n';

function parseConfigOption(p: Parsed, raw: string): void {
  const m = /^\s*([A-Za-z0-9]+)\s*(?:=|\s)\s*(.*)$/.exec(raw);
  if (m === null) throw new HopExit(255, `command-line line 0: no argument after keyword "${raw}"\n`);
  const key = (m[1] ?? '').toLowerCase();
  const value = (m[2] ?? '').trim();
  if (FORBIDDEN_CONFIG.has(key)) {
    throw new HopExit(
      255,
      `ssh: capi-sim refuses -o ${m[1]}: only direct hops to a loopback host are allowed\n`,
    );
  }
  if (key === 'identityfile') p.identities.push(value);
  else if (key === 'port') p.port = Number(value);
  else if (key === 'user') p.user = value;
  else if (!p.config.has(key)) p.config.set(key, value);
}

function parseDestination(p: Parsed, dest: string): void {
  let d = dest;
  if (d.startsWith('ssh://')) {
    const u = new URL(d);
    if (u.username !== '') p.user ??= decodeURIComponent(u.username);
    if (u.port !== '') p.port ??= Number(u.port);
    p.host = u.hostname.replace(/^\[|\]$/g, '');
    return;
  }
  const at = d.lastIndexOf('@');
  if (at >= 0) {
    p.user = d.slice(0, at);
    d = d.slice(at + 1);
  }
  p.host = d;
}

export function parseSshArgs(argv: readonly string[]): Parsed {
  const p: Parsed = {
    flags: new Set(),
    identities: [],
    config: new Map(),
    user: undefined,
    port: undefined,
    host: undefined,
    command: [],
  };
  let i = 0;
  while (i < argv.length) {
    const tok = argv[i] ?? '';
    if (tok === '--') {
      i += 1;
      if (p.host === undefined && argv[i] !== undefined) parseDestination(p, argv[i++] ?? '');
      break;
    }
    if (tok.startsWith('-') && tok.length > 1) {
      for (let j = 1; j < tok.length; j++) {
        const ch = tok[j] ?? '';
        if (FLAGS.has(ch)) {
          p.flags.add(ch);
          continue;
        }
        if (!WITH_ARG.has(ch)) throw new HopExit(255, `ssh: illegal option -- ${ch}\n${USAGE}`);
        if (FORBIDDEN_OPTS.has(ch)) {
          throw new HopExit(
            255,
            `ssh: capi-sim refuses -${ch}: only direct hops to a loopback host are allowed\n`,
          );
        }
        let value = tok.slice(j + 1);
        if (value === '') {
          i += 1;
          value = argv[i] ?? '';
          if (argv[i] === undefined)
            throw new HopExit(255, `ssh: option requires an argument -- ${ch}\n${USAGE}`);
        }
        if (ch === 'i') p.identities.push(value);
        else if (ch === 'p') p.port = Number(value);
        else if (ch === 'l') p.user = value;
        else if (ch === 'o') parseConfigOption(p, value);
        break;
      }
      i += 1;
      continue;
    }
    if (p.host === undefined) {
      parseDestination(p, tok);
      i += 1;
      continue;
    }
    break;
  }
  p.command = argv.slice(i).map(String);
  if (p.host === undefined || p.host === '') throw new HopExit(255, USAGE);
  if (p.port !== undefined && (!Number.isInteger(p.port) || p.port <= 0 || p.port > 65535)) {
    throw new HopExit(255, `Bad port '${String(p.port)}'\n`);
  }
  return p;
}

export function isLoopbackDestination(host: string): boolean {
  return host === 'localhost' || /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(host);
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<'ok' | string> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve('Connection timed out');
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve('ok');
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNREFUSED' ? 'Connection refused' : err.message);
    });
  });
}

function expandHome(file: string, home: string): string {
  return file === '~' ? home : file.startsWith('~/') ? path.join(home, file.slice(2)) : file;
}

function readAll(stream: NodeJS.ReadableStream, onSlow: () => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(onSlow, STDIN_GRACE_MS);
    stream.on('data', (c: Buffer | string) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)));
    stream.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    stream.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export interface HopOptions {
  readonly dir: string;
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly io: HopIo;
}

/** Returns the exit status, having streamed the remote command's output to io. */
export async function runHopSsh(opts: HopOptions): Promise<number> {
  const { io } = opts;
  try {
    return await hop(opts);
  } catch (err) {
    if (err instanceof HopExit) {
      io.stderr.write(err.stderr);
      return err.code;
    }
    throw err;
  }
}

/** What Ubuntu 24.04's client prints for `ssh -V` (on stderr, as OpenSSH does). */
const SSH_VERSION = 'OpenSSH_9.6p1 Ubuntu-3ubuntu13.5, OpenSSL 3.0.13 30 Jan 2024\n';

async function hop(opts: HopOptions): Promise<number> {
  const { io, env } = opts;
  if (opts.argv.includes('-V')) {
    io.stderr.write(SSH_VERSION);
    return 0;
  }
  const p = parseSshArgs(opts.argv);
  const host = p.host ?? '';
  const port = p.port ?? 22;
  if (!isLoopbackDestination(host)) {
    throw new HopExit(
      255,
      `ssh: capi-sim refuses to connect to ${host}: only loopback destinations (127.0.0.0/8, localhost) are allowed\n`,
    );
  }
  const home = env.HOME ?? '/root';
  const quiet =
    p.flags.has('q') || ['quiet', 'fatal', 'error'].includes((p.config.get('loglevel') ?? '').toLowerCase());
  const connectTimeout = Number(p.config.get('connecttimeout') ?? '30');
  const dialHost = host === 'localhost' ? '127.0.0.1' : host;
  const probe = await tcpProbe(dialHost, port, Math.max(1, connectTimeout) * 1000);
  if (probe !== 'ok') throw new HopExit(255, `ssh: connect to host ${host} port ${port}: ${probe}\n`);

  const state = readState(opts.dir);
  if (state.mgmt.sshPort !== port) {
    throw new HopExit(
      255,
      `kex_exchange_identification: Connection closed by remote host (capi-sim: nothing simulated behind ${host}:${port})\n`,
    );
  }
  // The host key is checked before any authentication, so a refused key means nothing ran on the VM.
  const files = (value: string | undefined, fallback: string) =>
    (value ?? fallback)
      .split(/\s+/)
      .filter((f) => f !== '')
      .map((f) => expandHome(f, home));
  const verdict = verifyHostKey({
    name: p.config.get('hostkeyalias') ?? (port === 22 ? dialHost : `[${dialHost}]:${port}`),
    strict: (p.config.get('stricthostkeychecking') ?? 'ask').toLowerCase(),
    userFiles: files(p.config.get('userknownhostsfile'), '~/.ssh/known_hosts ~/.ssh/known_hosts2'),
    globalFiles: files(
      p.config.get('globalknownhostsfile'),
      '/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2',
    ),
    quiet,
    served: state.mgmt.hostKey,
  });
  const silent = p.flags.has('q') || (p.config.get('loglevel') ?? '').toLowerCase() === 'quiet';
  if (!silent) io.stderr.write(verdict.stderr);
  if (!verdict.ok) return 255;

  const user = p.user ?? env.USER ?? 'root';
  const explicit = p.identities.map((f) => expandHome(f, home));
  const candidates =
    explicit.length > 0
      ? explicit
      : ['id_rsa', 'id_ecdsa', 'id_ed25519']
          .map((f) => path.join(home, '.ssh', f))
          .filter((f) => fs.existsSync(f));
  let usable = 0;
  for (const file of candidates) {
    let mode: number;
    try {
      mode = fs.statSync(file).mode;
    } catch {
      io.stderr.write(`Warning: Identity file ${file} not accessible: No such file or directory.\n`);
      continue;
    }
    if ((mode & 0o077) !== 0) {
      io.stderr.write(
        '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n' +
          '@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @\n' +
          '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n' +
          `Permissions 0${(mode & 0o777).toString(8)} for '${file}' are too open.\n` +
          'It is required that your private key files are NOT accessible by others.\n' +
          'This private key will be ignored.\n' +
          `Load key "${file}": bad permissions\n`,
      );
      continue;
    }
    usable += 1;
  }
  if (usable === 0 || user !== state.mgmt.sshUser) {
    throw new HopExit(255, `${user}@${host}: Permission denied (publickey).\n`);
  }

  let input: Buffer = Buffer.alloc(0);
  if (!p.flags.has('n')) {
    input = await readAll(io.stdin, () => {
      appendViolation(opts.dir, {
        ts: new Date().toISOString(),
        rule: 'stdin-not-closed',
        tool: 'ssh',
        argv: ['ssh', ...opts.argv],
        target: `${user}@${host}:${port}`,
        detail: `ssh left waiting on an open stdin for ${STDIN_GRACE_MS} ms (DOCFIX-021: close stdin or pass -n / </dev/null)`,
      });
    });
  }

  // A session on the VM: what a test counts to show nothing was read from a machine whose key was refused.
  withState(opts.dir, (s) => {
    s.mgmt.hopSessions += 1;
  });
  const vmHome = path.join(opts.dir, 'vm-home');
  fs.mkdirSync(vmHome, { recursive: true });
  const vmEnv: NodeJS.ProcessEnv = {
    PATH: `${path.join(opts.dir, 'vm-bin')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: vmHome,
    USER: user,
    LOGNAME: user,
    SHELL: '/bin/bash',
    LANG: 'C.UTF-8',
    CAPI_SIM_DIR: opts.dir,
    SSH_CONNECTION: `127.0.0.1 ${40_000 + (process.pid % 20_000)} ${dialHost} ${port}`,
  };
  let argv: string[];
  if (p.command.length === 0) {
    if (!quiet && io.stdin.isTTY !== true)
      io.stderr.write('Pseudo-terminal will not be allocated because stdin is not a terminal.\r\n');
    argv = ['-s'];
  } else {
    argv = ['-c', p.command.join(' ')];
  }
  return await new Promise<number>((resolve, reject) => {
    const child = spawn('bash', argv, { cwd: vmHome, env: vmEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.pipe(io.stdout, { end: false });
    child.stderr.pipe(io.stderr, { end: false });
    child.stdin.on('error', () => {
      // The remote command may exit without reading its input, as on a real host.
    });
    child.stdin.end(input);
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(signal !== null ? 255 : (code ?? 255)));
  });
}
