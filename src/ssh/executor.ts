/**
 * The ssh2 implementation of RemoteExecutor: one pinned, authenticated connection to the jumphost, one
 * channel per step, and a kill path that really ends the step's processes on the remote side.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { StringDecoder } from 'node:string_decoder';
import ssh2, { type ClientChannel, type Client as SshClient } from 'ssh2';
import { CapiError, ErrorCode, HostKeyMismatchError, SshError } from '../errors.js';
import { FINGERPRINT_HOW_TO, fingerprintOf, isFingerprint } from './hostkey.js';
import { shellQuote } from './quote.js';
import { throwIfFenced, withRemoteFence } from './remote-fence.js';
import type { ExecRequest, ExecResult, JumphostTarget, OutputStream, RemoteExecutor } from './types.js';

// ssh2 is CommonJS: Node's ESM loader cannot see `utils` as a named export (vitest can, so tests would not notice).
const { Client, utils: ssh2utils } = ssh2;

export { fingerprintOf } from './hostkey.js';
export { shellQuote } from './quote.js';

export interface SshExecutorOptions {
  readonly target: JumphostTarget;
  /** Default 15000. Three unanswered keepalives drop the connection. */
  readonly keepaliveIntervalMs?: number;
  /** Default 20000: TCP connect + key exchange + authentication. */
  readonly readyTimeoutMs?: number;
  /** TERM -> KILL grace, default 5000. */
  readonly killGraceMs?: number;
  /** Per stream, default 16 MiB; exceeding it kills the step and rejects with ErrorCode.SshOutputTooLarge. */
  readonly maxOutputBytes?: number;
  /** Called once when the connection goes down without close() having been called. */
  readonly onDisconnect?: (err: Error | undefined) => void;
}

const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
/**
 * Names that change how the remote shell itself behaves (BASH_ENV is sourced by every `bash -c`, PATH
 * picks which `openstack` runs): a value reaching them would be code, not data.
 */
const RESERVED_ENV = new Set([
  'PATH',
  'HOME',
  'BASH_ENV',
  'ENV',
  'SHELLOPTS',
  'BASHOPTS',
  'IFS',
  'PS4',
  'GLOBIGNORE',
]);
/** Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN), and sshd passes the command as one. */
const MAX_COMMAND_BYTES = 120 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** After the kill finished, how long a channel may stay open (orphans outside the group holding its pipes). */
const CHANNEL_DRAIN_MS = 2000;

/**
 * How the executor learns the remote process group without the caller seeing it: the wrapper below is the
 * first thing that runs in the session, and it prints `<MARKER><pid>` as its first stdout line before
 * exec-ing the step. The executor strips every stdout line up to and including the marker (anything before
 * it came from the login shell's dotfiles, not from the step).
 *
 * Why the pid is the process group: sshd setsid()s every session child, so the login shell is a session
 * and group leader, and `exec env ... bash` / `exec bash` keep that pid. Where that does not hold (a
 * non-OpenSSH server), the wrapper re-execs itself under setsid, which without forking makes the same
 * pid a new group leader. Every process the step starts stays in that group unless it calls setsid itself,
 * so `kill -- -PGID` reaches the whole step. Printing from the wrapper rather than from a parent that
 * forks the step means the marker is always written before any step output.
 */
const MARKER = '@@capi-chatops-pgid=';
const MARKER_LINE = /@@capi-chatops-pgid=(\d+)$/;
const BASH = 'bash --norc --noprofile';
const WRAPPER = [
  'read -r _ _ _ _ g _ 2>/dev/null </proc/$$/stat',
  `if [ -n "$g" ] && [ "$g" != "$$" ] && command -v setsid >/dev/null; then exec setsid ${BASH} -c "$BASH_EXECUTION_STRING" "$0" "$1"; fi`,
  `printf '%s%s\\n' '${MARKER}' "$$"`,
  `exec ${BASH} -c "$1" "$0"`,
].join('\n');
const STEP_NAME = 'capi-step';

