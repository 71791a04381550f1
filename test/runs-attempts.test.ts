import { describe, expect, it } from 'vitest';
import { CheckpointStore } from '../src/agent/checkpoints.js';
import type { ApprovalRequest } from '../src/engine/events.js';
import { itemKey, stepSlot } from '../src/engine/slot.js';
import { RunFencedError } from '../src/errors.js';
import { ApprovalStore } from '../src/runs/approvals.js';
import { AttemptJournal } from '../src/runs/attempts.js';
import { RunFences } from '../src/runs/fence.js';
import { TargetLock } from '../src/runs/lock.js';
import { RunRegistry } from '../src/runs/registry.js';
import { RunTimeline } from '../src/runs/timeline.js';
import { dumpKeys } from './support/agent.js';
import { useTestRedis } from './support/redis.js';

const db = useTestRedis();
const RUN = 'r1attempts';
const MINUTE = 60_000;

/** Item n of the loop: its identity key is the digest of the server id it binds. */
const step = (n: number) => ({
  stepId: 'sweep/delete-orphan',
  index: 3,
  total: 3,
  iteration: { n, of: 2, label: `s-${n}`, key: itemKey({}, { SERVER_ID: `s-${n}` }) },
});
const slotOf = (n: number) => stepSlot(step(n));

const request = (digest = 'digest-A', n = 1): ApprovalRequest => ({
  runId: RUN,
  runbook: 'sweep',
  step: step(n),
  title: 'Delete orphaned amphora server',
  summary: 'Delete server A',
  commands: ['openstack server delete A'],
  targets: ['nova server A'],
  evidence: [],
  requestedBy: 'U_REQUESTER',
  digest,
});

async function approved(digest = 'digest-A', n = 1, decidedAt?: Date) {
  const store = new ApprovalStore(db.redis, db.prefix);
  const { approval } = await store.open(request(digest, n), { timeoutMs: 30 * MINUTE });
  await store.decide(approval.approvalId, { approved: true, by: 'U0APPROVER' }, decidedAt);
  return approval.approvalId;
}

const attempt = (approvalId: string, digest = 'digest-A', n = 1) => ({
  runId: RUN,
  stepId: 'sweep/delete-orphan',
  slot: slotOf(n),
  iteration: n,
  approvalId,
  digest,
  command: 'openstack server delete A',
});

