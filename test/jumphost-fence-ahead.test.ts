/**
 * The jumphost has seen a newer token for a run than Redis will ever give its rightful owner (the clock of
 * a Redis host went back, or Redis lost writes some other way): the owner's commands are refused there. The
 * run must not stop quietly as if taken over, nor be left "running": it ends saying why and what to do.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAuditLog } from '../src/ops/audit.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { type AuditLine, auditSink } from './support/audit-sink.js';
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

describe('a jumphost that has seen a newer token than Redis gives the run', () => {
  it('should end the run at the refused send, saying why, with the refusal in the audit trail', async () => {
    const sink = auditSink();
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    const sim = h.sims[0];
    if (!sim) throw new Error('no sim');
    await h.startAgent({ audit: createAuditLog({ destination: sink.stream }) });
    const run = await h.submit('park');
    const asked = await waitForEvent(h.service, run.runId, isType('approval.requested', 'stop-mgmt-vm'));
    await eventually('the run to park at the approval', async () =>
      (await h?.service.getRun(run.runId))?.status === 'waiting_approval' ? true : undefined,
    );
    // Resumed after the approval, the step reads the VM twice (guard, then guard again once approved): the
    // jumphost's token moves ahead right after the second read, just before the stop is sent.
    const hold = sim.hold({
      id: 'last-guard',
      step: 'stop-mgmt-vm',
      argv: 'server show',
      nth: 2,
      when: 'after',
    });
    expect(
      (await h.service.decide(asked.approvalId, { userId: 'U0APPROVER', groupIds: [] }, true, 'x')).outcome,
    ).toBe('decided');
    await hold.reached(30_000);
    const ahead = Date.now() + 3_600_000;
    const fenceDir = path.join(sim.dir, 'home', '.capi-chatops', 'fence');
    await mkdir(fenceDir, { recursive: true });
    await writeFile(path.join(fenceDir, run.runId), `${ahead}\n`);
    hold.release();

    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 30_000);
    expect(finished.status).toBe('failed');
    expect(finished.message).toMatch(
      new RegExp(
        `^stop-mgmt-vm: the jumphost refused the command: it has seen a newer owner's fencing token for run ${run.runId} \\(${ahead}\\) than this agent's \\(\\d+\\), while Redis names this agent the run's owner\\. Redis has lost writes`,
      ),
    );
    expect(finished.message).toContain('Nothing of this command ran and the run stops here');
    expect(finished.message).toContain('then start a new run if it is still needed');
    expect(await h.service.getRun(run.runId)).toMatchObject({ status: 'failed' });
    // The attempt is closed with the refused command's exit status (75): nothing of it can have landed.
    expect((await h.service.archiveRun(run.runId))?.attempts).toEqual([
      expect.objectContaining({ stepId: 'stop-mgmt-vm', outcome: expect.objectContaining({ exitCode: 75 }) }),
    ]);
    // Nothing reached the cloud, and the site is free for the new run the message asks for.
    expect((await sim.journal()).filter((j) => j.action === 'server.stop')).toEqual([]);
    await expect(h.submit('park')).resolves.toMatchObject({ status: 'queued' });

    // The trail shows the send as refused, not as made.
    const destructive = sink
      .events()
      .filter((l) => l.event.startsWith('destructive.') && 'runId' in l && l.runId === run.runId);
    expect(destructive.map((l) => l.event)).toEqual(['destructive.sent', 'destructive.refused']);
    const [sent, refused] = destructive as Extract<AuditLine, { event: 'destructive.sent' }>[];
    expect(refused).toEqual(
      expect.objectContaining({
        step: 'stop-mgmt-vm',
        reason: 'jumphost_fence_ahead',
        attemptId: sent?.attemptId,
        digest: sent?.digest,
        jumphostFence: ahead,
        fence: expect.any(Number),
      }),
    );
  });
});