/** Defaults live here so tests and the bench read them from one place. */
export const SSH_EXECUTOR_DEFAULTS = {
  keepaliveIntervalMs: 15_000,
  readyTimeoutMs: 20_000,
  killGraceMs: 5_000,
  maxOutputBytes: 16 * 1024 * 1024,
} as const;

/**
 * The full remote command for one step. The login shell of the jumphost user parses only this line:
 * every env value and the script itself are single-quoted words, so nothing in them is expanded there.
 */
export function buildRemoteCommand(script: string, env: Readonly<Record<string, string>>): string {
  if (script.includes('\0')) throw new SshError(ErrorCode.SshExec, 'the step script contains a NUL byte');
  const assignments: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) {
      throw new SshError(
        ErrorCode.SshExec,
        `env name ${JSON.stringify(name)} is not allowed: names must match ^[A-Z_][A-Z0-9_]*$`,
      );
    }
    if (RESERVED_ENV.has(name) || name.startsWith('LD_')) {
      throw new SshError(
        ErrorCode.SshExec,
        `env name ${name} is reserved: it changes how the remote shell runs; pick another name in the runbook`,
      );
    }
    if (value.includes('\0')) {
      throw new SshError(
        ErrorCode.SshExec,
        `env ${name} contains a NUL byte, which cannot be passed to a process`,
      );
    }
    assignments.push(`${name}=${shellQuote(value)}`);
  }
  // `env` rather than `NAME=v exec ...`: whether assignments before `exec` are exported differs between
  // login shells (bash, dash, zsh); env(1) behaves the same under all of them and keeps the pid.
  const command = `exec env ${assignments.join(' ')}${assignments.length ? ' ' : ''}${BASH} -c ${shellQuote(WRAPPER)} ${STEP_NAME} ${shellQuote(script)}`;
  if (Buffer.byteLength(command) > MAX_COMMAND_BYTES) {
    throw new SshError(
      ErrorCode.SshExec,
      `the step script and its env are ${Buffer.byteLength(command)} bytes; the limit is ${MAX_COMMAND_BYTES}. Put large data in a file on the jumphost instead.`,
    );
  }
  return command;
}

/**
 * TERM the group, poll until it is gone, KILL it once the grace is over. Runs on its own channel.
 * `kill -0` alone is not enough to tell "gone": a member orphaned when its parent died is a zombie until
 * init reaps it, and some container inits (this machine's, for one) never do. So members are counted from
 * /proc, zombies excluded; without /proc, kill -0 is the fallback.
 */
function killCommand(pgid: number, graceMs: number): string {
  const polls = Math.max(1, Math.ceil(graceMs / 50));
  const script = [
    'alive() {',
    `  kill -0 -- -${pgid} 2>/dev/null || return 1`,
    '  [ -r /proc/self/stat ] || return 0',
    '  for f in /proc/[0-9]*/stat; do',
    '    read -r l 2>/dev/null <"$f" || continue',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansion, not a JS template
    '    set -- ${l##*) }',
    `    [ "$3" = ${pgid} ] && [ "$1" != Z ] && return 0`,
    '  done',
    '  return 1',
    '}',
    `kill -TERM -- -${pgid} 2>/dev/null || exit 0`,
    'i=0',
    'while alive; do',
    `  if [ "$i" -ge ${polls} ]; then kill -KILL -- -${pgid} 2>/dev/null; exit 0; fi`,
    '  sleep 0.05; i=$((i+1))',
    'done',
  ].join('\n');
  return `exec ${BASH} -c ${shellQuote(script)}`;
}