describe('the attempt journal', () => {
  it('should record an attempt once and answer every later begin with the attempt on record', async () => {
    const journal = new AttemptJournal(db.redis, db.prefix);
    const fence = await new RunFences(db.redis, db.prefix).take(RUN);
    const id = await approved();
    const first = await journal.begin(attempt(id), { fence, maxDecisionAgeMs: 30 * MINUTE });
    expect(first.outcome).toBe('recorded');
    // The same step again (a resumed run, a second agent): never a second send.
    const again = await journal.begin(attempt(id), { fence, maxDecisionAgeMs: 30 * MINUTE });
    expect(again).toMatchObject({ outcome: 'exists' });
    if (first.outcome !== 'recorded' || again.outcome !== 'exists') throw new Error('unexpected');
    expect(again.attempt.attemptId).toBe(first.attempt.attemptId);
    expect(again.attempt.outcome).toBeUndefined();
    // The approval was consumed by that attempt.
    expect((await new ApprovalStore(db.redis, db.prefix).get(id))?.consumedBy).toBe(first.attempt.attemptId);

    await journal.finish(fence, slotOf(1), {
      exitCode: 0,
      signal: null,
      timedOut: false,
      finishedAt: new Date().toISOString(),
    });
    expect((await journal.get(RUN, slotOf(1)))?.outcome).toMatchObject({ exitCode: 0 });
  });

  it.each([
    ['an undecided approval', 'not_approved'],
    ['an approval for another action', 'mismatch'],
    ['an approval consumed by another attempt', 'consumed'],
    ['an approval given longer ago than the timeout', 'stale'],
  ])('should refuse %s and record nothing', async (_what, why) => {
    const journal = new AttemptJournal(db.redis, db.prefix);
    const approvals = new ApprovalStore(db.redis, db.prefix);
    const fence = await new RunFences(db.redis, db.prefix).take(RUN);
    let id: string;
    let digest = 'digest-A';
    if (why === 'not_approved') {
      id = (await approvals.open(request(), { timeoutMs: MINUTE })).approval.approvalId;
    } else if (why === 'stale') {
      id = await approved('digest-A', 1, new Date(Date.now() - 31 * MINUTE));
    } else {
      id = await approved();
    }
    if (why === 'mismatch') digest = 'digest-B';
    if (why === 'consumed') {
      // The same approval used for iteration 2 is refused once iteration 1 consumed it.
      await journal.begin(attempt(id), { fence, maxDecisionAgeMs: 30 * MINUTE });
      const second = await journal.begin(attempt(id, digest, 2), { fence, maxDecisionAgeMs: 30 * MINUTE });
      expect(second).toEqual({ outcome: 'refused', why: 'consumed' });
      expect(await journal.get(RUN, slotOf(2))).toBeUndefined();
      return;
    }
    const r = await journal.begin(attempt(id, digest), { fence, maxDecisionAgeMs: 30 * MINUTE });
    expect(r).toEqual({ outcome: 'refused', why });
    expect(await journal.list(RUN)).toEqual([]);
    if (why === 'stale') expect((await approvals.get(id))?.superseded?.why).toBe('stale');
  });

  it('should refuse an agent whose fence is stale before recording or consuming anything', async () => {
    const journal = new AttemptJournal(db.redis, db.prefix);
    const fences = new RunFences(db.redis, db.prefix);
    const stale = await fences.take(RUN);
    await fences.take(RUN);
    const id = await approved();
    await expect(
      journal.begin(attempt(id), { fence: stale, maxDecisionAgeMs: MINUTE }),
    ).rejects.toBeInstanceOf(RunFencedError);
    expect(await journal.list(RUN)).toEqual([]);
    expect((await new ApprovalStore(db.redis, db.prefix).get(id))?.consumedBy).toBeUndefined();
  });
});

describe('fencing every state write of a run', () => {
  it('should refuse every write of a stale owner and leave the new owner state untouched', async () => {
    const fences = new RunFences(db.redis, db.prefix);
    const registry = new RunRegistry(db.redis, db.prefix);
    const timeline = new RunTimeline(db.redis, db.prefix);
    const checkpoints = new CheckpointStore(db.redis, db.prefix);
    const lock = new TargetLock(db.redis, db.prefix);
    await registry.create({
      runId: RUN,
      runbook: 'sweep',
      params: {},
      site: 'lab1',
      requestedBy: 'U_REQUESTER',
      queue: 'jobs',
    });
    const old = await fences.take(RUN);
    const owner = await fences.take(RUN);
    await lock.acquire('site:lab1', RUN, MINUTE, owner);
    await checkpoints.save(RUN, { top: 2, captured: {} }, owner);
    const before = await dumpKeys(db.redis, `${db.prefix}*`);

    const attempts: [string, Promise<unknown>][] = [
      ['record', registry.update(RUN, { status: 'succeeded' }, old)],
      ['timeline', timeline.append(RUN, { type: 'run.resumed', reason: 'x', atStep: 'y' }, undefined, old)],
      ['checkpoint', checkpoints.save(RUN, { top: 0, captured: {} }, old)],
      ['checkpoint delete', checkpoints.delete(RUN, old)],
      ['lock refresh', lock.refresh('site:lab1', RUN, MINUTE, old)],
      ['lock release', lock.release('site:lab1', RUN, old)],
    ];
    for (const [what, p] of attempts) {
      await expect(p, what).rejects.toBeInstanceOf(RunFencedError);
    }
    expect(await dumpKeys(db.redis, `${db.prefix}*`)).toEqual(before);
    expect(await lock.holder('site:lab1')).toBe(RUN);
    expect(await checkpoints.load(RUN)).toEqual({ top: 2, captured: {} });
  });
});
