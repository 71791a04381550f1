/**
 * Runs that survive their agent losing its hold, a runbook deployed mid-run, a lost checkpoint and a killed
 * agent: real agent processes (`capi-chatops agent`) on a temporary COMMANDS_DIR, a real sshd with the
 * simulated cloud, real Redis; faults made from outside (keys deleted, files rewritten, SIGKILL).
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Job, Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { RunEvent } from '../src/engine/events.js';
import { type CapiError, ErrorCode } from '../src/errors.js';
import type { AuditEvent } from '../src/ops/audit.js';
import { loadRunbooks } from '../src/runbook/load.js';
import {
  type AgentProcess,
  decideNext,
  events,
  type Harness,
  isType,
  spawnAgent,
  startHarness,
  waitForEvent,
} from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';

const SHIPPED = new URL('../commands/', import.meta.url).pathname;
const db = useTestRedis();
let h: Harness | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await h?.stop();
  h = undefined;
});

/** A COMMANDS_DIR of its own: the shipped scopes, and these runbook files (name -> YAML after the header). */
async function commandsDir(runbooks: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-durable-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await copyFile(path.join(SHIPPED, 'scopes.yaml'), path.join(dir, 'scopes.yaml'));
  for (const [name, yaml] of Object.entries(runbooks)) await writeRunbook(dir, name, yaml);
  return dir;
}

function writeRunbook(dir: string, name: string, steps: string): Promise<void> {
  return writeFile(path.join(dir, `${name}.yaml`), `name: ${name}\nsummary: test\nsource: test\n${steps}`);
}

/** A destructive step: guard, approval, and a read-back of ~/zaps for the line `line`. */
const destructive = (id: string, run: string, line: string) => `  - id: ${id}
    title: ${id}
    destructive: true
    guard:
      - run: "true"
        skip_when: "false"
        say: never
    approval:
      summary: ${id}
      targets: ["the thing"]
    verify:
      run: cat ~/zaps 2>/dev/null || true
      took_effect: stdout =~ "${line}"
      say: landed
      check_by_hand: "cat ~/zaps on the jumphost: no ${line} line means it did not land (sent at {attempt.started_at})"
    run: ${run}
`;

/** One destructive command that takes 30 s: long enough to lose a hold while it is in flight. */
const LONG_ZAP = `steps:\n${destructive('zap', 'echo started; sleep 30; echo zapped >> ~/zaps', 'zapped')}`;
const LONG_ZAP_COMMAND = 'echo started; sleep 30; echo zapped >> ~/zaps';

async function siteFile(hh: Harness): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-durable-site-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'site.yaml');
  await writeFile(file, stringify({ ...hh.sims[0]?.site, name: 'site-0' }));
  return file;
}

async function agentProcess(
  hh: Harness,
  dir: string,
  more: Partial<Parameters<typeof spawnAgent>[0]> = {},
): Promise<AgentProcess> {
  const a = await spawnAgent({
    siteFile: await siteFile(hh),
    prefix: db.prefix,
    ...more,
    env: { COMMANDS_DIR: dir, ...more.env },
  });
  cleanups.push(() => a.stop());
  return a;
}

const startedLine = (e: RunEvent): e is RunEvent => e.type === 'step.output' && e.line === 'started';

function home(hh: Harness, file: string): string {
  return path.join(hh.sims[0]?.dir ?? '', 'home', file);
}

const parked = (hh: Harness, runId: string) =>
  eventually('the run to park at its approval', async () =>
    (await hh.service.getRun(runId))?.status === 'waiting_approval' ? true : undefined,
  );