export async function connectSsh(opts: SshExecutorOptions): Promise<RemoteExecutor> {
  const { target } = opts;
  const where = `${target.user}@${target.host}:${target.port}`;
  if (!isFingerprint(target.hostKey)) {
    throw new SshError(
      ErrorCode.SshConnect,
      `JUMPHOST_HOST_KEY ${JSON.stringify(target.hostKey.slice(0, 80))} is not an OpenSSH fingerprint: expected SHA256:<43 base64 characters>; ${FINGERPRINT_HOW_TO}`,
    );
  }
  let privateKey: Buffer;
  try {
    privateKey = await readFile(target.privateKeyPath);
  } catch (err) {
    throw new SshError(
      ErrorCode.SshConnect,
      `cannot read the SSH private key ${target.privateKeyPath} for ${where}: ${(err as Error).message}. Check the key path and that this process may read it.`,
      { cause: err },
    );
  }
  const parsed = ssh2utils.parseKey(privateKey);
  if (parsed instanceof Error) {
    throw new SshError(
      ErrorCode.SshConnect,
      `the SSH private key ${target.privateKeyPath} for ${where} cannot be used: ${parsed.message}. Use an unencrypted OpenSSH or PEM key (passphrases are not supported).`,
      { cause: parsed },
    );
  }

  const readyTimeoutMs = opts.readyTimeoutMs ?? SSH_EXECUTOR_DEFAULTS.readyTimeoutMs;
  const client = new Client();
  // ssh2 leaves Nagle on, which adds ~40 ms to every small exec round trip: own the socket to disable it.
  const sock = net.connect({ host: target.host, port: target.port });
  sock.setNoDelay(true);
  // ssh2 only reports "Host denied"; keep what the server actually presented for the error message.
  let presentedKey: string | undefined;

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      client.removeListener('ready', onReady);
      client.destroy();
      sock.destroy();
      reject(err);
    };
    const onReady = () => {
      if (settled) return;
      settled = true;
      client.removeListener('error', onError);
      client.removeListener('close', onEarlyClose);
      resolve();
    };
    const onError = (err: Error & { level?: string; code?: string }) => {
      fail(connectError(err, target, where, readyTimeoutMs, presentedKey));
    };
    const onEarlyClose = () => {
      fail(
        presentedKey !== undefined && presentedKey !== target.hostKey
          ? new HostKeyMismatchError(`${target.host}:${target.port}`, target.hostKey, presentedKey)
          : new SshError(
              ErrorCode.SshConnect,
              `the SSH connection to ${where} closed during the handshake. Check that the port runs sshd and that the jumphost allows ${target.user}.`,
            ),
      );
    };
    client.once('ready', onReady);
    client.on('error', onError);
    client.once('close', onEarlyClose);
    try {
      client.connect({
        sock,
        host: target.host,
        port: target.port,
        username: target.user,
        privateKey,
        agentForward: false,
        keepaliveInterval: opts.keepaliveIntervalMs ?? SSH_EXECUTOR_DEFAULTS.keepaliveIntervalMs,
        keepaliveCountMax: 3,
        readyTimeout: readyTimeoutMs,
        hostVerifier: (key: Buffer) => {
          presentedKey = fingerprintOf(key);
          return presentedKey === target.hostKey;
        },
      });
    } catch (err) {
      fail(
        new SshError(
          ErrorCode.SshConnect,
          `cannot start an SSH connection to ${where}: ${(err as Error).message}`,
          {
            cause: err,
          },
        ),
      );
    }
  });

  return new SshExecutor(client, opts, where);
}

function connectError(
  err: Error & { level?: string; code?: string },
  target: JumphostTarget,
  where: string,
  readyTimeoutMs: number,
  presentedKey: string | undefined,
): Error {
  if (presentedKey !== undefined && presentedKey !== target.hostKey) {
    return new HostKeyMismatchError(`${target.host}:${target.port}`, target.hostKey, presentedKey);
  }
  const cause = { cause: err };
  if (err.code === 'ECONNREFUSED') {
    return new SshError(
      ErrorCode.SshConnect,
      `cannot connect to ${where}: connection refused. Check the jumphost host and port, and that sshd is running there.`,
      cause,
    );
  }
  if (err.level === 'client-authentication') {
    return new SshError(
      ErrorCode.SshConnect,
      `${where} did not accept the key ${target.privateKeyPath}: add its public key to ~${target.user}/.ssh/authorized_keys on the jumphost, or fix the user name.`,
      cause,
    );
  }
  if (err.level === 'client-timeout') {
    return new SshError(
      ErrorCode.SshConnect,
      `no SSH handshake with ${where} within ${readyTimeoutMs} ms: check that the host is reachable from here (firewall, VPN) and that the port runs sshd.`,
      cause,
    );
  }
  return new SshError(
    ErrorCode.SshConnect,
    `SSH connection to ${where} failed: ${err.message}${err.code ? ` (${err.code})` : ''}. Check the jumphost host, port and network path.`,
    cause,
  );
}

