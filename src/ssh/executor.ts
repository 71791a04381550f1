/**
 * The ssh2 implementation of RemoteExecutor: one pinned, authenticated connection to the jumphost, one
 * channel per step, and a kill path that really ends the step's processes on the remote side.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import ssh2, { type ClientChannel, type Client as SshClient } from 'ssh2';
import { CapiError, ErrorCode, HostKeyMismatchError, SshError } from '../errors.js';
import { FINGERPRINT_HOW_TO, fingerprintOf, isFingerprint } from '../host-key.js';
import { throwIfOnRecord, withAttemptMarker } from './attempt-marker.js';
import { connectError } from './connect-error.js';
import { LineSplitter } from './line-splitter.js';
import { buildRemoteCommand, killCommand, MARKER_LINE } from './remote-command.js';
import { throwIfFenced, withRemoteFence } from './remote-fence.js';
import type { ExecRequest, ExecResult, JumphostTarget, OutputStream, RemoteExecutor } from './types.js';

// ssh2 is CommonJS: Node's ESM loader cannot see `utils` as a named export (vitest can, so tests would not notice).
const { Client, utils: ssh2utils } = ssh2;

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
  /** Per line, default 1 MiB (RUN_MAX_LINE_BYTES): the rest of a longer line is counted, not held. */
  readonly maxLineBytes?: number;
  /** Called once when the connection goes down without close() having been called. */
  readonly onDisconnect?: (err: Error | undefined) => void;
  /**
   * How long other runs' attempt markers and fence files are kept on the jumphost after their last write
   * there (RUN_RETENTION), default 30 days.
   */
  readonly jumphostRetentionMs?: number;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
/** After the kill finished, how long a channel may stay open (orphans outside the group holding its pipes). */
const CHANNEL_DRAIN_MS = 2000;

/** Defaults live here so tests and the bench read them from one place. */
export const SSH_EXECUTOR_DEFAULTS = {
  keepaliveIntervalMs: 15_000,
  readyTimeoutMs: 20_000,
  killGraceMs: 5_000,
  maxOutputBytes: 16 * 1024 * 1024,
  maxLineBytes: 1024 * 1024,
  jumphostRetentionMs: 30 * 86_400_000,
} as const;

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
    const retentionMs = this.opts.jumphostRetentionMs ?? SSH_EXECUTOR_DEFAULTS.jumphostRetentionMs;
    // The fence first: a stale owner is refused before it could claim a marker.
    const marked = req.attempt ? withAttemptMarker(req.script, req.attempt, retentionMs) : req.script;
    const command = buildRemoteCommand(
      req.fence ? withRemoteFence(marked, req.fence, retentionMs) : marked,
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
    if (req.attempt) throwIfOnRecord(req.attempt, result.code, result.stderr);
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
    const maxLineBytes = { maxLineBytes: this.opts.maxLineBytes ?? SSH_EXECUTOR_DEFAULTS.maxLineBytes };
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
    }, maxLineBytes);
    const stderr = new LineSplitter((line, complete) => deliver('stderr', line, complete), maxLineBytes);

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
