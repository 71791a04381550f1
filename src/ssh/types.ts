/** The executor port: what the runbook engine needs from a remote shell. ssh2 implements it. */
import type { AttemptMarker } from './attempt-marker.js';
import type { RemoteFence } from './remote-fence.js';

export type { JumphostTarget } from '../jumphost-target.js';
export type { AttemptMarker } from './attempt-marker.js';
export type { RemoteFence } from './remote-fence.js';

export type OutputStream = 'stdout' | 'stderr';

export interface ExecRequest {
  /** bash script text. Never built from chat text: values arrive through `env`. */
  readonly script: string;
  /** Passed to the remote shell as single-quoted assignments, never interpolated into `script`. */
  readonly env: Readonly<Record<string, string>>;
  /** The remote process group is killed (TERM, then KILL) when this elapses. */
  readonly timeoutMs: number;
  /** Called once per complete line (without the newline), in order, per stream. */
  readonly onLine?: (stream: OutputStream, line: string) => void;
  /** Aborting kills the remote process group and resolves with `cancelled: true`. */
  readonly signal?: AbortSignal;
  /**
   * The run's fencing token, checked and raised on the jumphost before the script runs; a command from an
   * owner older than the newest one seen there is refused (RunFencedError) and nothing of it runs.
   */
  readonly fence?: RemoteFence;
  /**
   * A destructive send: the jumphost claims the step's attempt marker before the script runs, and refuses
   * (AttemptOnRecordError, nothing of the step runs) when an earlier send of the step claimed it already.
   */
  readonly attempt?: AttemptMarker;
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  /** null when the process was killed by a signal or the server sent no exit status. */
  readonly code: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly cancelled: boolean;
  readonly durationMs: number;
}

export interface RemoteExecutor {
  exec(req: ExecRequest): Promise<ExecResult>;
  /** Idempotent: returns the same promise when called twice. */
  close(): Promise<void>;
}
