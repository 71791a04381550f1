import { afterEach, describe, expect, it } from 'vitest';
import type { ApprovalRequest } from '../src/engine/events.js';
import { loadRunbooks } from '../src/runbook/load.js';
import { ApprovalStore } from '../src/runs/approvals.js';
import { events, type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';

/** An approval's expiry runs from when people could first see it, and every decision rule still holds. */

const db = useTestRedis();
const T0 = new Date('2026-03-04T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const TIMEOUT = 60_000;

const request: ApprovalRequest = {
  runId: 'r1shown',
  runbook: 'park',
  step: { stepId: 'stop-vm', index: 1, total: 1 },
  title: 'Stop the mgmt VM',
  summary: 'Stop capi-mgmt-v2',
  commands: ['openstack server stop capi-mgmt-v2'],
  targets: ['capi-mgmt-v2'],
  evidence: [],
  requestedBy: 'U0REQUEST1',
  digest: 'digest-1',
};

async function opened(store: ApprovalStore) {
  return (await store.open(request, { timeoutMs: TIMEOUT, now: T0 })).approval;
}

describe('ApprovalStore.markShown', () => {
  it('should run the expiry from when the request was shown, not from when it was asked', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const a = await opened(store);
    expect(a.expiresAt).toBe(at(TIMEOUT).toISOString());
    // Posted 45 s late (the thread was behind): the approvers still get the whole minute.
    const shown = await store.markShown(a.approvalId, at(45_000));
    expect(shown).toMatchObject({ shownAt: at(45_000).toISOString(), expiresAt: at(105_000).toISOString() });
    // Not expired at the old expiry: a click there is a decision.
    expect((await store.expireIfDue(a.approvalId, at(TIMEOUT + 1))).outcome).toBe('pending');
    const decided = await store.decide(a.approvalId, { approved: true, by: 'U0APPROVER' }, at(100_000));
    expect(decided.outcome).toBe('decided');
  });

  it('should still expire at the moved expiry, and never shorten or move a final request', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const a = await opened(store);
    await store.markShown(a.approvalId, at(10_000));
    // Shown again (a repost after a restart) later: the expiry moves on, never back.
    expect((await store.markShown(a.approvalId, at(20_000)))?.expiresAt).toBe(at(80_000).toISOString());
    expect((await store.markShown(a.approvalId, at(15_000)))?.expiresAt).toBe(at(80_000).toISOString());
    // First shown time is kept.
    expect((await store.get(a.approvalId))?.shownAt).toBe(at(10_000).toISOString());
    const late = await store.decide(a.approvalId, { approved: true, by: 'U0APPROVER' }, at(80_000));
    expect(late.outcome).toBe('expired');
    expect(late.outcome !== 'not_found' && late.approval.decision).toMatchObject({
      approved: false,
      reason: 'expired',
      at: at(80_000).toISOString(),
    });
    // Expired (a denial) stays expired: showing it again cannot reopen it.
    expect((await store.markShown(a.approvalId, at(90_000)))?.expiresAt).toBe(at(80_000).toISOString());
    expect((await store.decide(a.approvalId, { approved: true, by: 'U0X' }, at(91_000))).outcome).toBe(
      'expired',
    );
  });

  it('should not reopen a request shown before once its expiry passed, nor touch a decided one', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const a = await opened(store);
    await store.markShown(a.approvalId, at(1000));
    // Past the expiry, nobody recorded it yet: a second showing does not give it new time.
    expect((await store.markShown(a.approvalId, at(70_000)))?.expiresAt).toBe(at(61_000).toISOString());
    expect((await store.expireIfDue(a.approvalId, at(70_000))).outcome).toBe('expired');

    const b = (await store.open({ ...request, runId: 'r2shown' }, { timeoutMs: TIMEOUT, now: T0 })).approval;
    await store.decide(b.approvalId, { approved: true, by: 'U0APPROVER' }, at(5000));
    const after = await store.markShown(b.approvalId, at(6000));
    expect(after?.expiresAt).toBe(at(TIMEOUT).toISOString());
    expect(after?.shownAt).toBeUndefined();
    expect(await store.markShown('approval~nope~x', at(6000))).toBeNull();
  });

  it('should give a request never shown its full time even when it is shown after the expiry set at asking', async () => {
    const store = new ApprovalStore(db.redis, db.prefix);
    const a = await opened(store);
    // Nobody could have decided it: it was never on screen. Shown now, it gets the whole timeout from now.
    expect((await store.markShown(a.approvalId, at(75_000)))?.expiresAt).toBe(at(135_000).toISOString());
    expect((await store.expireIfDue(a.approvalId, at(100_000))).outcome).toBe('pending');
  });
});

describe('a parked run whose approval was shown late', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('should wait again until the moved expiry, resume nothing early, and run once approved', async () => {
    // Long enough that an approval decided in the window below is not stale (older than the timeout) by the
    // time a loaded machine resumes the run.
    const timeoutMs = 4000;
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks: await loadRunbooks(new URL('../commands/', import.meta.url).pathname),
      scenarios: ['healthy'],
      approvalTimeoutMs: timeoutMs,
    });
    await h.startAgent();
    const run = await h.submit('park');
    const asked = await waitForEvent(h.service, run.runId, isType('approval.requested'));
    const before = await h.service.getApproval(asked.approvalId);
    if (!before) throw new Error('approval not stored');
    const requestedAt = Date.parse(before.requestedAt);
    // The thread shows it late: the approvers get the whole 4 s from then.
    await eventually('the run parked at its approval', async () =>
      (await h?.service.getRun(run.runId))?.status === 'waiting_approval' ? true : undefined,
    );
    // As the poster would 3 s after the request (the store takes the moment; nobody sleeps here).
    const store = new ApprovalStore(db.redis, db.prefix);
    const shown = await store.markShown(asked.approvalId, new Date(requestedAt + 3000));
    const expiresAt = Date.parse(shown?.expiresAt ?? '');
    expect(expiresAt - Date.parse(shown?.shownAt ?? '')).toBe(timeoutMs);
    // The job was parked until the old expiry; when that passes it parks again until the new one.
    const delayed = `${db.prefix}:jobs:delayed`;
    const parkedUntil = () =>
      db.redis
        .zscore(delayed, run.runId)
        .then((score) => (score === null ? undefined : Math.floor(Number(score) / 0x1000)));
    await eventually('the job parked until the moved expiry', parkedUntil, {
      // BullMQ turns the time into a delay and back: a few ms either way.
      until: (at) => Math.abs(at - expiresAt) < 50 && at > requestedAt + timeoutMs,
      timeoutMs: 10_000,
    });
    expect(Date.now()).toBeGreaterThan(requestedAt + timeoutMs);
    // Nothing resumed, nothing expired at the old expiry: a click now is a decision.
    const decided = await h.service.decide(
      asked.approvalId,
      { userId: 'U0APPROVER', groupIds: [] },
      true,
      'test',
    );
    expect(decided.outcome).toBe('decided');
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'));
    expect(finished.status).toBe('succeeded');
    const all = events(await h.service.readTimeline(run.runId));
    const types = all.map((e) => e.type);
    expect(types.filter((t) => t === 'run.resumed')).toHaveLength(1);
    expect(types.indexOf('run.resumed')).toBeGreaterThan(types.indexOf('approval.requested'));
    expect(
      all
        .filter((e) => e.type === 'approval.decided')
        .map((e) => e.type === 'approval.decided' && e.decision.approved),
    ).toEqual([true]);
    expect((await h.sims[0]?.journal())?.filter((j) => j.action === 'server.stop')).toHaveLength(1);
  });
});
