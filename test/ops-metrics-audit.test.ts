import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAuditLog } from '../src/ops/audit.js';
import { Metrics } from '../src/ops/metrics.js';
import { redisSnapshotSource } from '../src/ops/redis-snapshot.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { ApprovalStore } from '../src/runs/approvals.js';
import { RunRegistry } from '../src/runs/registry.js';
import { type Harness, isType, quietLogger, startHarness, waitForEvent } from './support/agent.js';
import { auditSink } from './support/audit-sink.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';

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

/** The value of one series, or undefined when the registry has no such series. */
/**
 * The agent counts an event right after storing it, so a follower of the timeline may see it a moment
 * earlier: wait for the count.
 */
async function counted(m: Metrics, name: string, labels: Record<string, string>): Promise<void> {
  await eventually(`${name} ${JSON.stringify(labels)} to be counted`, async () =>
    (await series(m, name, labels)) === undefined ? undefined : true,
  );
}

async function series(
  m: Metrics,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const base = name.replace(/_(count|sum|bucket)$/, '');
  const metric = m.registry.getSingleMetric(base);
  if (!metric) throw new Error(`no metric ${base}`);
  const { values } = await metric.get();
  const hit = values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? base) === name &&
      Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return hit?.value;
}

describe('metrics and the audit trail of a run', () => {
  it('should count the run, its steps, approvals and destructive commands, and audit who did what', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-audit-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'audit', 'audit.jsonl');
    const sink = auditSink();
    const audit = createAuditLog({ destination: sink.stream, file });
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks,
      scenarios: ['healthy'],
      service: { audit, metrics },
    });
    const snapshot = redisSnapshotSource({
      redis: db.redis,
      prefix: db.prefix,
      queueNames: ['jobs', 'jobs-readonly'],
      registry: new RunRegistry(db.redis, db.prefix),
      approvals: new ApprovalStore(db.redis, db.prefix),
    });
    cleanups.push(() => snapshot.close());
    metrics.readFromRedis(snapshot.read);
    const agent = await h.startAgent({ metrics, audit });

    const run = await h.service.submit({
      runbook: 'park',
      args: [],
      site: 'site-0',
      requestedBy: 'U_REQUESTER',
    });
    const asked = await waitForEvent(h.service, run.runId, isType('approval.requested'));
    // The record says waiting_approval a moment before BullMQ moves the job to the delayed set.
    await eventually('the run parked at its approval, its job delayed', async () =>
      (await series(metrics, 'capi_runs_active', { status: 'waiting_approval' })) === 1 &&
      (await series(metrics, 'capi_queue_jobs', { queue: 'jobs', state: 'delayed' })) === 1
        ? true
        : undefined,
    );
    expect(await series(metrics, 'capi_approval_oldest_wait_seconds')).toBeGreaterThan(0);
    expect(await series(metrics, 'capi_queue_workers', { queue: 'jobs' })).toBe(1);

    const refused = await h.service.decide(
      asked.approvalId,
      { userId: 'U_NOBODY', groupIds: [] },
      true,
      'slack',
    );
    expect(refused.outcome).toBe('refused');
    await h.service.decide(asked.approvalId, { userId: 'U0APPROVER', groupIds: [] }, true, 'slack');
    expect((await waitForEvent(h.service, run.runId, isType('run.finished'))).status).toBe('succeeded');
    await counted(metrics, 'capi_runs_finished_total', { runbook: 'park', status: 'succeeded' });

    const stops = (await h.sims[0]?.journal())?.filter((j) => j.ok && j.action === 'server.stop') ?? [];
    expect(stops).toHaveLength(1);
    expect(await series(metrics, 'capi_runs_started_total', { runbook: 'park' })).toBe(1);
    expect(await series(metrics, 'capi_runs_finished_total', { runbook: 'park', status: 'succeeded' })).toBe(
      1,
    );
    expect(
      await series(metrics, 'capi_destructive_commands_total', { runbook: 'park', step: 'stop-mgmt-vm' }),
    ).toBe(stops.length);
    expect(await series(metrics, 'capi_approvals_total', { runbook: 'park', outcome: 'approved' })).toBe(1);
    expect(await series(metrics, 'capi_approvals_total', { runbook: 'park', outcome: 'refused' })).toBe(1);
    expect(
      await series(metrics, 'capi_approval_wait_seconds_count', { runbook: 'park', outcome: 'approved' }),
    ).toBe(1);
    expect(
      await series(metrics, 'capi_step_duration_seconds_count', {
        runbook: 'park',
        step: 'mgmt-vm-state',
        status: 'ok',
      }),
    ).toBe(1);
    expect(await series(metrics, 'capi_ssh_connects_total', { result: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(await series(metrics, 'capi_agent_workers_running', { queue: 'jobs' })).toBe(1);
    // The text a Prometheus scrape reads.
    expect(await metrics.text()).toMatch(
      /^capi_runs_finished_total\{runbook="park",status="succeeded"\} 1$/m,
    );

    // Cancel and a refused request (the site is busy) are audited too. The second run is cancelled while
    // queued, with no agent to race the cancel: against a VM already SHUTOFF it would otherwise finish first.
    await agent.close();
    const second = await h.service.submit({
      runbook: 'park',
      args: [],
      site: 'site-0',
      requestedBy: 'U_REQUESTER',
    });
    await expect(
      h.service.submit({ runbook: 'park', args: [], site: 'site-0', requestedBy: 'U_OTHER' }),
    ).rejects.toThrow(/already has a run in progress/);
    await h.service.cancel(second.runId, 'U_CANCELLER');
    await h.startAgent({ metrics, audit });
    expect((await waitForEvent(h.service, second.runId, isType('run.finished'))).status).toBe('cancelled');
    await counted(metrics, 'capi_runs_finished_total', { runbook: 'park', status: 'cancelled' });

    const stored = await h.service.getApproval(asked.approvalId);
    const digest = stored?.request.digest;
    const lines = sink.events();
    expect(lines.every((l) => l.audit === true && l.msg === `audit: ${l.event}`)).toBe(true);
    const first = lines.filter((l) => 'runId' in l && l.runId === run.runId);
    expect(first.map((l) => l.event)).toEqual([
      'run.requested',
      'approval.requested',
      'approval.refused',
      'approval.decided',
      'destructive.sent',
      'destructive.finished',
      'run.finished',
    ]);
    expect(first[0]).toMatchObject({ runbook: 'park', site: 'site-0', requestedBy: 'U_REQUESTER', args: [] });
    expect(first[1]).toMatchObject({ digest, step: 'stop-mgmt-vm', requestedBy: 'U_REQUESTER' });
    expect((first[1] as unknown as { targets: string[] }).targets[0]).toMatch(/^nova server [0-9a-f-]{36} /);
    expect(first[2]).toMatchObject({ by: 'U_NOBODY', reason: expect.stringMatching(/approver/i) });
    expect(first[3]).toMatchObject({ decision: 'approved', by: 'U0APPROVER', via: 'slack', digest });
    expect(first[4]).toMatchObject({ digest, command: expect.stringContaining('openstack server stop') });
    expect(first[5]).toMatchObject({ digest, exitCode: 0, timedOut: false });
    expect(first[6]).toMatchObject({ status: 'succeeded' });
    expect(lines.find((l) => l.event === 'run.refused')).toMatchObject({
      requestedBy: 'U_OTHER',
      reason: `site busy with run ${second.runId}`,
    });
    expect(lines.find((l) => l.event === 'run.cancel_requested')).toMatchObject({
      runId: second.runId,
      by: 'U_CANCELLER',
    });

    // AUDIT_LOG_FILE holds the same lines.
    const inFile = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(inFile.map((l) => [l.event, l.runId ?? l.requestedBy])).toEqual(
      lines.map((l) => [l.event, 'runId' in l ? l.runId : (l as { requestedBy: string }).requestedBy]),
    );
  });

  it('should count an expired approval as expired and audit the expiry', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const sink = auditSink();
    const audit = createAuditLog({ destination: sink.stream });
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks,
      scenarios: ['healthy'],
      approvalTimeoutMs: 300,
    });
    await h.startAgent({ metrics, audit, logger: quietLogger });
    const run = await h.service.submit({
      runbook: 'park',
      args: [],
      site: 'site-0',
      requestedBy: 'U_REQUESTER',
    });
    expect((await waitForEvent(h.service, run.runId, isType('run.finished'))).status).toBe('denied');
    await counted(metrics, 'capi_runs_finished_total', { runbook: 'park', status: 'denied' });
    expect(await series(metrics, 'capi_approvals_total', { runbook: 'park', outcome: 'expired' })).toBe(1);
    expect(await series(metrics, 'capi_runs_finished_total', { runbook: 'park', status: 'denied' })).toBe(1);
    expect(
      await series(metrics, 'capi_destructive_commands_total', { runbook: 'park', step: 'stop-mgmt-vm' }),
    ).toBe(undefined);
    expect(sink.events().map((l) => l.event)).toEqual([
      'approval.requested',
      'approval.expired',
      'run.finished',
    ]);
  });
});
