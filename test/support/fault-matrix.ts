/**
 * Which kill points the fault-injection test tries. The full matrix (a SIGKILL at every step boundary of every
 * case, and inside every cloud change) takes many minutes on a 2-core machine; by default the suite tries the
 * points the test marks as always tried (before every destructive step, and right after the first cloud change
 * inside every step that makes one: where a kill could send a change twice) and a seeded sample of the others,
 * and says the seed, so that a failure can be tried again exactly as it ran.
 *
 *   CAPI_FAULT_SEED=<integer>   that sample instead of a new one (the default: a new seed each run, printed)
 *   CAPI_FAULT_MATRIX=full      every point (`npm run test:faults`)
 */
import { z } from 'zod';

/** Points tried per case besides the ones always tried. */
export const SAMPLED_PER_CASE = 2;

export interface FaultMatrix {
  readonly full: boolean;
  readonly seed: number;
  /** How to try again what this run tried. */
  readonly again: string;
}

const faultEnv = z.object({
  CAPI_FAULT_MATRIX: z
    .enum(['sampled', 'full'], { error: 'must be "full" (every kill point) or "sampled" (the default)' })
    .default('sampled'),
  CAPI_FAULT_SEED: z
    .string()
    .regex(/^\d{1,9}$/, 'must be a whole number (the seed a previous run printed)')
    .transform(Number)
    .optional(),
});

export function faultMatrix(env: NodeJS.ProcessEnv = process.env): FaultMatrix {
  const parsed = faultEnv.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${String(issue?.path[0])} ${issue?.message}`);
  }
  const full = parsed.data.CAPI_FAULT_MATRIX === 'full';
  const seed = parsed.data.CAPI_FAULT_SEED ?? Math.floor(Math.random() * 1e9);
  return { full, seed, again: full ? 'CAPI_FAULT_MATRIX=full' : `CAPI_FAULT_SEED=${seed}` };
}

/**
 * The points to try: all of them for the full matrix; otherwise every point `always` accepts and
 * SAMPLED_PER_CASE of the others, drawn with `seed` and the case's name (each case its own draw), in the points'
 * own order.
 */
export function choosePoints<T>(
  points: readonly T[],
  always: (point: T) => boolean,
  matrix: FaultMatrix,
  caseName: string,
): T[] {
  if (matrix.full) return [...points];
  const random = mulberry32(hash(`${matrix.seed}:${caseName}`));
  const others = points.filter((p) => !always(p));
  // A partial Fisher-Yates shuffle: the first SAMPLED_PER_CASE places get a uniform draw without repeats.
  for (let i = 0; i < Math.min(SAMPLED_PER_CASE, others.length); i++) {
    const j = i + Math.floor(random() * (others.length - i));
    [others[i], others[j]] = [others[j] as T, others[i] as T];
  }
  const drawn = new Set(others.slice(0, SAMPLED_PER_CASE));
  return points.filter((p) => always(p) || drawn.has(p));
}

/** FNV-1a: a 32-bit seed from a string. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A small seeded PRNG (mulberry32): the same seed draws the same numbers on every machine. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
