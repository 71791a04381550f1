/**
 * Fault injection for tests: a stand-in CLI call that matches a hold stops right before it acts, or right
 * after its effect was applied and before it answers, until the test releases it. A test can then SIGKILL
 * or SIGSTOP the agent at an exact point ("inside the failover, after octavia accepted it") instead of
 * guessing with timers.
 *
 * `<dir>/holds.json` lists the holds; `<dir>/holds/<id>.hitN` directories count matching calls (mkdir is
 * atomic across the stand-ins' processes), `<id>.reached` holds the pid of the call that is held, and the
 * test writes `<id>.release` (`run` or `drop`) to let it go.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';

export const HoldSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9-]+$/),
  /** The engine's step id (CAPI_STEP in the command's environment), e.g. `sweep/delete-orphan`. */
  step: z.string().optional(),
  tool: z.enum(['openstack', 'kubectl', 'ssh', 'sudo', 'k8s']).optional(),
  /** A regex the space-joined argv must match. */
  argv: z.string().optional(),
  /** Which matching call is held (1 = the first). */
  nth: z.number().int().min(1).default(1),
  when: z.enum(['before', 'after']),
});
export type Hold = z.input<typeof HoldSchema>;

export const HOLDS_FILE = 'holds.json';
const POLL_MS = 10;

export function holdsDir(dir: string): string {
  return path.join(dir, 'holds');
}

function readHolds(dir: string): z.infer<typeof HoldSchema>[] {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, HOLDS_FILE), 'utf8');
  } catch {
    return [];
  }
  return z.array(HoldSchema).parse(JSON.parse(text));
}

/** Claims the next hit number for a hold: the Nth matching call across every process gets N. */
function nextHit(dir: string, id: string): number {
  for (let n = 1; ; n++) {
    try {
      fs.mkdirSync(path.join(holdsDir(dir), `${id}.hit${n}`));
      return n;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/**
 * Blocks while a hold for this call is in place; 'drop' means the test wants the call to fail as if it
 * never reached the cloud (only meaningful before the call acted).
 */
export async function holdPoint(
  dir: string,
  tool: string,
  argv: readonly string[],
  when: 'before' | 'after',
  env: NodeJS.ProcessEnv = process.env,
): Promise<'run' | 'drop'> {
  const joined = argv.join(' ');
  for (const h of readHolds(dir)) {
    if (h.when !== when) continue;
    if (h.tool !== undefined && h.tool !== tool) continue;
    if (h.step !== undefined && h.step !== env.CAPI_STEP) continue;
    if (h.argv !== undefined && !new RegExp(h.argv).test(joined)) continue;
    if (nextHit(dir, h.id) !== h.nth) continue;
    const base = path.join(holdsDir(dir), h.id);
    fs.writeFileSync(`${base}.reached`, `${process.pid}\n`);
    for (;;) {
      try {
        return fs.readFileSync(`${base}.release`, 'utf8').trim() === 'drop' ? 'drop' : 'run';
      } catch {
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    }
  }
  return 'run';
}

/** Test side: adds a hold (ids must be unique within one simulated site). */
export function addHold(dir: string, hold: Hold): void {
  const parsed = HoldSchema.parse(hold);
  fs.mkdirSync(holdsDir(dir), { recursive: true });
  const all = readHolds(dir).filter((h) => h.id !== parsed.id);
  const tmp = path.join(dir, `${HOLDS_FILE}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify([...all, parsed]));
  fs.renameSync(tmp, path.join(dir, HOLDS_FILE));
}

export function holdReached(dir: string, id: string): boolean {
  return fs.existsSync(path.join(holdsDir(dir), `${id}.reached`));
}

export function releaseHold(dir: string, id: string, mode: 'run' | 'drop' = 'run'): void {
  fs.mkdirSync(holdsDir(dir), { recursive: true });
  fs.writeFileSync(path.join(holdsDir(dir), `${id}.release`), mode);
}

/** Lets every held call go (on stop, so no stand-in process outlives its site). */
export function releaseAll(dir: string): void {
  for (const h of readHolds(dir)) releaseHold(dir, h.id);
}
