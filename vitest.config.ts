import { configDefaults, defineConfig } from 'vitest/config';
import { longestFirst } from './test/support/sequencer.js';

/**
 * Files that start no process (no sshd, no simulator CLI, no redis-server, no tsc) and never reach Redis:
 * `npm run test:unit` runs them alone in well under a minute, without building dist/. The project's setup file
 * (test/support/unit-guard.ts) fails a file here that starts a process or connects to Redis. A new test file is
 * an integration one unless it is listed here.
 */
const UNIT = [
  'architecture',
  'bench-system-report',
  'config-env',
  'config-redis-target',
  'config-units',
  'engine-interpreter',
  'expr',
  'fake-slack',
  'fake-slack-views',
  'fault-matrix',
  'fronts-format',
  'log',
  'paced-slack',
  'playground-mrkdwn',
  'redact',
  'runbook-load',
  'runs-policy',
  'secret-corpus',
  'service-settings',
  'slack-approval-message',
  'slack-blocks',
  'slack-command',
  'slack-manifest',
  'slack-run-view',
  'slack-socket-mode',
  'terminal-identity',
  'unit-guard',
  'untrusted-text',
].map((name) => `test/${name}.test.ts`);

/**
 * The longest files (the baseline of 2026-12-07), started first so that no long file starts last and runs on
 * alone at the end. vitest orders by the last run's durations once it has them (node_modules/.vite); this is
 * for a clean clone, which has none.
 */
const LONGEST_FIRST = [
  'fault-injection',
  'agent',
  'queue-cli',
  'runbooks.e2e',
  'cli',
  'playground-browser',
  'agent-resilience',
].map((name) => `test/${name}.test.ts`);

/**
 * Test files run two at a time, unit and integration together. Every file runs beside any other: loopback ports
 * from dev/net.ts (freePort), its own Redis key prefix per test (queues and locks live under it), temp
 * directories of its own, its own sshd with its own keys per simulated site, and its own redis-server for a
 * restart, Sentinel or Cluster.
 */
const WORKERS = 2;

/**
 * Files that hold real-time windows tight enough that a second test file beside them breaks them on a loaded
 * 2-core machine (both full-suite runs of 2026-12-07 at load 20-30 failed them; alone they pass): Slack's
 * pacing and chat.update budget measured to the millisecond (slack-poster), a run's duration to 50 ms and a 4 s
 * approval window (slack-thread-readable), a time-scaled failover's 3.2 s PENDING window (sim-cloud). They run
 * after the others, one at a time (the `alone` project).
 */
const ALONE = ['slack-poster', 'slack-thread-readable', 'sim-cloud'].map((name) => `test/${name}.test.ts`);

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: WORKERS,
    sequence: { sequencer: longestFirst(LONGEST_FIRST) },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: UNIT,
          setupFiles: ['test/support/unit-guard.ts'],
          // One process per worker for all of them: no file here mocks a module or changes the environment.
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...UNIT, ...ALONE],
          // Builds dist/ when the source is newer: the simulator's stand-in CLIs run from it.
          globalSetup: ['test/support/build.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'alone',
          include: ALONE,
          globalSetup: ['test/support/build.ts'],
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
