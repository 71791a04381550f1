import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { type Running, spawnCollecting } from './support/process.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

/** capi-chatops as a named Unix user (development entry: the product always acts as the running account). */
const CLI_AS = new URL('../dist/dev/cli-as.js', import.meta.url).pathname;
const TOKEN = ['xoxb', '4444444444', '5555555555555', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
/**
 * alice: operator and approver; bob: approver through the Slack user group S0APPROVERS (Slack says so, not
 * the command line); carol: operator only; mallory: no mapping at all.
 */
const TERMINAL_USERS = 'alice=U0APPROVE1,bob=U0APPROVE2,carol=U0REQUEST1';
const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;
let dir: string | undefined;
let fake: FakeSlack | undefined;

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  await h?.stop();
  h = undefined;
  await fake?.close();
  fake = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** `capi-chatops ARGS` typed by Unix user `who` on the agent's host. */
async function cli(who: string, args: string[], extraEnv: Record<string, string> = {}): Promise<Running> {
  fake ??= await startFakeSlack({
    token: TOKEN,
    channels: ['C0INCIDENT'],
    users: {
      U0APPROVE1: { groups: [] },
      U0APPROVE2: { groups: ['S0APPROVERS'] },
      U0REQUEST1: { groups: [] },
    },
  });
  return spawnCollecting(process.execPath, [CLI_AS, who, ...args], {
    env: {
      ...process.env,
      REDIS_URL,
      QUEUE_PREFIX: db.prefix,
      CAPI_APPROVERS: 'U0APPROVE1,S0APPROVERS',
      CAPI_OPERATORS: 'U0APPROVE1,U0REQUEST1',
      CAPI_TERMINAL_USERS: TERMINAL_USERS,
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_API_URL: fake.url,
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
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent();
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

    // bob is an approver only through the Slack user group: Slack says so.
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
    expect((await hh.service.getApproval(approvalLine))?.decidedVia).toBe('terminal as bob');
    expect(fake?.calls.filter((c) => c.method === 'usergroups.users.list').length).toBeGreaterThan(0);
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
    // This Redis has no replica: asked to confirm the cancel on one, it cannot, and alice is told so.
    const cancel = await (await cli('alice', ['cancel', runId], { REDIS_WAIT_REPLICAS: '1' })).done;
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
    const mallory = await (await cli('mallory', ['submit', 'diagnose', '--site', file, '--no-follow'])).done;
    expect(mallory.code).toBe(2);
    expect(mallory.stderr).toMatch(/the Unix user 'mallory' is not in CAPI_TERMINAL_USERS/);
    const typed = await (await cli('carol', ['submit', 'park', '--site', file, '--as', 'U0APPROVE1'])).done;
    expect(typed.code).toBe(2);
    expect(await h.service.listRuns({})).toEqual([]);
  });
});
