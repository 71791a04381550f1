import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { RunService } from '../src/service/run-service.js';
import { type Harness, isType, quietLogger, startHarness, waitForEvent } from './support/agent.js';
import { testDecisionKeys } from './support/decision-keys.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  await h?.stop();
  h = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Another `serve` replica's side of the runs: its own Redis connection, the same prefix and config. */
async function replica(hh: Harness): Promise<RunService> {
  const redis = new Redis(REDIS_URL);
  const service = new RunService({
    redis,
    prefix: db.prefix,
    runbooks,
    sites: hh.sites,
    approvalTimeoutMs: 60_000,
    approvers: ['U0APPROVER'],
    allowSelfApproval: false,
    // Every replica signs with serve's one key.
    decisionSigner: testDecisionKeys().signer,
    logger: quietLogger,
  });
  cleanups.push(async () => {
    await service.close();
    await redis.quit();
  });
  return service;
}

describe('several serve replicas and agents on one Redis', () => {
  it('should run a run started on one replica and approved on another, on whichever agent takes it', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent();
    await h.startAgent();
    const other = await replica(h);

    const run = await h.service.submit({
      runbook: 'park',
      args: [],
      site: 'site-0',
      requestedBy: 'U_REQUESTER',
    });
    const asked = await waitForEvent(other, run.runId, isType('approval.requested'));
    // Both replicas click at once: one decision wins, the other is told who decided.
    const results = await Promise.all([
      other.decide(asked.approvalId, { userId: 'U0APPROVER', groupIds: [] }, true, 'slack'),
      h.service.decide(asked.approvalId, { userId: 'U0APPROVER', groupIds: [] }, true, 'slack'),
    ]);
    expect(results.map((r) => r.outcome).sort()).toEqual(['already_decided', 'decided']);
    expect((await waitForEvent(h.service, run.runId, isType('run.finished'))).status).toBe('succeeded');
    expect((await h.sims[0]?.journal())?.filter((j) => j.ok && j.action === 'server.stop')).toHaveLength(1);
    expect((await other.getRun(run.runId))?.status).toBe('succeeded');
  });

  it('should accept exactly one of two runs asked for the same site on two replicas at once', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    const other = await replica(h);
    const asks = await Promise.allSettled(
      [h.service, other].map((s) =>
        s.submit({ runbook: 'park', args: [], site: 'site-0', requestedBy: 'U_REQUESTER' }),
      ),
    );
    expect(asks.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    const refused = asks.find((a) => a.status === 'rejected');
    expect(String(refused?.status === 'rejected' && refused.reason)).toMatch(/already has a run in progress/);
  });
});
