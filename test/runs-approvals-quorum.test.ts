import { describe, expect, it } from 'vitest';
import { approvalQuorum, parseSiteProfile } from '../src/config/site.js';
import type { ApprovalRequest } from '../src/engine/events.js';
import { CapiError } from '../src/errors.js';
import { loadRunbooks } from '../src/runbook/load.js';
import { RunStepSchema } from '../src/runbook/schema.js';
import { ApprovalStore, type DecideResult } from '../src/runs/approvals.js';
import { AttemptJournal } from '../src/runs/attempts.js';
import { RunFences } from '../src/runs/fence.js';
import { mayDecide } from '../src/runs/policy.js';
import { useTestRedis } from './support/redis.js';
import { sampleSiteData } from './support/site.js';

const db = useTestRedis();

const RUN = 'r1quorum';
const T0 = new Date('2025-03-04T10:00:00.000Z');
const later = (ms: number) => new Date(T0.getTime() + ms);
const REQUESTER = 'U0REQUEST1';

const request = (quorum?: number): ApprovalRequest => ({
  runId: RUN,
  runbook: 'park',
  step: { stepId: 'stop-mgmt', index: 2, total: 3 },
  title: 'Stop capi-mgmt-v2',
  summary: 'Stop the management VM',
  commands: ['openstack server stop capi-mgmt-v2'],
  targets: ['capi-mgmt-v2'],
  evidence: ['status=ACTIVE'],
  requestedBy: REQUESTER,
  ...(quorum !== undefined ? { quorum } : {}),
  digest: 'd1gest',
});

/** Opened at T0 when `at` says so (decisions then pass their own times), else on the Redis clock. */
async function opened(quorum?: number, at?: Date) {
  const store = new ApprovalStore(db.redis, db.prefix);
  const { approval } = await store.open(request(quorum), { timeoutMs: 60_000, ...(at ? { now: at } : {}) });
  return { store, id: approval.approvalId };
}

const outcomes = (results: readonly DecideResult[]) => results.map((r) => r.outcome).sort();

describe('an approval that needs several approvers', () => {
  it('should count distinct approvers and be approved by the last one needed, naming them all', async () => {
    const { store, id } = await opened(2, T0);
    const first = await store.decide(
      id,
      { approved: true, by: 'U0ALICE01', note: 'checked', via: 'slack' },
      later(1),
    );
    expect(first.outcome).toBe('voted');
    expect(first.outcome !== 'not_found' && first.approval.decision).toBeUndefined();
    expect((await store.decide(id, { approved: true, by: 'U0ALICE01' }, later(2))).outcome).toBe(
      'already_voted',
    );
    const second = await store.decide(id, { approved: true, by: 'U0BOB0001', via: 'terminal' }, later(3));
    expect(second.outcome).toBe('decided');
    const stored = await store.get(id);
    expect(stored?.decision).toEqual({
      approved: true,
      by: 'U0BOB0001',
      at: later(3).toISOString(),
      approvers: ['U0ALICE01', 'U0BOB0001'],
    });
    expect(stored?.votes).toEqual([
      { by: 'U0ALICE01', at: later(1).toISOString(), note: 'checked', via: 'slack' },
      { by: 'U0BOB0001', at: later(3).toISOString(), via: 'terminal' },
    ]);
    expect((await store.decide(id, { approved: true, by: 'U0CAROL01' }, later(4))).outcome).toBe(
      'already_decided',
    );
  });

  it('should let exactly one of many simultaneous approvals complete it', async () => {
    const { store, id } = await opened(3);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        store.decide(id, { approved: true, by: `U0RACE${String(i).padStart(4, '0')}` }),
      ),
    );
    expect(outcomes(results)).toEqual([...Array(9).fill('already_decided'), 'decided', 'voted', 'voted']);
    expect((await store.get(id))?.votes).toHaveLength(3);
  });

  it('should end at the first denial, whatever approvals came before', async () => {
    const { store, id } = await opened(2, T0);
    await store.decide(id, { approved: true, by: 'U0ALICE01' }, later(1));
    expect(
      (await store.decide(id, { approved: false, by: 'U0BOB0001', note: 'not now' }, later(2))).outcome,
    ).toBe('decided');
    expect((await store.get(id))?.decision).toMatchObject({
      approved: false,
      by: 'U0BOB0001',
      note: 'not now',
    });
    expect((await store.decide(id, { approved: true, by: 'U0CAROL01' }, later(3))).outcome).toBe(
      'already_decided',
    );
  });

  it('should expire when the approvers needed did not all approve in time', async () => {
    const { store, id } = await opened(2, T0);
    await store.decide(id, { approved: true, by: 'U0ALICE01' }, later(1));
    const late = await store.decide(id, { approved: true, by: 'U0BOB0001' }, later(60_000));
    expect(late.outcome).toBe('expired');
    expect((await store.get(id))?.decision).toMatchObject({ approved: false, reason: 'expired' });
  });

  it('should authorize no attempt until the last approval arrives', async () => {
    const { store, id } = await opened(2);
    const fence = await new RunFences(db.redis, db.prefix).take(RUN);
    const journal = new AttemptJournal(db.redis, db.prefix);
    const attempt = {
      runId: RUN,
      stepId: 'stop-mgmt',
      slot: 'stop-mgmt',
      approvalId: id,
      digest: 'd1gest',
      command: 'openstack server stop capi-mgmt-v2',
    };
    await store.decide(id, { approved: true, by: 'U0ALICE01' });
    expect(await journal.begin(attempt, { fence, maxDecisionAgeMs: 60_000 })).toMatchObject({
      outcome: 'refused',
    });
    await store.decide(id, { approved: true, by: 'U0BOB0001' });
    expect((await journal.begin(attempt, { fence, maxDecisionAgeMs: 60_000 })).outcome).toBe('recorded');
  });

  it('should keep one approver enough when no quorum is asked', async () => {
    const { store, id } = await opened();
    expect((await store.decide(id, { approved: true, by: 'U0ALICE01' })).outcome).toBe('decided');
    expect((await store.get(id))?.votes).toBeUndefined();
  });
});