describe('a run whose agent loses its hold during a destructive command', () => {
  it('should end OUTCOME UNKNOWN, audited, and keep the site held until released with a reason when the site lock is deleted', async () => {
    const dir = await commandsDir({ zap: LONG_ZAP });
    const audited: AuditEvent[] = [];
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks: await loadRunbooks(dir),
      scenarios: ['healthy'],
      service: { audit: { record: (e) => audited.push(e) } },
    });
    // The site lock is confirmed every 500 ms.
    const agent = await agentProcess(h, dir, { env: { SITE_LOCK_TTL: '1500ms' } });
    const run = await h.submit('zap');
    await decideNext(h.service, run.runId, true, 'U0APPROVER', 60_000);
    await waitForEvent(h.service, run.runId, startedLine, 60_000);
    expect(await db.redis.del(`${db.prefix}:lock:site:site-0`)).toBe(1);

    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000);
    expect(finished.status).toBe('failed');
    expect(finished.message).toContain(`OUTCOME UNKNOWN: \`${LONG_ZAP_COMMAND}\` was sent at `);
    expect(finished.message).toMatch(
      /It is NOT sent again\. Check by hand: cat ~\/zaps on the jumphost: no zapped line means it did not land \(sent at \d{4}-/,
    );
    const all = events(await h.service.readTimeline(run.runId));
    // The thread's post: what may have landed and how to check.
    expect(all.filter(isType('attempt.verified'))).toEqual([
      expect.objectContaining({ tookEffect: false, message: expect.stringContaining('OUTCOME UNKNOWN') }),
    ]);
    expect(all.filter(isType('run.resumed')).at(-1)?.reason).toMatch(
      /lost its hold on the run .* was in flight/,
    );
    // Sent once, never again; the command was stopped before it wrote anything.
    expect(all.filter(isType('attempt.started'))).toHaveLength(1);
    expect(all.filter(startedLine)).toHaveLength(1);
    expect(await readFile(home(h, 'zaps'), 'utf8').catch(() => '')).toBe('');
    expect(await h.service.getRun(run.runId)).toMatchObject({ status: 'failed' });
    await eventually('the agent to audit the unknown outcome', () =>
      agent.logs().includes('"event":"destructive.outcome_unknown"') ? true : undefined,
    );

    // The site stays held: no run that can change the cloud starts, whoever asks.
    expect(await h.service.holds('site-0')).toEqual([
      expect.objectContaining({ runId: run.runId, command: LONG_ZAP_COMMAND }),
    ]);
    const refused = (await h.submit('zap', { requestedBy: 'U_OTHER' }).catch((e: unknown) => e)) as CapiError;
    expect(refused.code).toBe(ErrorCode.TargetBusy);
    expect(refused.message).toMatch(
      /site site-0 is held: .*OUTCOME UNKNOWN.*capi-chatops release site-0 --reason/,
    );
    // Released only with a reason, audited.
    await expect(h.service.release('site-0', 'U_OPS', '  ')).rejects.toMatchObject({
      code: ErrorCode.ParamInvalid,
    });
    const released = await h.service.release('site-0', 'U_OPS', 'read ~/zaps: no zapped line', 'test');
    expect(released.map((r) => r.runId)).toEqual([run.runId]);
    expect(audited).toContainEqual(
      expect.objectContaining({
        event: 'site.released',
        site: 'site-0',
        by: 'U_OPS',
        reason: 'read ~/zaps: no zapped line',
      }),
    );
    expect(await h.service.release('site-0', 'U_OPS', 'again')).toEqual([]);
    const next = await h.submit('zap');
    expect(next.status).toBe('queued');
    await h.service.cancel(next.runId, 'U_OPS');
    expect((await waitForEvent(h.service, next.runId, isType('run.finished'), 60_000)).status).toBe(
      'cancelled',
    );
  });

  it('should end a run that no agent holds any more (its job gone) OUTCOME UNKNOWN, with the site held', async () => {
    const dir = await commandsDir({ zap: LONG_ZAP });
    const runbooks = await loadRunbooks(dir);
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    const a = await agentProcess(h, dir);
    const run = await h.submit('zap');
    await decideNext(h.service, run.runId, true, 'U0APPROVER', 60_000);
    await waitForEvent(h.service, run.runId, startedLine, 60_000);
    a.child.kill('SIGKILL');
    await a.exited;
    // Its job goes (removed by hand once its lock lapsed): nothing in BullMQ will ever give the run an agent.
    const queue = new Queue(run.queue, { connection: db.redis, prefix: db.prefix });
    cleanups.push(() => queue.close());
    await eventually('the dead agent’s job lock to lapse', async () =>
      (await db.redis.exists(`${db.prefix}:${run.queue}:${run.runId}:lock`)) === 0 ? true : undefined,
    );
    await (await Job.fromId(queue, run.runId))?.remove();
    expect(await h.service.getRun(run.runId)).toMatchObject({ status: 'running' });

    await h.startAgent({ runbooks, siteLockTtlMs: 600, orphanGraceMs: 500 });
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000);
    expect(finished.status).toBe('failed');
    expect(finished.message).toMatch(
      new RegExp(
        `^no agent holds run ${run.runId} any more: its job is gone while the run was running\\. OUTCOME UNKNOWN: \`echo started; sleep 30; echo zapped >> ~/zaps\` was sent at \\S+ \\(attempt \\S+\\) and no agent saw it return\\. It is NOT sent again\\. Check by hand: cat ~/zaps on the jumphost: no zapped line means it did not land \\(sent at \\d{4}-`,
      ),
    );
    expect((await h.service.holds('site-0')).map((x) => x.runId)).toEqual([run.runId]);
  });
});

