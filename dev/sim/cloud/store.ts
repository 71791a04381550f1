/**
 * State persistence: state.json is read-modify-written under an exclusive lock file and replaced
 * by atomic rename, so concurrent CLI invocations (a runbook polling while another step mutates)
 * never see a torn file. The journal and violations are append-only JSONL next to it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CloudState, JournalEntry, Violation } from './schema.js';
import { sleepSync } from './time.js';

export const STATE_FILE = 'state.json';
export const LOCK_FILE = 'state.lock';
export const JOURNAL_FILE = 'journal.jsonl';
export const VIOLATIONS_FILE = 'violations.jsonl';

/** A lock older than this belongs to a crashed process: every holder finishes in milliseconds. */
const STALE_LOCK_MS = 10_000;
const LOCK_WAIT_MS = 30_000;

export class SimStateError extends Error {
  override name = 'SimStateError';
}

export function simDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.CAPI_SIM_DIR;
  if (dir === undefined || dir === '') {
    throw new SimStateError('CAPI_SIM_DIR is not set: this stand-in only runs inside a capi-sim jumphost');
  }
  if (!fs.existsSync(path.join(dir, STATE_FILE))) {
    throw new SimStateError(`CAPI_SIM_DIR=${dir} has no ${STATE_FILE}: start the simulator first`);
  }
  return dir;
}

function holderAlive(lockPath: string): boolean {
  const pid = Number(fs.readFileSync(lockPath, 'utf8'));
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function acquireLock(dir: string): () => void {
  const lockPath = path.join(dir, LOCK_FILE);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      return () => {
        try {
          fs.unlinkSync(lockPath);
        } catch {
          // Already broken as stale by someone else; nothing to release.
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        const age = Date.now() - fs.statSync(lockPath).mtimeMs;
        // The runbook engine kills timed-out steps with SIGKILL, which can land inside the lock.
        if (age > STALE_LOCK_MS || (age > 50 && !holderAlive(lockPath))) {
          fs.unlinkSync(lockPath);
          continue;
        }
      } catch {
        continue;
      }
      if (Date.now() > deadline) {
        throw new SimStateError(`timed out waiting for ${lockPath}`);
      }
      sleepSync(3 + Math.random() * 7);
    }
  }
}

/**
 * The CLIs trust state.json: only this module writes it, and the zod schema was enforced when the
 * scenario was instantiated (and again by the harness's state()). Skipping zod here keeps each
 * stand-in invocation fast, which matters in runbook polling loops.
 */
export function parseState(text: string, source: string): CloudState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SimStateError(`${source} is not valid JSON: ${(err as Error).message}`);
  }
  const r = raw as Partial<CloudState> | null;
  if (
    r === null ||
    typeof r !== 'object' ||
    r.version !== 1 ||
    !Array.isArray(r.servers) ||
    r.mgmt === undefined
  ) {
    throw new SimStateError(`${source} is not a capi-sim state file (version 1)`);
  }
  return raw as CloudState;
}

/** Lock-free read: safe because writers replace the file atomically. */
export function readState(dir: string): CloudState {
  const file = path.join(dir, STATE_FILE);
  return parseState(fs.readFileSync(file, 'utf8'), file);
}

export function writeStateAtomic(dir: string, state: CloudState): void {
  const file = path.join(dir, STATE_FILE);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 1)}\n`);
  fs.renameSync(tmp, file);
}

/**
 * Runs `fn` on the current state under the lock and persists whatever it leaves in the object.
 * The write is skipped when nothing changed, which keeps pure reads cheap.
 */
export function withState<T>(dir: string, fn: (state: CloudState) => T): T {
  const release = acquireLock(dir);
  try {
    const file = path.join(dir, STATE_FILE);
    const before = fs.readFileSync(file, 'utf8');
    const state = parseState(before, file);
    const result = fn(state);
    const after = `${JSON.stringify(state, null, 1)}\n`;
    if (after !== before) {
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, after);
      fs.renameSync(tmp, file);
    }
    return result;
  } finally {
    release();
  }
}

export function appendJournal(dir: string, entry: JournalEntry): void {
  fs.appendFileSync(path.join(dir, JOURNAL_FILE), `${JSON.stringify(entry)}\n`);
}

export function appendViolation(dir: string, violation: Violation): void {
  fs.appendFileSync(path.join(dir, VIOLATIONS_FILE), `${JSON.stringify(violation)}\n`);
}

function readJsonl<T>(file: string): T[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}

export function readJournal(dir: string): JournalEntry[] {
  return readJsonl<JournalEntry>(path.join(dir, JOURNAL_FILE));
}

export function readViolations(dir: string): Violation[] {
  return readJsonl<Violation>(path.join(dir, VIOLATIONS_FILE));
}
