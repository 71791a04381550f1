/**
 * Exactly once, or not at all, under SIGKILL: for each runbook that changes the cloud, an agent process
 * is killed at every step boundary (held right before the step's first call reaches the cloud) and
 * inside every destructive command (held right after the cloud applied it, before it answered), then
 * another agent takes the run over. At every point: each cloud change at most once, no rule of the
 * seed broken, and the run ends succeeded or stopped with a message that says what happened.
 * `npm test` tries the boundary before every destructive step, the first cloud change inside every step
 * that makes one, and a seeded sample of the other points (it prints the seed); `npm run test:faults`
 * tries them all (test/support/fault-matrix.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Hold, JournalEntry, SimJumphost } from '../dev/sim/jumphost.js';
import type { RunEvent } from '../src/engine/events.js';
import { leafSteps, loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { approveEverything, isType, spawnAgent, startHarness, waitForEvent } from './support/agent.js';
import { choosePoints, faultMatrix } from './support/fault-matrix.js';
import { useTestRedis } from './support/redis.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
/** Cloud calls that change something: a kill is injected right after each of them took effect. */
const MUTATING =
  '^(server (delete|stop|start)|loadbalancer failover|router (remove|unset|delete)|subnet delete|network delete|security group delete|.*\\bpatch\\b)';
/**
 * Points run at once: each has its own simulated site, Redis prefix and agents. A point's run is mostly the
 * stand-in CLIs' CPU, and another test file runs beside this one: more at once only makes each point slower
 * to reach its hold (60 s) on a 2-core machine, not the file quicker.
 */
const PARALLEL = 2;

const db = useTestRedis();
let runbooks: RunbookSet;
const tried: string[] = [];
/** The points every run tries and a seeded sample of the others, or all of them (test/support/fault-matrix.ts). */
const matrix = faultMatrix();
let matrixSize = 0;

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterAll(() => {
  const which = matrix.full ? 'the full matrix' : `seed ${matrix.seed}`;
  process.stdout.write(
    `fault injection (${which}; ${matrix.again} tries these again): ${tried.length} of ${matrixSize} kill points tried\n`,
  );
});

interface Case {
  readonly runbook: string;
  readonly args: readonly string[];
  readonly scenario: string;
}

interface Point {
  readonly label: string;
  readonly hold: Hold;
  /** Before the call acted, the agent dies with it unsent; after, the cloud has applied it. */
  readonly release: 'drop' | 'run';
  /**
   * Tried on every run: before a destructive step, and inside a step right after its first cloud change. The
   * other points (other boundaries, later changes of a block) are sampled unless the full matrix runs.
   */
  readonly always: boolean;
}

const slug = (s: string) => s.replace(/[^a-z0-9]+/g, '-');

/** Runs the case once without faults, counting each step's cloud calls, and derives the kill points. */
async function killPoints(c: Case, prefix: string): Promise<Point[]> {
  const runbook = runbooks.runbooks.get(c.runbook);
  if (!runbook) throw new Error(`no runbook ${c.runbook}`);
  const ids = runbook.steps.flatMap((s) =>
    s.kind === 'for_each' ? s.steps.map((i) => `${s.id}/${i.id}`) : s.kind === 'report' ? [] : [s.id],
  );
  const destructive = new Set(
    runbook.steps.flatMap((s) =>
      s.kind === 'for_each'
        ? s.steps.filter((i) => i.kind === 'run' && i.destructive).map((i) => `${s.id}/${i.id}`)
        : leafSteps([s]).some((l) => l.kind === 'run' && l.destructive)
          ? [s.id]
          : [],
    ),
  );
  const counted = await runCase(c, prefix, (sim) => {
    for (const step of ids) {
      sim.hold({ id: `count-${slug(step)}`, step, nth: 1_000_000, when: 'before' });
      if (destructive.has(step) || step === 'start-mgmt-vm') {
        sim.hold({ id: `count-${slug(step)}-mut`, step, argv: MUTATING, nth: 1_000_000, when: 'after' });
      }
    }
  });
  expect(counted.status, `${c.runbook} without faults`).toBe('succeeded');
  const points: Point[] = [];
  for (const step of ids) {
    if ((counted.hits.get(`count-${slug(step)}`) ?? 0) > 0) {
      points.push({
        label: `before ${step}`,
        hold: { id: 'kill', step, nth: 1, when: 'before' },
        release: 'drop',
        always: destructive.has(step),
      });
    }
    const mutations = counted.hits.get(`count-${slug(step)}-mut`) ?? 0;
    for (let n = 1; n <= mutations; n++) {
      points.push({
        label: `inside ${step}, after cloud change ${n}`,
        hold: { id: 'kill', step, argv: MUTATING, nth: n, when: 'after' },
        release: 'run',
        always: n === 1,
      });
    }
  }
  return points;
}

interface CaseResult {
  readonly status: string;
  readonly message: string;
  readonly events: RunEvent[];
  readonly journal: JournalEntry[];
  readonly violations: string[];
  readonly hits: Map<string, number>;
}

