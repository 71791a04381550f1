/**
 * Runs every benchmark and checks it against its target. Targets live here, not in unit tests:
 * timing on a shared 2-core machine is too noisy to fail a build on. Results go to bench/RESULTS.md
 * by hand after a run on a quiet machine.
 */
import { benchEngineSteps } from './engine-steps.js';
import { benchSshExec } from './ssh-exec.js';

interface Bench {
  readonly name: string;
  readonly run: () => Promise<Record<string, number>>;
  /** metric -> upper bound */
  readonly targets: Readonly<Record<string, number>>;
}

const BENCHES: readonly Bench[] = [
  { name: 'ssh-exec', run: benchSshExec, targets: { p50Ms: 10, p95Ms: 25 } },
  { name: 'engine-steps', run: benchEngineSteps, targets: { per_step_ms: 15, heap_growth_mb: 50 } },
];

let missed = 0;
for (const b of BENCHES) {
  const result = await b.run();
  const verdicts = Object.entries(b.targets).map(([metric, bound]) => {
    const value = result[metric];
    const ok = value !== undefined && value <= bound;
    if (!ok) missed += 1;
    return `${metric} ${value} ${ok ? '<=' : '>'} ${bound} ${ok ? 'ok' : 'MISSED'}`;
  });
  process.stdout.write(`${JSON.stringify({ bench: b.name, ...result })}\n  ${verdicts.join('; ')}\n`);
}
process.exitCode = missed > 0 ? 1 : 0;
