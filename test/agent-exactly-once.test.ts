import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { RunEvent } from '../src/engine/events.js';
import { type CapiError, ErrorCode } from '../src/errors.js';
import { loadRunbooks, parseRunbook, type RunbookSet } from '../src/runbook/load.js';
import { TargetLock, targetKey } from '../src/runs/lock.js';
import { isFinalStatus } from '../src/runs/registry.js';
import {
  approveEverything,
  decideNext,
  dumpKeys,
  type Harness,
  isType,
  spawnAgent,
  startHarness,
  waitForEvent,
} from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const db = useTestRedis();
let shipped: RunbookSet;
let h: Harness | undefined;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  shipped = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await h?.stop();
  h = undefined;
});

/** A test runbook next to the shipped ones (same scopes). */
function withRunbook(yaml: string, name: string): RunbookSet {
  const rb = parseRunbook(
    `/test/${name}.yaml`,
    `name: ${name}\nsummary: test\nsource: test\n${yaml}`,
    shipped.scopes,
  );
  return { ...shipped, runbooks: new Map([...shipped.runbooks, [name, rb]]) };
}

/**
 * One destructive step that appends a value to ~/zaps: by default the site's management server (a changed site
 * profile changes the action), or what `run` says.
 */
const zap = (run = 'echo $MGMT_SERVER >> ~/zaps') =>
  withRunbook(
    `steps:
  - id: zap
    title: Zap
    destructive: true
    guard:
      - run: "true"
        skip_when: "false"
        say: never
    approval:
      summary: Zap it
      targets: ["the thing"]
    verify: { run: cat ~/zaps, took_effect: "true", say: zapped, check_by_hand: cat ~/zaps }
    run: ${run}
`,
    'zap',
  );

async function siteFile(hh: Harness): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-once-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'site.yaml');
  await writeFile(file, stringify({ ...hh.sims[0]?.site, name: 'site-0' }));
  return file;
}

describe('read-only runs beside a recovery', () => {
  // A short read-only runbook stands for any of them (diagnose's two dozen steps only make the wait longer), on six
  // different images: six distinct runs (six identical asks would join one run).
  const IMAGES = ['ubuntu-24.04-noble', 'ubuntu-jammy-kube-v1.32.13', 'cirros-0.6.2'].flatMap((name, i) => [
    name,
    `1e000000-0000-4000-8000-00000000000${i + 1}`,
  ]);
  it('should neither refuse nor delay /capi recover while read-only checks run in a loop', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks: shipped, scenarios: ['healthy'] });
    await h.startAgent({ concurrency: 1, readOnlyConcurrency: 1 });
    const service = h.service;
    const diagnoses = [];
    for (let i = 0; i < 6; i++) {
      diagnoses.push(
        await service.submit({
          runbook: 'image-check',
          args: [IMAGES[i] as string],
          site: 'site-0',
          requestedBy: `U_${i}`,
        }),
      );
    }
    const recover = await service.submit({
      runbook: 'recover',
      args: [],
      site: 'site-0',
      requestedBy: 'U_OPS',
    });
    await waitForEvent(service, recover.runId, isType('run.started'));
    expect(new Set(diagnoses.map((d) => d.runId)).size).toBe(6);
    const done = await Promise.all(diagnoses.map((d) => service.getRun(d.runId)));
    // The recovery started while most of the diagnoses were still queued behind each other.
    expect(done.filter((r) => r && isFinalStatus(r.status)).length).toBeLessThan(diagnoses.length);
    expect((await waitForEvent(service, recover.runId, isType('run.finished'), 60_000)).status).toBe(
      'succeeded',
    );
    for (const d of diagnoses) {
      expect((await waitForEvent(service, d.runId, isType('run.finished'), 60_000)).status).toBe('succeeded');
    }
  });
});

