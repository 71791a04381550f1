/**
 * Redis forgets a destructive attempt: it is rolled back to a snapshot taken before the approval, after the
 * failover was sent. The run comes back parked at the approval as if nothing had happened, and a second click
 * would send the failover again; the jumphost's attempt marker is what refuses it.
 */
import { copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JournalEntry } from '../dev/sim/jumphost.js';
import { createAuditLog } from '../src/ops/audit.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { type AuditLine, auditSink } from './support/audit-sink.js';
import { eventually } from './support/eventually.js';
import { type RedisProcess, scratchDir, startRedisProcess } from './support/redis-servers.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const LB = '1b000000-0000-4000-8000-000000000001';
const PREFIX = 'capi-rollback';
const APPROVER = { userId: 'U0APPROVER', groupIds: [] };

let runbooks: RunbookSet;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const failovers = (journal: readonly JournalEntry[]) =>
  journal.filter((j) => j.action === 'loadbalancer.failover');

describe('Redis rolled back to before an approval whose failover was sent', () => {
  it('should refuse the second send on the jumphost and end saying the first may have landed', async () => {
    const scratch = await scratchDir('rollback');
    cleanups.push(scratch.remove);
    // Persistence is the RDB file alone: a restart loads exactly the snapshot put in its place.
    const config = ['dbfilename dump.rdb'];
    let server: RedisProcess = await startRedisProcess({ dir: scratch.dir, name: 'rollback', config });
    cleanups.push(() => server.kill());
    const url = `redis://127.0.0.1:${server.port}`;
    const redis = new Redis(url, { maxRetriesPerRequest: null });
    redis.on('error', () => undefined);
    cleanups.push(async () => redis.disconnect());

    const h: Harness = await startHarness({
      redis,
      prefix: PREFIX,
      runbooks,
      scenarios: ['failover-error'],
      redisUrl: url,
      approvalTimeoutMs: 180_000,
    });
    cleanups.push(() => h.stop());
    const sim = h.sims[0];
    if (!sim) throw new Error('no sim');
    const sink = auditSink();
    const audit = createAuditLog({ destination: sink.stream });
    let agent = await h.startAgent({ audit });
    const run = await h.submit('failover', { args: [LB] });
    const asked = await waitForEvent(h.service, run.runId, isType('approval.requested', 'failover-lb'));
    // Parked: its job is in BullMQ's delayed set, holding no worker, until a decision wakes it.
    const queue = new Queue(run.queue, { connection: redis, prefix: PREFIX });
    cleanups.push(() => queue.close());
    await eventually('the run to park at the failover approval', async () =>
      (await (await Job.fromId(queue, run.runId))?.isDelayed()) === true ? true : undefined,
    );
    await redis.save();
    const snapshot = path.join(scratch.dir, 'before-approval.rdb');
    await copyFile(path.join(scratch.dir, 'dump.rdb'), snapshot);

    // Approved: the failover is sent, fast-fails back to ERROR, and the run stops there.
    expect((await h.service.decide(asked.approvalId, APPROVER, true, 'test')).outcome).toBe('decided');
    expect((await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000)).status).toBe('failed');
    const [first] = failovers(await sim.journal());
    expect(failovers(await sim.journal())).toHaveLength(1);

    // Redis forgets: the agent and Redis stop, Redis comes back from the snapshot taken before the approval.
    await agent.close();
    await server.kill();
    await copyFile(snapshot, path.join(scratch.dir, 'dump.rdb'));
    server = await startRedisProcess({ dir: scratch.dir, name: 'rollback', config, port: server.port });
    expect(await h.service.getRun(run.runId)).toMatchObject({ status: 'waiting_approval' });
    expect((await h.service.getApproval(asked.approvalId))?.decision).toBeUndefined();
    expect(await h.service.readTimeline(run.runId)).not.toContainEqual(
      expect.objectContaining({ event: expect.objectContaining({ type: 'attempt.started' }) }),
    );

    // The same request is approved again, as a person would who sees it still open.
    agent = await h.startAgent({ audit });
    expect((await h.service.decide(asked.approvalId, APPROVER, true, 'test')).outcome).toBe('decided');
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000);
    expect(finished.status).toBe('failed');
    expect(finished.message).toContain(
      `OUTCOME UNKNOWN: the jumphost refused to send \`openstack loadbalancer failover "${LB}"\` again: an earlier send of this step is on record there, made at `,
    );
    // When the first was sent, from the jumphost's marker: the time the cloud saw the failover (to the second).
    const sentAt = /made at (\S+Z) /.exec(finished.message)?.[1];
    expect(Math.abs(Date.parse(sentAt ?? '') - Date.parse(first?.ts ?? ''))).toBeLessThan(5_000);
    expect(finished.message).toContain('The first send may have landed');
    expect(finished.message).toContain('It is NOT sent again. Check by hand: openstack loadbalancer show');
    const verified = await waitForEvent(h.service, run.runId, isType('attempt.verified', 'failover-lb'));
    expect(verified.tookEffect).toBe(false);
    // The cloud saw one failover, and no rule of the seed was broken (a retry after ERROR would be one).
    expect(failovers(await sim.journal())).toHaveLength(1);
    expect(await sim.violations()).toEqual([]);

    // The audit trail says the second send was refused, with the first send's time from the marker: it
    // never claims two sends.
    const destructive = sink.events().filter((l) => l.event.startsWith('destructive.'));
    expect(destructive.map((l) => l.event)).toEqual([
      'destructive.sent',
      'destructive.finished',
      'destructive.sent',
      'destructive.refused',
      // The first send may have landed: the run ends holding the site until an operator releases it.
      'destructive.outcome_unknown',
    ]);
    expect((await h.service.holds('site-0')).map((x) => x.runId)).toEqual([run.runId]);
    const [sent1, , sent2, refused] = destructive as Extract<AuditLine, { event: 'destructive.sent' }>[];
    expect(refused).toEqual(
      expect.objectContaining({
        runId: run.runId,
        step: 'failover-lb',
        reason: 'attempt_on_record',
        attemptId: sent2?.attemptId,
        digest: sent2?.digest,
        sentAt,
        sentDigest: sent1?.digest,
        marker: expect.stringMatching(new RegExp(`^~/\\.capi-chatops/attempts/${run.runId}/failover-lb`)),
      }),
    );
  });
});

