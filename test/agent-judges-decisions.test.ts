import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Job, Queue } from 'bullmq';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../src/ops/audit.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { ApprovalStore } from '../src/runs/approvals.js';
import { parseAllowedSigners } from '../src/signing/allowed-signers.js';
import { serviceSigner } from '../src/signing/service-key.js';
import { sshKeygenSigner } from '../src/signing/ssh-keygen.js';
import { statementText } from '../src/signing/statement.js';
import { threadMessage } from '../src/slack/blocks.js';
import { type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { testDecisionKeys, testJudge } from './support/decision-keys.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';

/**
 * The agent that would run a destructive command judges the decision itself: whatever Redis holds, nothing
 * runs unless the decision is signed (serve's key, or an operator's SSH key listed for them), for this exact
 * action, by someone the agent's own policy allows, and by as many different people as the step needs.
 * Written straight into Redis, a decision is refused, audited, shown in the thread, and the VM is not stopped.
 */

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const db = useTestRedis();
let runbooks: RunbookSet;
const cleanups: (() => Promise<unknown>)[] = [];
/** Each run gets its own harness and key prefix (under the test's, so it is cleaned up with it). */
let harnesses = 0;

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A park run on a healthy site, parked at its stop-the-VM approval; the agent's audit lines collected. */
async function parkedAtApproval(
  more: Partial<Parameters<typeof startHarness>[0]> = {},
  agentMore: Parameters<Harness['startAgent']>[0] = {},
) {
  harnesses += 1;
  const prefix = `${db.prefix}-${harnesses}`;
  const h = await startHarness({
    redis: db.redis,
    prefix,
    runbooks,
    scenarios: ['healthy'],
    approvers: ['U0APPROVER'],
    ...more,
  });
  cleanups.push(() => h.stop());
  const audit: AuditEvent[] = [];
  await h.startAgent({ audit: { record: (e) => audit.push(e) }, ...agentMore });
  const run = await h.submit('park');
  const asked = await waitForEvent(h.service, run.runId, isType('approval.requested'));
  return { hh: h, run, asked, audit, prefix, store: new ApprovalStore(db.redis, prefix) };
}

/** What anyone who can write to Redis can do: move the parked job back to the queue. */
async function wake(hh: Harness, prefix: string, runId: string): Promise<void> {
  const record = await hh.service.getRun(runId);
  const queue = new Queue(record?.queue ?? '', { connection: db.redis.duplicate(), prefix });
  try {
    // Parked (delayed): move it. Woken already (the agent saw the decision as it parked): nothing to do.
    const state = await eventually('the run to park at its approval or be woken', async () => {
      const s = await (await Job.fromId(queue, runId))?.getState();
      return s === undefined || s === 'active' ? undefined : s;
    });
    if (state === 'delayed') await (await Job.fromId(queue, runId))?.promote();
  } finally {
    await queue.close();
    await queue.disconnect();
  }
}

const statement = (approvalId: string, digest: string, decider: string) =>
  statementText({
    approvalId,
    digest,
    decider,
    verdict: 'approve',
    at: new Date().toISOString(),
    via: 'slack',
  });

/** The run ends failed, says why, audits it, and the simulated cloud never saw the VM stopped. */
async function expectRefused(
  hh: Harness,
  runId: string,
  audit: readonly AuditEvent[],
  by: string,
  reason: RegExp,
): Promise<void> {
  const rejected = await waitForEvent(hh.service, runId, isType('approval.rejected'));
  expect(rejected).toMatchObject({ by, stepId: 'stop-mgmt-vm' });
  expect(rejected.reason).toMatch(reason);
  const finished = await waitForEvent(hh.service, runId, isType('run.finished'));
  expect(finished.status).toBe('failed');
  expect(finished.message).toMatch(/refused by the agent .*nothing destructive was run/);
  const sim = hh.sims[0];
  expect((await sim?.journal())?.filter((j) => j.action === 'server.stop')).toEqual([]);
  expect(audit.find((e) => e.event === 'approval.rejected')).toMatchObject({ by, runId });
  const timeline = await hh.service.readTimeline(runId);
  expect(timeline.map((e) => e.event.type)).not.toContain('attempt.started');
}

describe('a decision written straight into Redis', () => {
  it('should be refused without a signature, and nothing runs', async () => {
    const { hh, run, asked, audit, store, prefix } = await parkedAtApproval();
    await store.decide(asked.approvalId, { approved: true, by: 'U0APPROVER', via: 'slack' });
    await wake(hh, prefix, run.runId);
    await expectRefused(hh, run.runId, audit, 'U0APPROVER', /carries no signature/);
  });

  it('should be refused with a signature by another key, or for another action, and nothing runs', async () => {
    const { hh, run, asked, audit, store, prefix } = await parkedAtApproval();
    const forger = serviceSigner(generateKeyPairSync('ed25519').privateKey);
    const signed = await forger.sign(statement(asked.approvalId, asked.request.digest, 'U0APPROVER'));
    await store.decide(asked.approvalId, { approved: true, by: 'U0APPROVER', via: 'slack', signed });
    await wake(hh, prefix, run.runId);
    await expectRefused(hh, run.runId, audit, 'U0APPROVER', /does not verify with serve's key/);

    // serve's real signature, but over another action: it approves nothing here.
    const {
      run: run2,
      asked: asked2,
      audit: audit2,
      store: store2,
      hh: hh2,
      prefix: prefix2,
    } = await parkedAtApproval();
    const other = await testDecisionKeys().signer.sign(
      statement(asked2.approvalId, 'sha256:other', 'U0APPROVER'),
    );
    await store2.decide(asked2.approvalId, { approved: true, by: 'U0APPROVER', via: 'slack', signed: other });
    await wake(hh2, prefix2, run2.runId);
    await expectRefused(hh2, run2.runId, audit2, 'U0APPROVER', /another approval or another action/);
  });

  it("should be refused when signed by serve for someone outside the agent's own approvers", async () => {
    // A front with a wider list than the agent (misconfigured, or compromised): the agent's list counts.
    const { hh, run, asked, audit } = await parkedAtApproval({
      service: { approvers: ['U0APPROVER', 'U0MALLORY1'] },
    });
    const r = await hh.service.decide(
      asked.approvalId,
      { userId: 'U0MALLORY1', groupIds: [] },
      true,
      'slack',
    );
    expect(r.outcome).toBe('decided');
    await expectRefused(
      hh,
      run.runId,
      audit,
      'U0MALLORY1',
      /U0MALLORY1 may not decide: they are not in CAPI_APPROVERS/,
    );
  });

  it('should be refused when the requester approved their own run, signature and all', async () => {
    const { hh, run, asked, audit, store, prefix } = await parkedAtApproval({
      approvers: ['U0APPROVER', 'U_REQUESTER'],
    });
    const signed = await testDecisionKeys().signer.sign(
      statement(asked.approvalId, asked.request.digest, 'U_REQUESTER'),
    );
    await store.decide(asked.approvalId, { approved: true, by: 'U_REQUESTER', via: 'slack', signed });
    await wake(hh, prefix, run.runId);
    await expectRefused(hh, run.runId, audit, 'U_REQUESTER', /U_REQUESTER asked for this run/);
  });

  it('should be refused when a group the agent does not trust granted the right', async () => {
    const { hh, run, asked, audit } = await parkedAtApproval(
      { approvers: ['S0APPROVERS'], service: { approvers: ['S0APPROVERS'] } },
      { decisions: testJudge(['S0APPROVERS'], { trustSlackGroups: false }) },
    );
    await hh.service.decide(
      asked.approvalId,
      { userId: 'U_GROUPIE', groupIds: ['S0APPROVERS'] },
      true,
      'slack',
    );
    await expectRefused(
      hh,
      run.runId,
      audit,
      'U_GROUPIE',
      /does not trust Slack groups \(CAPI_TRUST_SLACK_GROUPS\)/,
    );
  });

  it('should show the refusal in the Slack thread', () => {
    const message = threadMessage({
      id: '1-0',
      at: new Date().toISOString(),
      event: {
        type: 'approval.rejected',
        stepId: 'stop-mgmt-vm',
        index: 2,
        total: 3,
        approvalId: 'approval~r~stop-mgmt-vm',
        by: 'U0MALLORY1',
        reason: 'it carries no signature',
      },
    } as Parameters<typeof threadMessage>[0]);
    const group = threadMessage({
      id: '1-0',
      at: new Date().toISOString(),
      event: {
        type: 'approval.rejected',
        stepId: 'stop-mgmt-vm',
        index: 2,
        total: 3,
        approvalId: 'approval~r~stop-mgmt-vm',
        by: 'S0APPROVERS',
        reason: 'it carries no signature',
      },
    } as Parameters<typeof threadMessage>[0]);
    // A forged record naming a group must not notify the group.
    expect(JSON.stringify(group)).not.toContain('subteam');
    expect(JSON.stringify(message)).toMatch(
      /the agent refused the decision recorded as <@U0MALLORY1>'s: it carries no signature\. Nothing destructive was run/,
    );
  });
});

describe('decisions signed with operators’ SSH keys', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capi-judge-keys-'));
    for (const name of ['alice', 'bob']) {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(dir, name)]);
    }
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
  });
  const pub = async (name: string) => (await readFile(path.join(dir, `${name}.pub`), 'utf8')).trim();

  it('should count two votes by one person under two ids once, and run on two people', async () => {
    // One key listed for two Slack ids is one person: a quorum of two needs another.
    const signers = parseAllowedSigners(
      [`U_ALICE,U_ALICE2 ${await pub('alice')}`, `U_BOB ${await pub('bob')}`].join('\n'),
      'allowed_signers',
    );
    const approvers = ['U_ALICE', 'U_ALICE2', 'U_BOB'];
    const judge = { ...testJudge(approvers), verifiers: { allowedSigners: signers } };
    const { hh, run, asked, audit } = await parkedAtApproval(
      { approvers, siteFields: { approval_quorum: { park: 2 } } },
      { decisions: judge },
    );
    const alice = sshKeygenSigner(path.join(dir, 'alice'));
    const vote = (userId: string) =>
      hh.service.decide(asked.approvalId, { userId, groupIds: [] }, true, 'terminal as alice', {
        signer: alice,
      });
    expect((await vote('U_ALICE')).outcome).toBe('voted');
    // The store counts ids: two. The agent counts people: one.
    expect((await vote('U_ALICE2')).outcome).toBe('decided');
    await expectRefused(
      hh,
      run.runId,
      audit,
      'U_ALICE2',
      /needs 2 different approvers and the decision has 1 \(some approvals are by one person/,
    );

    const second = await parkedAtApproval(
      { approvers, siteFields: { approval_quorum: { park: 2 } } },
      { decisions: judge },
    );
    const bob = sshKeygenSigner(path.join(dir, 'bob'));
    const by = (userId: string, signer: typeof alice) =>
      second.hh.service.decide(second.asked.approvalId, { userId, groupIds: [] }, true, 'terminal', {
        signer,
      });
    expect((await by('U_ALICE', alice)).outcome).toBe('voted');
    // Alice's key cannot sign as Bob.
    const forged = await parkedAtApproval({ approvers }, { decisions: judge });
    await forged.hh.service.decide(
      forged.asked.approvalId,
      { userId: 'U_BOB', groupIds: [] },
      true,
      'terminal',
      {
        signer: alice,
      },
    );
    await expectRefused(
      forged.hh,
      forged.run.runId,
      forged.audit,
      'U_BOB',
      /not made with a key allowed_signers lists for U_BOB|does not match/,
    );
    expect((await by('U_BOB', bob)).outcome).toBe('decided');
    const finished = await waitForEvent(second.hh.service, second.run.runId, isType('run.finished'));
    expect(finished.status).toBe('succeeded');
    const stops = (await second.hh.sims[0]?.journal())?.filter((j) => j.ok && j.action === 'server.stop');
    expect(stops).toHaveLength(1);
    const decided = await waitForEvent(second.hh.service, second.run.runId, isType('approval.decided'));
    expect(decided.decision).toMatchObject({ approved: true, approvers: ['U_ALICE', 'U_BOB'] });
  });
});