describe('the site lock during a long step', () => {
  it('should keep the site locked for a step longer than the lock TTL and refuse a second run throughout', async () => {
    const runbooks = withRunbook(
      `steps:
  - id: long
    title: A step longer than the lock TTL
    run: sleep 2.5; echo done
  - id: zap
    title: Zap
    destructive: true
    guard:
      - run: "true"
        skip_when: "true"
        say: nothing to do
    approval:
      summary: Zap it
      targets: ["the thing"]
    verify: { run: "true", took_effect: "true", say: ok, check_by_hand: none }
    run: echo zap
`,
      'long',
    );
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent({ siteLockTtlMs: 600 });
    const service = h.service;
    const run = await service.submit({ runbook: 'long', args: [], site: 'site-0', requestedBy: 'U_OPS' });
    await waitForEvent(service, run.runId, isType('step.started', 'long'));
    const lock = new TargetLock(db.redis, db.prefix);
    let refusals = 0;
    // Until the long step is done, every look finds the site locked and a second run refused.
    await eventually(
      'the long step to finish',
      async () => {
        const events = (await service.readTimeline(run.runId)).map((e) => e.event);
        if (events.some((e) => e.type === 'step.finished' && e.stepId === 'long')) return true;
        expect(await lock.holder(targetKey('site-0'))).toBe(run.runId);
        const second = await service
          .submit({ runbook: 'park', args: [], site: 'site-0', requestedBy: 'U_OTHER' })
          .catch((e: unknown) => e);
        expect((second as CapiError).code).toBe(ErrorCode.TargetBusy);
        refusals += 1;
        return undefined;
      },
      { intervalMs: 150 },
    );
    // The step outlived the 600 ms TTL several times over, and the site stayed locked throughout.
    expect(refusals).toBeGreaterThanOrEqual(8);
    expect((await waitForEvent(service, run.runId, isType('run.finished'))).status).toBe('succeeded');
    expect(await lock.holder(targetKey('site-0'))).toBeNull();
  });
});

describe('an approval bound to its action', () => {
  it('should ask again and run nothing on the old approval when the resumed run rebuilds a different action', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks: zap(), scenarios: ['healthy'] });
    const service = h.service;
    const first = await h.startAgent();
    const run = await service.submit({ runbook: 'zap', args: [], site: 'site-0', requestedBy: 'U_OPS' });
    const asked = await waitForEvent(service, run.runId, isType('approval.requested'));
    expect(asked.request.commands[0]).toContain('echo capi-mgmt-v2');
    await eventually('the run to park at its approval', async () =>
      (await service.getRun(run.runId))?.status === 'waiting_approval' ? true : undefined,
    );
    // A rolling upgrade: the old agent goes, the approval is given, an agent whose site profile names another
    // management server resumes (the run keeps its runbook; the site's values are the agent's own).
    await first.close();
    expect(
      (await service.decide(asked.approvalId, { userId: 'U0APPROVER', groupIds: [] }, true, 'test')).outcome,
    ).toBe('decided');
    const site = h.sites.get('site-0');
    if (!site) throw new Error('no site');
    await h.startAgent({ sites: new Map([['site-0', { ...site, mgmt_server: 'capi-mgmt-v3' }]]) });
    const superseded = await waitForEvent(service, run.runId, isType('approval.superseded'));
    expect(superseded).toMatchObject({ approvalId: asked.approvalId, why: 'changed' });
    const again = await waitForEvent(
      service,
      run.runId,
      (e): e is Extract<RunEvent, { type: 'approval.requested' }> =>
        e.type === 'approval.requested' && e.approvalId !== asked.approvalId,
    );
    expect(again.request.commands[0]).toContain('echo capi-mgmt-v3');
    await eventually('the run to park at the new approval', async () =>
      (await service.getRun(run.runId))?.status === 'waiting_approval' ? true : undefined,
    );
    const zaps = path.join(h.sims[0]?.dir ?? '', 'home', 'zaps');
    expect(await readFile(zaps, 'utf8').catch(() => 'nothing')).toBe('nothing');
    // A click on the old message changes nothing.
    expect(
      (await service.decide(asked.approvalId, { userId: 'U0APPROVER', groupIds: [] }, true, 'test')).outcome,
    ).toBe('superseded');
    const next = await decideNext(service, run.runId, true);
    expect(next.approvalId).toBe(again.approvalId);
    expect((await waitForEvent(service, run.runId, isType('run.finished'))).status).toBe('succeeded');
    expect(await readFile(zaps, 'utf8')).toBe('capi-mgmt-v3\n');
  });
});