type KillReason = 'timeout' | 'abort' | 'output' | 'callback';

interface PendingStep {
  /** The connection went down while this step was in flight. */
  connectionLost(reason: string): void;
}

class SshExecutor implements RemoteExecutor {
  private state: 'open' | 'lost' | 'closed' = 'open';
  private lostReason = '';
  private closing: Promise<void> | undefined;
  private lastError: Error | undefined;
  private readonly pending = new Set<PendingStep>();
  private readonly killGraceMs: number;
  private readonly maxOutputBytes: number;

  constructor(
    private readonly client: SshClient,
    private readonly opts: SshExecutorOptions,
    private readonly where: string,
  ) {
    this.killGraceMs = opts.killGraceMs ?? SSH_EXECUTOR_DEFAULTS.killGraceMs;
    this.maxOutputBytes = opts.maxOutputBytes ?? SSH_EXECUTOR_DEFAULTS.maxOutputBytes;
    // Without a listener an 'error' after ready (keepalive timeout, reset) would crash the process.
    client.on('error', (err: Error) => {
      this.lastError = err;
    });
    client.once('close', () => this.onClose());
  }

  private onClose(): void {
    const requested = this.state === 'closed';
    if (!requested) {
      this.state = 'lost';
      this.lostReason = this.lastError ? this.lastError.message : 'closed by the server';
    }
    const reason = requested ? 'the executor was closed' : this.lostReason;
    for (const step of [...this.pending]) step.connectionLost(reason);
    this.pending.clear();
    if (!requested) this.opts.onDisconnect?.(this.lastError);
  }

