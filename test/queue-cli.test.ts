import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { RunFences } from '../src/runs/fence.js';
import { TargetLock, targetKey } from '../src/runs/lock.js';
import { loadAllowedSigners } from '../src/signing/allowed-signers.js';
import { type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { testJudge } from './support/decision-keys.js';
import { eventually } from './support/eventually.js';
import { type Running, spawnCollecting } from './support/process.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

/** capi-chatops as a named Unix user (development entry: the product always acts as the running account). */
const CLI_AS = new URL('../dist/dev/cli-as.js', import.meta.url).pathname;
const TOKEN = ['xoxb', '4444444444', '5555555555555', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
/**
 * alice: operator and approver; bob: approver; dave: approver only through the Slack user group S0APPROVERS
 * (which counts in Slack, never at a terminal); carol: operator only; mallory: no mapping at all. Each signs
 * with their own SSH key, listed for them in the deployment's allowed_signers.
 */
const TERMINAL_USERS = 'alice=U0APPROVE1,bob=U0APPROVE2,carol=U0REQUEST1,dave=U0GROUPIE1';
const PEOPLE = ['alice', 'bob', 'carol', 'dave'] as const;
const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;
let dir: string | undefined;
let fake: FakeSlack | undefined;
/** Each person's SSH key pair, and the deployment's allowed_signers listing them. */
let keys: string;

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
  keys = await mkdtemp(path.join(os.tmpdir(), 'capi-queue-cli-keys-'));
  const lines: string[] = [];
  for (const who of PEOPLE) {
    const file = path.join(keys, who);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', who, '-f', file]);
    const id = new RegExp(`${who}=(\\w+)`).exec(TERMINAL_USERS)?.[1] as string;
    lines.push(`${id} ${(await readFile(`${file}.pub`, 'utf8')).trim()}`);
  }
  await writeFile(path.join(keys, 'allowed_signers'), `${lines.join('\n')}\n`);
  return () => rm(keys, { recursive: true, force: true });
});
afterEach(async () => {
  await h?.stop();
  h = undefined;
  await fake?.close();
  fake = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The deployment's policy file for this test (the installed one is /etc/capi-chatops/policy.env). */
async function policyFile(slackUrl: string, more: Record<string, string>): Promise<string> {
  const file = path.join(keys, `policy-${db.prefix}.env`);
  await writeFile(
    file,
    [
      `REDIS_URL=${REDIS_URL}`,
      `QUEUE_PREFIX=${db.prefix}`,
      'CAPI_APPROVERS=U0APPROVE1,U0APPROVE2,S0APPROVERS',
      'CAPI_OPERATORS=U0APPROVE1,U0REQUEST1',
      'CAPI_TRUST_SLACK_GROUPS=true',
      `CAPI_TERMINAL_USERS=${TERMINAL_USERS}`,
      `CAPI_ALLOWED_SIGNERS=${path.join(keys, 'allowed_signers')}`,
      `SLACK_API_URL=${slackUrl}`,
      ...Object.entries(more).map(([k, v]) => `${k}=${v}`),
    ].join('\n'),
  );
  return file;
}

/** `capi-chatops ARGS` typed by Unix user `who` on the agent's host, with their own key for decisions. */
async function cli(
  who: string,
  args: string[],
  extraEnv: Record<string, string> = {},
  extraPolicy: Record<string, string> = {},
): Promise<Running> {
  fake ??= await startFakeSlack({
    token: TOKEN,
    channels: ['C0INCIDENT'],
    users: {
      U0APPROVE1: { groups: [] },
      U0APPROVE2: { groups: [] },
      U0REQUEST1: { groups: [] },
      U0GROUPIE1: { groups: ['S0APPROVERS'] },
    },
  });
  const withKey =
    args[0] === 'decide' && !args.includes('--key') ? [...args, '--key', path.join(keys, who)] : args;
  return spawnCollecting(process.execPath, [CLI_AS, who, ...withKey], {
    env: {
      ...process.env,
      CAPI_DEV_POLICY_FILE: await policyFile(fake.url, extraPolicy),
      SLACK_BOT_TOKEN: TOKEN,
      ...extraEnv,
    },
  });
}

async function siteFile(hh: Harness): Promise<string> {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capi-queue-cli-'));
  const file = path.join(dir, 'site.yaml');
  await writeFile(file, stringify({ ...hh.sims[0]?.site, name: 'site-0' }));
  return file;
}

describe('the terminal front on the queue', () => {
  it('should submit a run, print its timeline live and exit with its status when an agent serves it', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent();
    const file = await siteFile(h);
    const r = await (await cli('carol', ['submit', 'diagnose', '--site', file])).done;
    expect(r.code).toBe(0);
    const runId = /^run id: (\S+)/m.exec(r.stdout)?.[1];
    expect(runId).toBeDefined();
    expect(r.stdout).toMatch(/=== diagnose on site site-0 -- run id: /);
    expect(r.stdout).toMatch(/=> D-042 cosmetic false-negative/);
    expect(r.stdout).toMatch(/=== run SUCCEEDED/);

    const status = await (await cli('carol', ['status'])).done;
    expect(status.stdout).toContain(`run id: ${runId}  succeeded`);
    expect(status.stdout).toContain('by U0REQUEST1 via terminal as carol');
    const md = await (await cli('mallory', ['timeline', runId as string])).done;
    expect(md.code).toBe(0);
    expect(md.stdout).toMatch(/^# /);
    expect(md.stdout).toContain('diagnose');
  });

  it('should refuse the requester and accept an approver when approvals are decided from another terminal', async () => {
    const approvers = ['U0APPROVE1', 'U0APPROVE2', 'S0APPROVERS'];
    h = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks,
      scenarios: ['healthy'],
      approvers,
    });
    // The agent verifies each terminal decision against the deployment's allowed_signers.
    const allowedSigners = await loadAllowedSigners(path.join(keys, 'allowed_signers'));
    await h.startAgent({ decisions: { ...testJudge(approvers), verifiers: { allowedSigners } } });
    const file = await siteFile(h);
    const submit = await cli('alice', ['submit', 'park', '--site', file]);
    const hh = h;
    const approvalLine = await eventually(
      'submit to print the decide command',
      () => /capi-chatops decide (\S+) approve\)/.exec(submit.stdout())?.[1],
    );
    const self = await (await cli('alice', ['decide', approvalLine, 'approve'])).done;
    expect(self.code).toBe(3);
    expect(self.stderr).toMatch(/refused: you asked for this run; another approver must decide/);
    const stranger = await (await cli('carol', ['decide', approvalLine, 'approve'])).done;
    expect(stranger.code).toBe(3);
    expect(stranger.stderr).toMatch(/refused: you are not in CAPI_APPROVERS/);
    // carol's own rules in her own environment change nothing: the deployment's policy file decides.
    const ownRules = await (
      await cli('carol', ['decide', approvalLine, 'approve'], {
        CAPI_APPROVERS: 'U0REQUEST1',
        CAPI_TERMINAL_USERS: 'carol=U0APPROVE2',
        CAPI_ALLOW_SELF_APPROVAL: 'true',
      })
    ).done;
    expect(ownRules.code).toBe(3);
    expect(ownRules.stderr).toMatch(
      /note: ignoring CAPI_APPROVERS, CAPI_ALLOW_SELF_APPROVAL, CAPI_TERMINAL_USERS from your environment: the terminal's rules come from /,
    );
    expect(ownRules.stderr).toMatch(/refused: you are not in CAPI_APPROVERS/);
    // dave is an approver through a Slack group only: that counts in Slack, where serve vouches for it.
    const groupie = await (await cli('dave', ['decide', approvalLine, 'approve'])).done;
    expect(groupie.code).toBe(3);
    expect(groupie.stderr).toMatch(/a user group counts only for a decision taken in Slack/);
    // bob signing with alice's key: the deployment lists another key for him, so nothing is recorded.
    const wrongKey = await (
      await cli('bob', ['decide', approvalLine, 'approve', '--key', path.join(keys, 'alice')])
    ).done;
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stderr).toMatch(
      /refused: the signature was not made with a key .* lists for U0APPROVE2; the agents would refuse this decision/,
    );
    // root is nobody in particular.
    const root = await (await cli('root', ['decide', approvalLine, 'approve'])).done;
    expect(root.code).toBe(2);
    expect(root.stderr).toMatch(/refused: 'root' is root, not a person's account/);

    // Nobody can claim to be someone else, or to be in a group, any more.
    for (const typed of [['--as=U0APPROVE2'], ['--group', 'S0APPROVERS']]) {
      const forged = await (await cli('carol', ['decide', approvalLine, 'approve', ...typed])).done;
      expect(forged.code).toBe(2);
      expect(forged.stderr).toMatch(
        /--(as|group) is not accepted: a terminal acts as the Unix user running it, mapped to a Slack user by CAPI_TERMINAL_USERS/,
      );
    }
    const unmapped = await (await cli('mallory', ['decide', approvalLine, 'approve'])).done;
    expect(unmapped.code).toBe(2);
    expect(unmapped.stderr).toMatch(
      /the Unix user 'mallory' is not in CAPI_TERMINAL_USERS.*mallory=<your Slack user id>/,
    );
    expect((await hh.service.getApproval(approvalLine))?.decision).toBeUndefined();

    // bob signs with his own key.
    const ok = await (
      await cli('bob', ['decide', approvalLine, 'approve', '--reason', 'checked the VM is idle'])
    ).done;
    expect(ok.stdout).toContain('approved: the run continues');
    // A decision from a terminal is audited like one from Slack (on stderr: stdout is the operator's).
    expect(JSON.parse(ok.stderr.trim())).toMatchObject({
      audit: true,
      event: 'approval.decided',
      decision: 'approved',
      by: 'U0APPROVE2',
      via: 'terminal as bob',
      reason: 'checked the VM is idle',
    });
    const stored = await hh.service.getApproval(approvalLine);
    expect(stored?.decidedVia).toBe('terminal as bob');
    expect(stored?.decisionSigned).toMatchObject({ signer: 'ssh' });
    const again = await (await cli('bob', ['decide', approvalLine, 'deny'])).done;
    expect(again.stdout + again.stderr).toMatch(/already decided: approved by U0APPROVE2/);

    const r = await submit.done;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/APPROVED by U0APPROVE2 at \S+: checked the VM is idle/);
    const runId = /^run id: (\S+)/m.exec(r.stdout)?.[1] as string;
    expect((await waitForEvent(hh.service, runId, isType('run.finished'))).status).toBe('succeeded');
  }, 120_000);

  it('should refuse a second run on the same site with the running one named', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent();
    const file = await siteFile(h);
    const first = await (await cli('carol', ['submit', 'park', '--site', file, '--no-follow'])).done;
    const runId = /^run id: (\S+)/m.exec(first.stdout)?.[1] as string;
    const second = await (await cli('alice', ['submit', 'sweep', '--site', file, '--no-follow'])).done;
    expect(second.code).toBe(2);
    expect(second.stderr).toContain(`site site-0 already has a run in progress: run id: ${runId}`);
    const notOperator = await (await cli('bob', ['cancel', runId])).done;
    expect(notOperator.code).toBe(2);
    expect(notOperator.stderr).toMatch(/refused: bob \(Slack user U0APPROVE2\) is not in CAPI_OPERATORS/);
    // This Redis has no replica: asked (by the deployment) to confirm the cancel on one, it cannot, and alice
    // is told so.
    const cancel = await (await cli('alice', ['cancel', runId], {}, { REDIS_WAIT_REPLICAS: '1' })).done;
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toContain(`cancel requested for run ${runId}`);
    expect(cancel.stderr).toContain(
      'Your cancel is recorded, but Redis could not confirm it is safe on disk or on a replica (it reached 0 of 1 Redis replica(s) within 2000 ms)',
    );
    const finished = await waitForEvent(h.service, runId, isType('run.finished'));
    expect(finished).toMatchObject({ status: 'cancelled', message: expect.stringContaining('U0APPROVE1') });
  });

  it('should refuse a run that can change the cloud from a terminal user who is not an operator, and an unmapped one', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    const file = await siteFile(h);
    const bob = await (await cli('bob', ['submit', 'park', '--site', file, '--no-follow'])).done;
    expect(bob.code).toBe(2);
    expect(bob.stderr).toMatch(
      /refused: bob \(Slack user U0APPROVE2\) is not in CAPI_OPERATORS, who may start runs/,
    );
    // A copy of the runbooks that calls park read-only, in bob's own environment, changes nothing.
    const copy = path.join(dir as string, 'commands');
    await cp(COMMANDS, copy, { recursive: true });
    const park = path.join(copy, 'park.yaml');
    await writeFile(
      park,
      (await readFile(park, 'utf8')).replace(/^name: park$/m, 'name: park\nread_only: true'),
    );
    const disguised = await (
      await cli('bob', ['submit', 'park', '--site', file, '--no-follow'], { COMMANDS_DIR: copy })
    ).done;
    expect(disguised.code).toBe(2);
    expect(disguised.stderr).toMatch(/note: ignoring COMMANDS_DIR from your environment/);
    expect(disguised.stderr).toMatch(/is not in CAPI_OPERATORS, who may start runs/);
    const mallory = await (await cli('mallory', ['submit', 'diagnose', '--site', file, '--no-follow'])).done;
    expect(mallory.code).toBe(2);
    expect(mallory.stderr).toMatch(/the Unix user 'mallory' is not in CAPI_TERMINAL_USERS/);
    const typed = await (await cli('carol', ['submit', 'park', '--site', file, '--as', 'U0APPROVE1'])).done;
    expect(typed.code).toBe(2);
    expect(await h.service.listRuns({})).toEqual([]);
  });

  it('should free a held site only for an operator who says what was checked, and audit it', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    const file = await siteFile(h);
    // The hold an agent leaves when a run ends while its destructive command may have landed.
    const runId = 'r-held-1';
    await new TargetLock(db.redis, db.prefix).hold(
      targetKey('site-0'),
      {
        runId,
        step: 'park-vm',
        attemptId: `${runId}~park-vm~1`,
        command: 'openstack server stop capi-mgmt-v2',
        sentAt: '2025-03-04T10:00:00.000Z',
        heldAt: '2025-03-04T10:01:00.000Z',
        message: 'OUTCOME UNKNOWN: `openstack server stop capi-mgmt-v2` was sent at 2025-03-04T10:00:00.000Z',
      },
      await new RunFences(db.redis, db.prefix).take(runId),
    );
    // The deployment's site profiles name the sites whose holds `status` lists.
    const status = await (await cli('mallory', ['status'], {}, { SITE_FILE: file })).done;
    expect(status.stdout).toContain(`site site-0 HELD by run ${runId}`);
    const refused = await (await cli('carol', ['submit', 'park', '--site', file, '--no-follow'])).done;
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/site site-0 is held: .*capi-chatops release site-0 --reason TEXT/);

    const notOperator = await (await cli('bob', ['release', 'site-0', '--reason', 'looked'])).done;
    expect(notOperator.code).toBe(2);
    expect(notOperator.stderr).toMatch(/refused: bob \(Slack user U0APPROVE2\) is not in CAPI_OPERATORS/);
    const noReason = await (await cli('carol', ['release', 'site-0'])).done;
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/release needs --reason TEXT/);
    expect(await h.service.holds('site-0')).toHaveLength(1);

    const released = await (
      await cli('carol', ['release', 'site-0', '--reason', 'server show says SHUTOFF: the stop landed'])
    ).done;
    expect(released.code).toBe(0);
    expect(released.stdout).toContain(`released site site-0 from run ${runId}`);
    expect(JSON.parse(released.stderr.trim())).toMatchObject({
      audit: true,
      event: 'site.released',
      site: 'site-0',
      by: 'U0REQUEST1',
      reason: 'server show says SHUTOFF: the stop landed',
      holds: [{ runId, command: 'openstack server stop capi-mgmt-v2' }],
    });
    expect(await h.service.holds('site-0')).toEqual([]);
    const again = await (await cli('carol', ['release', 'site-0', '--reason', 'again'])).done;
    expect(again.code).toBe(1);
    expect(again.stdout).toContain('site site-0 is not held');
  });
});