describe('a run keeps the runbook it started with', () => {
  const v1 = `steps:
  - id: first
    title: First
    run: echo first >> ~/log
${destructive('zap', 'echo zap-v1 >> ~/zaps', 'zap-v1')}  - id: last
    title: Last
    run: echo last >> ~/log
`;
  // Deployed while the run waits: a step inserted before the destructive one, steps renamed, another command.
  const v2 = `steps:
  - id: first
    title: First
    run: echo first >> ~/log
  - id: inserted
    title: Inserted
    run: echo inserted >> ~/log
${destructive('zap-it', 'echo zap-v2 >> ~/zaps', 'zap-v2')}  - id: final
    title: Final
    run: echo final >> ~/log
`;

  it('should follow its stored copy when the runbook file changes while it is parked at an approval', async () => {
    const dir = await commandsDir({ zap: v1 });
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks: await loadRunbooks(dir),
      scenarios: ['healthy'],
    });
    const a = await agentProcess(h, dir);
    const run = await h.submit('zap');
    const asked = await waitForEvent(h.service, run.runId, isType('approval.requested'), 60_000);
    await parked(h, run.runId);
    // A deploy: the new file, and agents that read it.
    await writeRunbook(dir, 'zap', v2);
    await a.stop();
    expect((await loadRunbooks(dir)).runbooks.get('zap')?.steps.map((s) => s.id)).toEqual([
      'first',
      'inserted',
      'zap-it',
      'final',
    ]);
    await agentProcess(h, dir);
    const decided = await h.service.decide(
      asked.approvalId,
      { userId: 'U0APPROVER', groupIds: [] },
      true,
      'test',
    );
    expect(decided.outcome).toBe('decided');

    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000);
    expect(finished).toMatchObject({ status: 'succeeded' });
    expect(await readFile(home(h, 'zaps'), 'utf8')).toBe('zap-v1\n');
    expect(await readFile(home(h, 'log'), 'utf8')).toBe('first\nlast\n');
    const all = events(await h.service.readTimeline(run.runId));
    expect([...new Set(all.filter(isType('step.started')).map((e) => e.stepId))]).toEqual([
      'first',
      'zap',
      'last',
    ]);
    // The approval given was for the action the run still takes: used, not asked again.
    expect(all.filter(isType('approval.superseded'))).toEqual([]);
  });

  it('should refuse to resume, saying why, when its stored runbook cannot be read', async () => {
    const dir = await commandsDir({ zap: v1 });
    const runbooks = await loadRunbooks(dir);
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent({ runbooks });
    const run = await h.submit('zap');
    const asked = await waitForEvent(h.service, run.runId, isType('approval.requested'));
    await parked(h, run.runId);
    await db.redis.set(`${db.prefix}:run:${run.runId}:runbook`, '{"format":"capi-chatops-runbook/1"');
    await h.service.decide(asked.approvalId, { userId: 'U0APPROVER', groupIds: [] }, true, 'test');
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'));
    expect(finished).toMatchObject({
      status: 'failed',
      message: `run ${run.runId} cannot resume: the stored runbook copy is not JSON; nothing more was run`,
    });
    expect(await readFile(home(h, 'zaps'), 'utf8').catch(() => 'nothing')).toBe('nothing');
  });
});

