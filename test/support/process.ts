import { type ChildProcess, spawn } from 'node:child_process';

export interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Running {
  readonly child: ChildProcess;
  /** Resolves when the process has exited and its output is closed. */
  readonly done: Promise<Finished>;
  /** What it printed so far. */
  stdout(): string;
}

/**
 * Spawns a process and collects what it prints. Its stdin gets `input` and is closed (an empty input by
 * default); `input: null` leaves it open. A process that exits before reading its stdin is fine.
 */
export function spawnCollecting(
  command: string,
  args: readonly string[],
  opts: { readonly env?: NodeJS.ProcessEnv; readonly input?: string | null } = {},
): Running {
  const child = spawn(command, [...args], { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<Finished>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  child.stdin.on('error', () => {});
  if (opts.input !== null) child.stdin.end(opts.input ?? '');
  return { child, done, stdout: () => stdout };
}
