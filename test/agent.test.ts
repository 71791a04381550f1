import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CapiError, ErrorCode } from '../src/errors.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { targetKey } from '../src/runs/lock.js';
import { decideNext, type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

async function harness(
  scenarios: string[],
  more: { approvalTimeoutMs?: number; approvers?: readonly string[] } = {},
): Promise<Harness> {
  h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios, ...more });
  return h;
}

const stops = async (hh: Harness, i = 0) =>
  (await hh.sims[i]?.journal())?.filter((j) => j.ok && j.action === 'server.stop').length;

describe('the agent', () => {
  it('should run a submitted runbook to the end and keep its whole timeline in Redis', async () => {
    const hh = await harness(['healthy']);
    await hh.startAgent();
    const run = await hh.submit('park');
    expect(run.status).toBe('queued');
    // Decided once the job is parked: a decision that lands first is taken without a park, and no resume.
    await eventually('the run parked on its approval', async () =>
      (await hh.service.getRun(run.runId))?.status === 'waiting_approval' ? true : undefined,
    );
    const { result } = await decideNext(hh.service, run.runId, true);
    expect(result.outcome).toBe('decided');
    const finished = await waitForEvent(hh.service, run.runId, isType('run.finished'));
    expect(finished.status).toBe('succeeded');
    expect(await stops(hh)).toBe(1);

    const record = await hh.service.getRun(run.runId);
    expect(record).toMatchObject({ status: 'succeeded', currentStep: 'wait-shutoff' });
    const types = (await hh.service.readTimeline(run.runId)).map((e) => e.event.type);
    expect(types[0]).toBe('run.started');
    expect(types.filter((t) => t === 'approval.requested')).toHaveLength(1);
    expect(types).toContain('run.resumed');
    expect(types.at(-1)).toBe('run.finished');
    // The lock went with the run.
    expect(await db.redis.get(`${db.prefix}:lock:${targetKey('site-0')}`)).toBeNull();
  });

  it('should keep serving other runs while one waits for an approval when it runs one job at a time', async () => {
    const hh = await harness(['healthy', 'healthy']);
    await hh.startAgent({ concurrency: 1 });
    const waiting = await hh.submit('park');
    await waitForEvent(hh.service, waiting.runId, isType('approval.requested'));
    // A three-step read-only runbook stands for any of them (diagnose's two dozen steps only make the wait longer).
    const other = await hh.submit('appcred-check', { site: 'site-1' });
    const otherDone = await waitForEvent(hh.service, other.runId, isType('run.finished'));
    expect(otherDone.status).toBe('succeeded');
    expect((await hh.service.getRun(waiting.runId))?.status).toBe('waiting_approval');

    await decideNext(hh.service, waiting.runId, true);
    expect((await waitForEvent(hh.service, waiting.runId, isType('run.finished'))).status).toBe('succeeded');
  });

  it('should deny and run nothing destructive when nobody decides before the approval expires', async () => {
    const hh = await harness(['healthy'], { approvalTimeoutMs: 1500 });
    await hh.startAgent();
    const run = await hh.submit('park');
    const finished = await waitForEvent(hh.service, run.runId, isType('run.finished'));
    expect(finished.status).toBe('denied');
    expect(finished.message).toMatch(
      /the approval expired \(counts as a denial\); nothing destructive was run/,
    );
    expect(await stops(hh)).toBe(0);
  });

  it('should tell a second decision who decided first', async () => {
    const hh = await harness(['healthy'], { approvers: ['U0APPROVER', 'U_SECOND'] });
    await hh.startAgent();
    const run = await hh.submit('park');
    // U0APPROVER denies; U_SECOND, also an approver, approves a moment later and is told who was first.
    const first = await decideNext(hh.service, run.runId, false, 'U0APPROVER');
    expect(first.result.outcome).toBe('decided');
    const second = await hh.service.decide(
      first.approvalId,
      { userId: 'U_SECOND', groupIds: [] },
      true,
      'test',
    );
    expect(second.outcome).toBe('already_decided');
    if (second.outcome !== 'already_decided') throw new Error('unreachable');
    expect(second.approval.decision).toMatchObject({ approved: false, by: 'U0APPROVER', reason: 'denied' });
    expect((await hh.service.getApproval(first.approvalId))?.decision).toMatchObject({ by: 'U0APPROVER' });
    expect((await waitForEvent(hh.service, run.runId, isType('run.finished'))).status).toBe('denied');
    expect(await stops(hh)).toBe(0);
  });

  it('should refuse a decision from the requester or from someone not in CAPI_APPROVERS', async () => {
    const hh = await harness(['healthy']);
    await hh.startAgent();
    const run = await hh.submit('park', { requestedBy: 'U0APPROVER' });
    const self = await decideNext(hh.service, run.runId, true, 'U0APPROVER');
    expect(self.result).toEqual({ outcome: 'refused', refusal: { kind: 'own_run' } });
    const stranger = await hh.service.decide(
      self.approvalId,
      { userId: 'U_STRANGER', groupIds: [] },
      true,
      'test',
    );
    expect(stranger).toEqual({
      outcome: 'refused',
      refusal: { kind: 'not_an_approver', approvers: ['U0APPROVER'] },
    });
    expect((await hh.service.getApproval(self.approvalId))?.decision).toBeUndefined();
    await hh.service.cancel(run.runId, 'U0APPROVER');
  });

  it('should refuse a second run on the same site with a pointer to the running one', async () => {
    const hh = await harness(['healthy']);
    await hh.startAgent();
    const first = await hh.submit('park');
    const refused = await hh.submit('sweep', { requestedBy: 'U_OTHER' }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(CapiError);
    expect((refused as CapiError).code).toBe(ErrorCode.TargetBusy);
    expect((refused as CapiError).message).toContain(`run id: ${first.runId}`);
    // A refused request leaves nothing behind.
    expect((await hh.service.listRuns({})).map((r) => r.runId)).toEqual([first.runId]);
  });

  it.each([
    ['is denied', 'deny'],
    ['is cancelled', 'cancel'],
    ['fails', 'fail'],
  ])('should free the site for the next run when the first run %s', async (_why, how) => {
    const hh = await harness(['healthy']);
    await hh.startAgent();
    const first =
      how === 'fail'
        ? await hh.service.submit({
            runbook: 'failover',
            args: ['1b000000-0000-4000-8000-00000000ffff'],
            site: 'site-0',
            requestedBy: 'U_REQUESTER',
          })
        : await hh.submit('park');
    if (how === 'deny') await decideNext(hh.service, first.runId, false);
    if (how === 'cancel') {
      await waitForEvent(hh.service, first.runId, isType('approval.requested'));
      await hh.service.cancel(first.runId, 'U_CANCELLER');
    }
    const finished = await waitForEvent(hh.service, first.runId, isType('run.finished'));
    expect(finished.status).toBe({ deny: 'denied', cancel: 'cancelled', fail: 'failed' }[how]);
    if (how === 'cancel') expect(finished.message).toContain('U_CANCELLER');
    // The next run that can change the cloud (park takes the site's exclusive lock) starts and gets as far
    // as its approval: the first run's lock is gone.
    const next = await hh.submit('park');
    await waitForEvent(hh.service, next.runId, isType('approval.requested'));
    await hh.service.cancel(next.runId, 'U_CANCELLER');
    expect((await waitForEvent(hh.service, next.runId, isType('run.finished'))).status).toBe('cancelled');
  });
});