describe('a paused agent that wakes up after another agent took its run', () => {
  it('should send nothing and change no state after SIGCONT', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks: shipped, scenarios: ['outage'] });
    const sim = h.sims[0];
    if (!sim) throw new Error('no sim');
    const service = h.service;
    // A is held right after its post-approval guard of the first deletion (the second `server show`).
    const hold = sim.hold({
      id: 'post-approval-guard',
      step: 'sweep/delete-orphan',
      argv: 'server show',
      nth: 2,
      when: 'after',
    });
    const a = await spawnAgent({ siteFile: await siteFile(h), prefix: db.prefix });
    cleanups.push(() => a.stop());
    const run = await service.submit({ runbook: 'sweep', args: [], site: 'site-0', requestedBy: 'U_OPS' });
    const approver = new AbortController();
    cleanups.push(async () => approver.abort());
    const approving = approveEverything(service, run.runId, approver.signal);
    await hold.reached(60_000);
    a.child.kill('SIGSTOP');
    hold.release();

    // B takes the run over once A's job lock (1.5 s) lapses, and finishes it.
    await h.startAgent({ lockDurationMs: 1500, stalledIntervalMs: 500 });
    expect((await waitForEvent(service, run.runId, isType('run.finished'), 60_000)).status).toBe('succeeded');
    approver.abort();
    await approving;
    const runKeys = [
      `${db.prefix}:run:${run.runId}*`,
      `${db.prefix}:approval:*`,
      `${db.prefix}:lock:*`,
      `${db.prefix}:runs*`,
    ];
    const before = await dumpKeys(db.redis, ...runKeys);
    const journalBefore = await sim.journal();

    a.child.kill('SIGCONT');
    await eventually('agent A to notice it no longer owns the run', () =>
      /no longer owns the run/.test(a.logs()) ? true : undefined,
    );
    expect(await dumpKeys(db.redis, ...runKeys)).toEqual(before);
    expect(await sim.journal()).toEqual(journalBefore);
    const deletes = journalBefore.filter((j) => j.ok && j.action === 'server.delete').map((j) => j.target);
    expect(deletes.sort()).toEqual([
      '5e000000-0000-4000-8000-0000000000e1',
      '5e000000-0000-4000-8000-0000000000e2',
    ]);
    expect(await sim.violations()).toEqual([]);
  });
});

describe('a quorum across an agent SIGKILL', () => {
  it('should keep the first approval, wait for the second, and stop the VM once after a take-over', async () => {
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks: shipped,
      scenarios: ['healthy'],
      approvers: ['U0ALICE01', 'U0BOB0001'],
      siteFields: { approval_quorum: { park: 2 } },
    });
    const sim = h.sims[0];
    if (!sim) throw new Error('no sim');
    const service = h.service;
    // The agent process reads the quorum from its own site profile, as a deployed one does.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-quorum-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'site.yaml');
    await writeFile(file, stringify({ ...sim.site, name: 'site-0', approval_quorum: { park: 2 } }));
    const a = await spawnAgent({ siteFile: file, prefix: db.prefix, approvers: ['U0ALICE01', 'U0BOB0001'] });
    cleanups.push(() => a.stop());
    const run = await service.submit({ runbook: 'park', args: [], site: 'site-0', requestedBy: 'U_OPS' });
    const asked = await waitForEvent(service, run.runId, isType('approval.requested'), 60_000);
    const vote = (userId: string) =>
      service.decide(asked.approvalId, { userId, groupIds: [] }, true, 'slack').then((r) => r.outcome);
    expect(await vote('U0ALICE01')).toBe('voted');

    // A dies with one of two approvals in; B takes the run over.
    a.child.kill('SIGKILL');
    await a.exited;
    await h.startAgent({ lockDurationMs: 1500, stalledIntervalMs: 500 });
    // Alice again is still one approval; the step waits, nothing was sent.
    expect(await vote('U0ALICE01')).toBe('already_voted');
    expect((await sim.journal()).filter((j) => j.action === 'server.stop')).toEqual([]);
    expect(await vote('U0BOB0001')).toBe('decided');
    expect((await waitForEvent(service, run.runId, isType('run.finished'), 60_000)).status).toBe('succeeded');
    const stops = (await sim.journal()).filter((j) => j.ok && j.action === 'server.stop');
    expect(stops).toHaveLength(1);
    const decided = await service.getApproval(asked.approvalId);
    expect(decided?.decision).toMatchObject({ approved: true, approvers: ['U0ALICE01', 'U0BOB0001'] });
    expect(await sim.violations()).toEqual([]);
  });
});