describe('Redis rolled back to before a run was picked up, after two owners raised its fence on the jumphost', () => {
  it("should give the run's next owner a token the jumphost accepts, so the run goes on", async () => {
    const scratch = await scratchDir('rollback-fence');
    cleanups.push(scratch.remove);
    const config = ['dbfilename dump.rdb'];
    let server: RedisProcess = await startRedisProcess({ dir: scratch.dir, name: 'fence', config });
    cleanups.push(() => server.kill());
    const url = `redis://127.0.0.1:${server.port}`;
    const redis = new Redis(url, { maxRetriesPerRequest: null });
    redis.on('error', () => undefined);
    cleanups.push(async () => redis.disconnect());
    const h: Harness = await startHarness({
      redis,
      prefix: PREFIX,
      runbooks,
      scenarios: ['healthy'],
      redisUrl: url,
      approvalTimeoutMs: 180_000,
    });
    cleanups.push(() => h.stop());
    const sim = h.sims[0];
    if (!sim) throw new Error('no sim');
    const fenceFile = path.join(sim.dir, 'home', '.capi-chatops', 'fence');

    // Queued, no agent yet: the snapshot holds the run before anyone took a token for it.
    const run = await h.submit('park');
    await redis.save();
    const snapshot = path.join(scratch.dir, 'before-pickup.rdb');
    await copyFile(path.join(scratch.dir, 'dump.rdb'), snapshot);

    // Two owners: the pick-up (parks at the stop's approval) and the resume after the approval, each
    // raising the run's token on the jumphost with its first command.
    let agent = await h.startAgent();
    const asked = await waitForEvent(h.service, run.runId, isType('approval.requested', 'stop-mgmt-vm'));
    expect((await h.service.decide(asked.approvalId, APPROVER, true, 'test')).outcome).toBe('decided');
    expect((await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000)).status).toBe(
      'succeeded',
    );
    const before = Number(await readFile(path.join(fenceFile, run.runId), 'utf8'));
    const stops = async () => (await sim.journal()).filter((j) => j.action === 'server.stop');
    expect(await stops()).toHaveLength(1);

    // Redis forgets both take-overs: the run is queued again, its fence counter gone.
    await agent.close();
    await server.kill();
    await copyFile(snapshot, path.join(scratch.dir, 'dump.rdb'));
    server = await startRedisProcess({ dir: scratch.dir, name: 'fence', config, port: server.port });
    expect(await h.service.getRun(run.runId)).toMatchObject({ status: 'queued' });

    // The next owner's token is above the jumphost's (a counter alone would give it one below): the run
    // is not refused as "taken over" and finds the VM already stopped.
    agent = await h.startAgent();
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 30_000);
    expect(finished).toMatchObject({ status: 'succeeded' });
    expect(finished.message).toContain('is already SHUTOFF (parked): nothing to do');
    expect(Number(await readFile(path.join(fenceFile, run.runId), 'utf8'))).toBeGreaterThan(before);
    expect(await stops()).toHaveLength(1);
  });
});