describe('who counts towards a quorum', () => {
  const policy = { approvers: ['S0APPROVE1', REQUESTER], allowSelfApproval: true, trustSlackGroups: true };
  it('should never count the requester, even where self-approval is allowed', () => {
    const requester = { userId: REQUESTER, groupIds: [] };
    expect(mayDecide(requester, request(), policy)).toEqual({ allowed: true });
    expect(mayDecide(requester, request(2), policy)).toEqual({
      allowed: false,
      refusal: { kind: 'own_run_quorum', quorum: 2 },
    });
  });
});

describe('where a quorum comes from', () => {
  it('should default to 1 in a runbook and refuse 0 or more than 5', () => {
    const step = (quorum?: number) => ({
      id: 'stop',
      title: 'Stop',
      run: 'openstack server stop x',
      destructive: true,
      guard: [{ run: 'true', skip_when: 'false', say: 'x' }],
      approval: { summary: 's', targets: ['x'], ...(quorum !== undefined ? { quorum } : {}) },
      verify: { run: 'true', took_effect: 'true', say: 'x', check_by_hand: 'x' },
    });
    expect(RunStepSchema.parse(step())).toMatchObject({ approval: { quorum: 1 } });
    expect(RunStepSchema.parse(step(2))).toMatchObject({ approval: { quorum: 2 } });
    expect(RunStepSchema.safeParse(step(0)).success).toBe(false);
    expect(RunStepSchema.safeParse(step(6)).success).toBe(false);
  });

  it('should keep every shipped runbook at one approver', async () => {
    const set = await loadRunbooks(new URL('../commands/', import.meta.url).pathname);
    const quorums = [...set.runbooks.values()].flatMap(
      (rb) => JSON.stringify(rb, (k, v) => (k === 'quorum' ? `Q${v}` : v)).match(/"Q\d+"/g) ?? [],
    );
    expect(quorums.length).toBeGreaterThan(0);
    expect(new Set(quorums)).toEqual(new Set(['"Q1"']));
  });

  it('should let a site raise it per runbook or per step and never lower it', () => {
    const site = parseSiteProfile(
      sampleSiteData({ approval_quorum: { park: 2, 'failover/failover-lb': 3, sweep: 1 } }),
      'test',
    );
    expect(approvalQuorum(site, 'park', 'stop-mgmt', 1)).toBe(2);
    expect(approvalQuorum(site, 'failover', 'failover-lb', 1)).toBe(3);
    expect(approvalQuorum(site, 'failover', 'headroom', 1)).toBe(1);
    expect(approvalQuorum(site, 'sweep', 'delete-orphan', 2)).toBe(2);
    expect(approvalQuorum(site, 'recover', 'x', 1)).toBe(1);
  });

  it('should refuse a site quorum that is not a whole number 1-5 or keyed by something else', () => {
    for (const approval_quorum of [{ park: 0 }, { park: 9 }, { 'Park!': 2 }]) {
      expect(() => parseSiteProfile(sampleSiteData({ approval_quorum }), 'test')).toThrow(CapiError);
    }
    expect(() => parseSiteProfile(sampleSiteData({ approval_quorum: { park: 0 } }), 'test')).toThrow(
      /approval_quorum\.park: must be at least 1/,
    );
  });
});