  private unavailable(): SshError | undefined {
    if (this.state === 'closed') {
      return new SshError(
        ErrorCode.SshExec,
        `the SSH executor for ${this.where} is closed; connect again (connectSsh) before running more steps`,
      );
    }
    if (this.state === 'lost') {
      return new SshError(
        ErrorCode.SshExec,
        `the SSH connection to ${this.where} was lost (${this.lostReason}); reconnect and read back the jumphost state before running more steps`,
      );
    }
    return undefined;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const wasOpen = this.state === 'open';
      this.state = 'closed';
      if (!wasOpen) {
        resolve();
        return;
      }
      this.client.once('close', () => resolve());
      this.client.end();
      // A server that never answers the disconnect must not keep close() pending forever.
      setTimeout(() => this.client.destroy(), 2000).unref();
    });
    return this.closing;
  }

  async exec(req: ExecRequest): Promise<ExecResult> {
    const down = this.unavailable();
    if (down) throw down;
    if (!Number.isFinite(req.timeoutMs) || req.timeoutMs <= 0 || req.timeoutMs > MAX_TIMER_MS) {
      throw new SshError(
        ErrorCode.SshExec,
        `timeoutMs must be a positive number of milliseconds up to ${MAX_TIMER_MS}, got ${req.timeoutMs}`,
      );
    }
    const command = buildRemoteCommand(
      req.fence ? withRemoteFence(req.script, req.fence) : req.script,
      req.env,
    );
    if (req.signal?.aborted) {
      return {
        stdout: '',
        stderr: '',
        code: null,
        signal: null,
        timedOut: false,
        cancelled: true,
        durationMs: 0,
      };
    }
    const result = await new Promise<ExecResult>((resolve, reject) =>
      this.run(command, req, resolve, reject),
    );
    if (req.fence) throwIfFenced(req.fence, result.code, result.stderr);
    return result;
  }

  private run(
    command: string,
    req: ExecRequest,
    resolve: (r: ExecResult) => void,
    reject: (e: Error) => void,
  ): void {
    const started = performance.now();
    let channel: ClientChannel | undefined;
    let pgid: number | undefined;
    let killReason: KillReason | undefined;
    let killing: Promise<void> | undefined;
    let callbackError: unknown;
    let exitCode: number | null = null;
    let exitSignal: string | null = null;
    let gotExit = false;
    let openEnds = 3; // stdout 'end', stderr 'end', channel 'close'
    let settled = false;
    let drainTimer: NodeJS.Timeout | undefined;
    const bytes = { stdout: 0, stderr: 0 };
    const text = { stdout: [] as string[], stderr: [] as string[] };
    // stdout lines before the marker: dotfile noise from the login shell, or (no marker at all) the only
    // output of a session that never reached the wrapper.
    const preamble: string[] = [];
    let markerSeen = false;

    const deliver = (stream: OutputStream, line: string, complete: boolean) => {
      text[stream].push(complete ? `${line}\n` : line);
      if (callbackError !== undefined || !req.onLine) return;
      try {
        req.onLine(stream, line);
      } catch (err) {
        callbackError = err;
        requestKill('callback');
      }
    };
    const stdout = new LineSplitter((line, complete) => {
      if (markerSeen) return deliver('stdout', line, complete);
      const m = complete ? MARKER_LINE.exec(line) : null;
      if (!m) {
        preamble.push(complete ? `${line}\n` : line);
        return;
      }
      markerSeen = true;
      pgid = Number(m[1]);
      if (killReason !== undefined) startKiller();
    });
    const stderr = new LineSplitter((line, complete) => deliver('stderr', line, complete));

    const cleanup = () => {
      settled = true;
      clearTimeout(timer);
      clearTimeout(drainTimer);
      req.signal?.removeEventListener('abort', onAbort);
      this.pending.delete(step);
    };

    const finish = () => {
      if (settled) return;
      cleanup();
      stdout.end();
      stderr.end();
      if (!markerSeen) {
        // Never reached the wrapper (e.g. no bash on the jumphost): show whatever the session printed.
        for (const piece of preamble) {
          const complete = piece.endsWith('\n');
          deliver('stdout', complete ? piece.slice(0, -1) : piece, complete);
        }
      }
      if (killReason === 'output') {
        reject(
          new SshError(
            ErrorCode.SshOutputTooLarge,
            `the step wrote more than ${this.maxOutputBytes} bytes to ${bytes.stdout > this.maxOutputBytes ? 'stdout' : 'stderr'} and was killed; filter its output on the jumphost (grep, tail, jq) instead of returning it all`,
          ),
        );
        return;
      }
      if (killReason === 'callback') {
        reject(
          new CapiError(
            ErrorCode.SshExec,
            `the onLine handler threw, so the step was killed: ${String((callbackError as Error)?.message ?? callbackError)}`,
            { cause: callbackError },
          ),
        );
        return;
      }
      resolve({
        stdout: text.stdout.join(''),
        stderr: text.stderr.join(''),
        code: exitCode,
        signal: exitSignal,
        timedOut: killReason === 'timeout',
        cancelled: killReason === 'abort',
        durationMs: performance.now() - started,
      });
    };

    const maybeFinish = () => {
      if (settled || openEnds > 0) return;
      if (killing) void killing.then(finish);
      else finish();
    };

    const startKiller = () => {
      if (killing || pgid === undefined) return;
      const group = pgid;
      killing = this.runKiller(group).then(() => {
        // The group is gone, but a process that left it may still hold the channel's pipes open.
        if (!settled && openEnds > 0) {
          drainTimer = setTimeout(() => {
            channel?.close();
            openEnds = 0;
            finish();
          }, CHANNEL_DRAIN_MS);
        }
      });
    };

    // Without a pgid yet (channel opening, or the login shell still starting) the kill waits for the marker.
    const requestKill = (reason: KillReason) => {
      if (settled || killReason !== undefined) return;
      killReason = reason;
      clearTimeout(timer);
      startKiller();
    };

    const onAbort = () => requestKill('abort');
    const timer = setTimeout(() => requestKill('timeout'), req.timeoutMs);
    req.signal?.addEventListener('abort', onAbort, { once: true });

    const step: PendingStep = {
      connectionLost: (reason) => {
        if (settled) return;
        if (gotExit && killReason === undefined) {
          // The exit status arrived before the connection dropped: the outcome is known.
          openEnds = 0;
          finish();
          return;
        }
        cleanup();
        reject(
          new SshError(
            ErrorCode.SshExec,
            `the SSH connection to ${this.where} was lost while the step was running (${reason}); its outcome is UNKNOWN: it may have completed, failed or still be running on the jumphost. Read back the state before any retry.`,
          ),
        );
      },
    };
    this.pending.add(step);

    const onChunk = (stream: OutputStream, splitter: LineSplitter, chunk: Buffer) => {
      if (killReason === 'output') return;
      bytes[stream] += chunk.length;
      if (bytes[stream] > this.maxOutputBytes) {
        requestKill('output');
        return;
      }
      splitter.push(chunk);
    };

    try {
      this.client.exec(command, {}, (err, ch) => {
        if (settled) {
          ch?.close();
          return;
        }
        if (err) {
          if (this.state !== 'open') return step.connectionLost(this.lostReason || err.message);
          cleanup();
          reject(
            new SshError(
              ErrorCode.SshExec,
              `the jumphost ${this.where} refused to start the step: ${err.message}. Check sshd's MaxSessions and the server log.`,
              { cause: err },
            ),
          );
          return;
        }
        channel = ch;
        // stdin gets EOF at once (DOCFIX-021): a step that reads stdin must fail fast, not hang.
        ch.end();
        ch.on('data', (chunk: Buffer) => onChunk('stdout', stdout, chunk));
        ch.stderr.on('data', (chunk: Buffer) => onChunk('stderr', stderr, chunk));
        ch.on('exit', (code: number | null, signal?: string) => {
          gotExit = true;
          exitCode = code ?? null;
          exitSignal = signal ?? null;
        });
        ch.once('end', () => {
          openEnds--;
          maybeFinish();
        });
        ch.stderr.once('end', () => {
          openEnds--;
          maybeFinish();
        });
        ch.once('close', () => {
          openEnds--;
          maybeFinish();
        });
      });
    } catch (err) {
      // ssh2 throws "Not connected" when the socket is already gone.
      if (this.state === 'open') this.lostReason = (err as Error).message;
      step.connectionLost(this.lostReason || (err as Error).message);
    }
  }

  /** Resolves once the kill script's channel closes; a failure to run it is not the step's failure. */
  private runKiller(pgid: number): Promise<void> {
    return new Promise<void>((resolve) => {
      try {
        this.client.exec(killCommand(pgid, this.killGraceMs), {}, (err, ch) => {
          if (err) return resolve();
          ch.end();
          ch.resume();
          ch.stderr.resume();
          ch.once('close', () => resolve());
        });
      } catch {
        resolve();
      }
    });
  }
}

/** UTF-8 decoding that survives characters split across chunks, cut into lines. */
class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(private readonly emit: (line: string, complete: boolean) => void) {}

  push(chunk: Buffer): void {
    const decoded = this.decoder.write(chunk);
    let start = 0;
    let nl = decoded.indexOf('\n');
    if (nl === -1) {
      this.partial += decoded;
      return;
    }
    let head = this.partial;
    this.partial = '';
    while (nl !== -1) {
      this.emit(head + decoded.slice(start, nl), true);
      head = '';
      start = nl + 1;
      nl = decoded.indexOf('\n', start);
    }
    this.partial = decoded.slice(start);
  }

  end(): void {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    if (rest !== '') this.emit(rest, false);
  }
}