/**
 * One run of the case on a fresh site. With a point: a real agent process runs it until the hold, is
 * SIGKILLed there, the held call is let go (or dropped), and an in-process agent takes the run over.
 */
async function runCase(
  c: Case,
  prefix: string,
  setup: (sim: SimJumphost) => void,
  point?: Point,
): Promise<CaseResult> {
  const h = await startHarness({ redis: db.redis, prefix, runbooks, scenarios: [c.scenario] });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-fault-'));
  try {
    const sim = h.sims[0];
    if (!sim) throw new Error('no sim');
    setup(sim);
    const hold = point ? sim.hold(point.hold) : undefined;
    let victim: Awaited<ReturnType<typeof spawnAgent>> | undefined;
    if (point) {
      const siteFile = path.join(dir, 'site.yaml');
      await writeFile(siteFile, stringify({ ...sim.site, name: 'site-0' }));
      victim = await spawnAgent({ siteFile, prefix });
    } else {
      await h.startAgent();
    }
    const run = await h.service.submit({
      runbook: c.runbook,
      args: [...c.args],
      site: 'site-0',
      requestedBy: 'U_REQUESTER',
    });
    const approver = new AbortController();
    const approving = approveEverything(h.service, run.runId, approver.signal);
    try {
      if (hold && victim) {
        await hold.reached(60_000);
        victim.child.kill('SIGKILL');
        await victim.exited;
        hold.release(point?.release);
        await h.startAgent();
      }
      const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 90_000);
      const events = (await h.service.readTimeline(run.runId)).map((e) => e.event);
      const hits = new Map<string, number>();
      const { readdir } = await import('node:fs/promises');
      for (const f of await readdir(path.join(sim.dir, 'holds')).catch(() => [] as string[])) {
        const m = /^(.*)\.hit\d+$/.exec(f);
        if (m?.[1]) hits.set(m[1], (hits.get(m[1]) ?? 0) + 1);
      }
      return {
        status: finished.status,
        message: finished.message,
        events,
        journal: await sim.journal(),
        violations: (await sim.violations()).map((v) => `${v.rule}: ${v.detail}`),
        hits,
      };
    } finally {
      approver.abort();
      await approving;
      await victim?.stop();
    }
  } finally {
    await h.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** What must hold at every point. */
function checkPoint(c: Case, point: Point, r: CaseResult): void {
  const where = `${c.runbook}, killed ${point.label}`;
  const changes = r.journal.filter((j) => j.ok).map((j) => `${j.action} ${j.target}`);
  const twice = changes.filter((x, i) => changes.indexOf(x) !== i);
  expect(twice, `${where}: a cloud change made twice`).toEqual([]);
  expect(r.violations, `${where}: a seed rule broken`).toEqual([]);
  expect(
    r.events.some((e) => e.type === 'run.resumed' && /took over/.test(e.reason)),
    `${where}: no take-over`,
  ).toBe(true);
  if (r.status !== 'succeeded') {
    // Stopped, never silently: the message says what was sent and what to check.
    expect(r.status, `${where}: ${r.message}`).toBe('failed');
    expect(r.message, where).toMatch(/OUTCOME UNKNOWN|not retried|not sent again/);
    expect(point.release, `${where}: a kill before any change must not stop the run (${r.message})`).toBe(
      'run',
    );
  }
}

async function pool<T>(
  items: readonly T[],
  n: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i] as T, i);
      }
    }),
  );
}

const CASES: Case[] = [
  { runbook: 'sweep', args: [], scenario: 'outage' },
  { runbook: 'failover', args: ['1b000000-0000-4000-8000-000000000001'], scenario: 'lb-error' },
  { runbook: 'park', args: [], scenario: 'healthy' },
  { runbook: 'stuck-delete', args: ['capi-test-2'], scenario: 'stuck-delete' },
  { runbook: 'recover', args: [], scenario: 'outage' },
];

const killedAt = matrix.full
  ? 'every step boundary and inside every destructive command'
  : 'every destructive step boundary, inside every cloud-changing step, and sampled other points';
describe(`SIGKILL at ${killedAt}`, () => {
  it.each(CASES)(
    '$runbook on $scenario: each cloud change at most once, every run explained',
    async (c) => {
      const all = await killPoints(c, `${db.prefix}-ref`);
      expect(all.length).toBeGreaterThan(0);
      expect(
        all.some((p) => p.release === 'run'),
        'at least one kill inside a destructive command',
      ).toBe(true);
      matrixSize += all.length;
      const points = choosePoints(all, (p) => p.always, matrix, c.runbook);
      const failures: string[] = [];
      await pool(points, PARALLEL, async (point, i) => {
        const r = await runCase(c, `${db.prefix}-p${i}`, () => undefined, point);
        tried.push(`${c.runbook}: ${point.label}`);
        try {
          checkPoint(c, point, r);
        } catch (err) {
          failures.push((err as Error).message);
        }
      });
      expect(failures).toEqual([]);
    },
    600_000,
  );
});
