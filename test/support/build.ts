/**
 * vitest's globalSetup: brings dist/ up to date with src/, dev/ and bench/ before any test runs. Tests run
 * built code as separate processes (the simulator's stand-in CLIs inside sshd sessions, bin/capi-chatops.js),
 * so `npx vitest` alone must not run an older build than the source it tests.
 *
 * Cheap when nothing changed: one walk over the source trees' modification times against a stamp written
 * after the last good build; otherwise an incremental `tsc -p tsconfig.dev.json` and the playground page's
 * `tsc -p tsconfig.web.json` (what `npm run build:dev` runs). A type error fails the run before any test, as
 * `npm run build` did.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const STAMP = path.join(ROOT, 'dist', '.dev-build-stamp');
const INPUTS = [
  'src',
  'dev',
  'bench',
  'tsconfig.json',
  'tsconfig.dev.json',
  'tsconfig.web.json',
  'package-lock.json',
];

/** The newest modification time below `p`, directories included (a deleted file changes its directory). */
function newest(p: string): number {
  const stat = statSync(p, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let max = stat.mtimeMs;
  for (const name of readdirSync(p)) max = Math.max(max, newest(path.join(p, name)));
  return max;
}

export default function buildIfStale(): void {
  const built = statSync(STAMP, { throwIfNoEntry: false })?.mtimeMs ?? 0;
  if (Math.max(...INPUTS.map((i) => newest(path.join(ROOT, i)))) < built) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  // The same two compilations as `npm run build:dev`: Node code, then the playground's browser code.
  for (const project of ['tsconfig.dev.json', 'tsconfig.web.json']) {
    try {
      execFileSync(process.execPath, [tsc, '-p', project], { cwd: ROOT, encoding: 'utf8' });
    } catch (err) {
      const out = (err as { stdout?: string }).stdout ?? '';
      throw new Error(`tsc -p ${project} failed; no test ran:\n${out || (err as Error).message}`);
    }
  }
  mkdirSync(path.dirname(STAMP), { recursive: true });
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
}
