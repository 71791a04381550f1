import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { type Running, spawnCollecting } from './support/process.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;
const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;
let dir: string | undefined;

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});
afterEach(async () => {
  await h?.stop();
  h = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

function cli(args: string[], extraEnv: Record<string, string> = {}): Running {
  return spawnCollecting(process.execPath, [BIN, ...args], {
    env: {
      ...process.env,
      REDIS_URL,
      QUEUE_PREFIX: db.prefix,
      CAPI_APPROVERS: 'U0APPROVE1,U0APPROVE2',
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
    const r = await cli(['submit', 'diagnose', '--site', file, '--as', 'U0REQUEST1']).done;
    expect(r.code).toBe(0);
    const runId = /^run id: (\S+)/m.exec(r.stdout)?.[1];
    expect(runId).toBeDefined();
    expect(r.stdout).toMatch(/=== diagnose on site site-0 -- run id: /);
    expect(r.stdout).toMatch(/=> D-042 cosmetic false-negative/);
    expect(r.stdout).toMatch(/=== run SUCCEEDED/);

    const status = await cli(['status']).done;
    expect(status.stdout).toContain(`run id: ${runId}  succeeded`);
    const md = await cli(['timeline', runId as string]).done;
    expect(md.code).toBe(0);
    expect(md.stdout).toMatch(/^# /);
    expect(md.stdout).toContain('diagnose');
  });

  it('should refuse the requester and accept an approver when approvals are decided from another terminal', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent();
    const file = await siteFile(h);
    const submit = cli(['submit', 'park', '--site', file, '--as', 'U0APPROVE1']);
    const hh = h;
    const approvalLine = await eventually(
      'submit to print the decide command',
      () => /capi-chatops decide (\S+) approve/.exec(submit.stdout())?.[1],
    );
    const self = await cli(['decide', approvalLine, 'approve', '--as', 'U0APPROVE1']).done;
    expect(self.code).toBe(3);
    expect(self.stderr).toMatch(/refused: you asked for this run; another approver must decide/);
    const stranger = await cli(['decide', approvalLine, 'approve', '--as', 'U0REQUEST1']).done;
    expect(stranger.stderr).toMatch(/refused: you are not in CAPI_APPROVERS/);
    const ok = await cli([
      'decide',
      approvalLine,
      'approve',
      '--as',
      'U0APPROVE2',
      '--reason',
      'checked the VM is idle',
    ]).done;
    expect(ok.stdout).toContain('approved: the run continues');
    // A decision from a terminal is audited like one from Slack (on stderr: stdout is the operator's).
    expect(JSON.parse(ok.stderr.trim())).toMatchObject({
      audit: true,
      event: 'approval.decided',
      decision: 'approved',
      by: 'U0APPROVE2',
      via: 'terminal',
      reason: 'checked the VM is idle',
    });
    const again = await cli(['decide', approvalLine, 'deny', '--as', 'U0APPROVE2']).done;
    expect(again.stdout + again.stderr).toMatch(/already decided: approved by U0APPROVE2/);

    const r = await submit.done;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/APPROVED by U0APPROVE2 at \S+: checked the VM is idle/);
    const runId = /^run id: (\S+)/m.exec(r.stdout)?.[1] as string;
    expect((await waitForEvent(hh.service, runId, isType('run.finished'))).status).toBe('succeeded');
  });

  it('should refuse a second run on the same site with the running one named', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent();
    const file = await siteFile(h);
    const first = await cli(['submit', 'park', '--site', file, '--as', 'U0REQUEST1', '--no-follow']).done;
    const runId = /^run id: (\S+)/m.exec(first.stdout)?.[1] as string;
    const second = await cli(['submit', 'sweep', '--site', file, '--as', 'U0OTHER01', '--no-follow']).done;
    expect(second.code).toBe(2);
    expect(second.stderr).toContain(`site site-0 already has a run in progress: run id: ${runId}`);
    const cancel = await cli(['cancel', runId, '--as', 'U0OTHER01']).done;
    expect(cancel.code).toBe(0);
    const finished = await waitForEvent(h.service, runId, isType('run.finished'));
    expect(finished).toMatchObject({ status: 'cancelled', message: expect.stringContaining('U0OTHER01') });
  });
});