describe('a run whose checkpoint is lost', () => {
  it('should refuse to restart from the first step when destructive attempts are on record', async () => {
    const dir = await commandsDir({
      twice: `steps:\n${destructive('zap-one', 'echo one >> ~/zaps', 'one')}${destructive('zap-two', 'echo two >> ~/zaps', 'two')}`,
    });
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks: await loadRunbooks(dir),
      scenarios: ['healthy'],
    });
    await agentProcess(h, dir);
    const run = await h.submit('twice');
    const first = await decideNext(h.service, run.runId, true, 'U0APPROVER', 60_000);
    const second = await waitForEvent(
      h.service,
      run.runId,
      (e): e is Extract<RunEvent, { type: 'approval.requested' }> =>
        e.type === 'approval.requested' && e.approvalId !== first.approvalId,
      60_000,
    );
    await parked(h, run.runId);
    expect(await db.redis.del(`${db.prefix}:run:${run.runId}:checkpoint`)).toBe(1);
    await h.service.decide(second.approvalId, { userId: 'U0APPROVER', groupIds: [] }, true, 'test');

    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000);
    expect(finished.status).toBe('failed');
    expect(finished.message).toMatch(
      /cannot resume: its checkpoint is gone while 1 destructive attempt\(s\) of it are on record \(zap-one\); it never restarts from the first step/,
    );
    expect(await readFile(home(h, 'zaps'), 'utf8')).toBe('one\n');
    // The one attempt ended with a known outcome: nothing to hold, the site is free.
    expect(await h.service.holds('site-0')).toEqual([]);
    expect(await db.redis.exists(`${db.prefix}:lock:site:site-0`)).toBe(0);
  });
});

describe('taking over a killed agent’s run', () => {
  it('should resume the run on another agent within 20 s of a SIGKILL mid-step, with the lock timings the product ships', async () => {
    const dir = await commandsDir({
      long: 'steps:\n  - id: long\n    title: Long\n    run: echo started; sleep 120\n',
    });
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks: await loadRunbooks(dir),
      scenarios: ['healthy'],
    });
    const a = await agentProcess(h, dir, { shippedTimings: true });
    const run = await h.submit('long');
    await waitForEvent(h.service, run.runId, startedLine, 60_000);
    const b = await agentProcess(h, dir, { shippedTimings: true });
    await eventually('the second agent to be ready', () =>
      b.logs().includes('agent ready') ? true : undefined,
    );

    a.child.kill('SIGKILL');
    const killedAt = Date.now();
    await a.exited;
    const resumed = await waitForEvent(h.service, run.runId, isType('run.resumed'), 40_000).catch(() => {
      throw new Error(
        `the run was not taken over within ${((Date.now() - killedAt) / 1000).toFixed(1)} s of its agent's SIGKILL (the product promises 20 s)`,
      );
    });
    const tookMs = Date.now() - killedAt;
    expect(resumed.atStep).toBe('long');
    expect(
      tookMs,
      `the run was taken over ${(tookMs / 1000).toFixed(1)} s after its agent was killed`,
    ).toBeLessThan(20_000);
    await h.service.cancel(run.runId, 'U_OPS');
    expect((await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000)).status).toBe(
      'cancelled',
    );
  });
});
