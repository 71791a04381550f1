/**
 * A recorded step's answer (the simulator serving a recording, dev/sim/recorded.ts): prints what the step's
 * command printed on the recorded site and exits with its code. Which command: the step (CAPI_STEP), the
 * script's sha256 when it matches one recorded, and how many times this step asked before (a poll's attempts).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readRecording } from '../../../src/recording/format.js';

async function main(): Promise<number> {
  const dir = process.env.CAPI_SIM_DIR ?? '';
  const recording = await readRecording(process.env.CAPI_SIM_RECORDING ?? '');
  const step = process.env.CAPI_STEP ?? '';
  const sha = process.env.CAPI_SIM_SHA ?? '';
  const all = [...recording.runbooks.values()].flatMap((rb) => rb.commands.filter((c) => c.step === step));
  // An agent's run wraps each script in its fence, so its sha differs from the recorded one: then the step's
  // commands answer in the order they were recorded.
  const bySha = all.filter((c) => c.script_sha256 === sha);
  const candidates = bySha.length > 0 ? bySha : all;
  if (candidates.length === 0) {
    process.stderr.write(`capi-sim (recording): step ${step} was not recorded\n`);
    return 127;
  }
  const counters = path.join(dir, 'replay');
  mkdirSync(counters, { recursive: true });
  const counter = path.join(counters, `${encodeURIComponent(step)}-${bySha.length > 0 ? sha : 'any'}`);
  let n = 0;
  try {
    n = Number(readFileSync(counter, 'utf8')) || 0;
  } catch {
    // First time this step asks.
  }
  writeFileSync(counter, String(n + 1));
  // Past the last recorded answer (a poll asked more often than on the site), the last one repeats.
  const c = candidates[Math.min(n, candidates.length - 1)] as (typeof candidates)[number];
  process.stdout.write(c.stdout);
  process.stderr.write(c.stderr);
  if (c.timed_out) await new Promise(() => setInterval(() => undefined, 60_000));
  return c.exit ?? 143;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`capi-sim replay: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
