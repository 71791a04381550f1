/**
 * The processes this benchmark starts, and only those: each is remembered by its pid and stopped by it
 * (SIGTERM, then SIGKILL after a grace), never by name, because other sessions on this machine run
 * sshd, redis-server and node too.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export class Children {
  private readonly live = new Set<ChildProcess>();

  spawn(command: string, args: readonly string[], opts: SpawnOptions): ChildProcess {
    const child = spawn(command, args, opts);
    this.live.add(child);
    child.once('exit', () => this.live.delete(child));
    return child;
  }

  /** Stops one child by its pid: SIGTERM, SIGKILL after `graceMs`. Resolves once it exited. */
  async stop(child: ChildProcess, graceMs = 10_000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live].map((c) => this.stop(c, 3000)));
  }
}

/** Resident set size of a process in MB, from /proc; undefined once it is gone. */
export function rssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** Samples a process's RSS every `everyMs`; `peak` is the highest seen since start or the last reset. */
export function rssSampler(pid: number, everyMs = 250) {
  let peak = rssMb(pid) ?? 0;
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMb(pid) ?? 0);
  }, everyMs);
  timer.unref();
  return {
    get peak() {
      return Math.max(peak, rssMb(pid) ?? 0);
    },
    reset() {
      peak = rssMb(pid) ?? 0;
    },
    stop: () => clearInterval(timer),
  };
}

/** Waits until `file` holds a line matching `pattern`; fails naming the file and its tail. */
export async function waitForLine(file: string, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (pattern.test(text)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${pattern} did not appear in ${file} within ${timeoutMs} ms; it ends with:\n${text.slice(-2000)}`,
      );
    }
    await sleep(50);
  }
}

/** Polls `check` every `everyMs` until it returns a value; fails with `what` after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
