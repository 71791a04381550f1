import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { freePort } from '../dev/net.js';
import type { RunEvent } from '../src/engine/events.js';
import { loadRunbooks, parseRunbook, type RunbookSet } from '../src/runbook/load.js';
import { RunRegistry } from '../src/runs/registry.js';
import { connectSsh } from '../src/ssh/executor.js';
import { approveEverything, type Harness, isType, startHarness, waitForEvent } from './support/agent.js';
import { decisionEnv } from './support/decision-keys.js';
import { REDIS_URL, useTestRedis } from './support/redis.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;
const db = useTestRedis();
let runbooks: RunbookSet;
let h: Harness | undefined;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const shipped = await loadRunbooks(COMMANDS);
  // A runbook whose only step is a long remote command, to watch a cancel kill it.
  const sleepy = parseRunbook(
    '/test/sleepy.yaml',
    'name: sleepy\nsummary: one long step\nsource: test\nsteps:\n  - id: long\n    title: Long\n    run: echo $$ > ~/sleepy.pid; echo started; sleep 300\n',
    shipped.scopes,
  );
  const twoSteps = parseRunbook(
    '/test/two-steps.yaml',
    'name: two-steps\nsummary: two steps\nsource: test\nsteps:\n  - id: one\n    title: One\n    run: sleep 1; echo one\n  - id: two\n    title: Two\n    run: echo two >> ~/two; cat ~/two | wc -l\n',
    shipped.scopes,
  );
  runbooks = {
    scopes: shipped.scopes,
    knownErrors: shipped.knownErrors,
    runbooks: new Map([...shipped.runbooks, ['sleepy', sleepy], ['two-steps', twoSteps]]),
  };
});
afterEach(async () => {
  await h?.stop();
  h = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

function destructiveChanges(journal: { ok: boolean; action: string; target: string }[]): string[] {
  return journal
    .filter((j) => j.ok && ['server.delete', 'loadbalancer.failover', 'server.start'].includes(j.action))
    .map((j) => `${j.action} ${j.target}`);
}

/**
 * Every step that started also finished (a step open when the run parked at an approval is started
 * again after run.resumed), and poll attempts count up without gaps.
 */
function expectCoherent(events: RunEvent[]): void {
  expect(events[0]?.type).toBe('run.started');
  expect(events.at(-1)?.type).toBe('run.finished');
  const open = new Set<string>();
  const attempts = new Map<string, number>();
  for (const e of events) {
    const key = 'stepId' in e ? `${e.stepId}#${e.iteration?.n ?? 0}` : '';
    if (e.type === 'step.started') open.add(key);
    if (e.type === 'step.finished') {
      expect(open.has(key), `${key} finished without starting`).toBe(true);
      open.delete(key);
    }
    if (e.type === 'poll.attempt') {
      const last = attempts.get(key) ?? 0;
      expect(e.attempt === last + 1 || e.attempt === 1, `${key} attempt ${e.attempt} after ${last}`).toBe(
        true,
      );
      attempts.set(key, e.attempt);
    }
  }
  expect([...open]).toEqual([]);
}

describe('runs that outlive trouble', () => {
  it('should kill the running remote command and record who cancelled when a running run is cancelled', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    // Nothing polls the record: the cancel arrives through pub/sub.
    await h.startAgent();
    const run = await h.submit('sleepy');
    await waitForEvent(
      h.service,
      run.runId,
      (e): e is RunEvent => e.type === 'step.output' && e.line === 'started',
    );
    await h.service.cancel(run.runId, 'U_CANCELLER');
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'));
    expect(finished).toMatchObject({
      status: 'cancelled',
      message: expect.stringContaining('cancelled by U_CANCELLER'),
    });
    const sim = h.sims[0];
    if (!sim) throw new Error('no sim');
    const ex = await connectSsh({ target: sim.target });
    try {
      const r = await ex.exec({
        script: 'kill -0 "$(cat ~/sleepy.pid)" 2>/dev/null && echo alive || echo gone',
        env: {},
        timeoutMs: 5000,
      });
      expect(r.stdout.trim()).toBe('gone');
    } finally {
      await ex.close();
    }
  });

  it('should stop a run cancelled while its agent was not subscribed to cancels, once it is again', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    await h.startAgent();
    const run = await h.submit('sleepy');
    await waitForEvent(
      h.service,
      run.runId,
      (e): e is RunEvent => e.type === 'step.output' && e.line === 'started',
    );
    // Recorded, but its message lost: as if published while the agent's subscription was reconnecting.
    await new RunRegistry(db.redis, db.prefix).requestCancel(run.runId, 'U0LEAD0001');
    const subscriber = String(await db.redis.client('LIST'))
      .split('\n')
      .filter((line) => line.includes(` name=${db.prefix}:cancels `));
    expect(subscriber).toHaveLength(1);
    const id = /^id=(\d+) /.exec(subscriber[0] ?? '')?.[1];
    await db.redis.client('KILL', 'ID', String(id));
    // Nothing polls the record: the agent reads it once it is subscribed again.
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'));
    expect(finished).toMatchObject({
      status: 'cancelled',
      message: expect.stringContaining('cancelled by U0LEAD0001'),
    });
  });

  it('should let the running step finish and hand the run over when its agent shuts down', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['healthy'] });
    const first = await h.startAgent({ shutdownGraceMs: 30_000 });
    const run = await h.submit('two-steps');
    await waitForEvent(h.service, run.runId, isType('step.started', 'one'));
    const closing = first.close();
    expect(first.close()).toBe(closing);
    await closing;
    const events = (await h.service.readTimeline(run.runId)).map((e) => e.event);
    expect(events.find((e) => e.type === 'step.finished' && e.stepId === 'one')).toMatchObject({
      status: 'ok',
    });
    expect(events.some((e) => e.type === 'step.started' && e.stepId === 'two')).toBe(false);
    expect(await h.service.getRun(run.runId)).toMatchObject({ status: 'interrupted' });

    await h.startAgent();
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'));
    expect(finished.status).toBe('succeeded');
    const two = (await h.service.readTimeline(run.runId))
      .map((e) => e.event)
      .filter((e) => e.type === 'step.output' && e.stepId === 'two');
    // Step two ran exactly once, on the second agent.
    expect(two.map((e) => (e as { line: string }).line.trim())).toEqual(['1']);
  });

  it('should finish on another agent with every destructive command issued once when its agent is SIGKILLed mid-run', async () => {
    h = await startHarness({ redis: db.redis, prefix: db.prefix, runbooks, scenarios: ['outage'] });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-kill-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const siteFile = path.join(dir, 'site.yaml');
    await writeFile(siteFile, stringify({ ...h.sims[0]?.site, name: 'site-0' }));
    const child: ChildProcess = spawn(
      process.execPath,
      [
        BIN,
        'agent',
        '--site',
        siteFile,
        '--concurrency',
        '1',
        '--lock-duration-ms',
        '1500',
        '--stalled-interval-ms',
        '500',
      ],
      {
        env: {
          ...process.env,
          REDIS_URL,
          QUEUE_PREFIX: db.prefix,
          LOG_LEVEL: 'info',
          ...decisionEnv(['U0APPROVER']),
        },
        stdio: ['ignore', process.env.CAPI_DEBUG_CHILD ? 'inherit' : 'ignore', 'inherit'],
      },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });

    const run = await h.submit('recover');
    const approver = new AbortController();
    const approvals = approveEverything(h.service, run.runId, approver.signal);
    // Killed right after the failover was approved: it may or may not have been issued.
    await waitForEvent(h.service, run.runId, isType('approval.decided', 'failover/failover-lb'), 60_000);
    child.kill('SIGKILL');
    await exited;

    await h.startAgent({ lockDurationMs: 1500, stalledIntervalMs: 500 });
    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000);
    expect(finished.status).toBe('succeeded');
    await approvals;
    const sim = h.sims[0];
    if (!sim) throw new Error('no sim');
    expect(destructiveChanges(await sim.journal())).toEqual([
      'server.start capi-mgmt-v2',
      'server.delete 5e000000-0000-4000-8000-0000000000e2',
      'server.delete 5e000000-0000-4000-8000-0000000000e1',
      'loadbalancer.failover 1b000000-0000-4000-8000-000000000001',
    ]);
    expect(await sim.violations()).toEqual([]);
    const events = (await h.service.readTimeline(run.runId)).map((e) => e.event);
    expect(
      events.filter((e) => e.type === 'run.resumed').map((e) => (e as { reason: string }).reason),
    ).toContainEqual(expect.stringMatching(/an agent took over this run/));
  });

  it('should lose no run and no timeline event when Redis restarts mid-run', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-redis-aof-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const port = await freePort();
    const startRedis = async () => {
      const p = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--appendonly',
          'yes',
          '--appendfsync',
          'always',
          '--save',
          '',
        ],
        { stdio: 'ignore' },
      );
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 50 });
      probe.on('error', () => undefined);
      await probe.connect().catch(() => undefined);
      await probe.ping();
      probe.disconnect();
      return p;
    };
    let server = await startRedis();
    cleanups.push(async () => {
      server.kill('SIGKILL');
    });
    const url = `redis://127.0.0.1:${port}`;
    const redis = new Redis(url, { maxRetriesPerRequest: null });
    redis.on('error', () => undefined);
    cleanups.push(async () => {
      redis.disconnect();
    });

    h = await startHarness({ redis, prefix: 'capi-aof', runbooks, scenarios: ['outage'], redisUrl: url });
    await h.startAgent();
    const run = await h.submit('recover');
    const approver = new AbortController();
    const approvals = approveEverything(h.service, run.runId, approver.signal);
    await waitForEvent(h.service, run.runId, isType('step.started', 'k8s-ready'), 60_000);

    const exited = new Promise((resolve) => server.once('exit', resolve));
    const admin = new Redis({ port, host: '127.0.0.1' });
    admin.on('error', () => undefined);
    await admin.shutdown('SAVE').catch(() => undefined);
    admin.disconnect();
    await exited;
    server = await startRedis();

    const finished = await waitForEvent(h.service, run.runId, isType('run.finished'), 90_000);
    expect(finished.status).toBe('succeeded');
    approver.abort();
    await approvals;
    expect((await h.service.getRun(run.runId))?.status).toBe('succeeded');
    expectCoherent((await h.service.readTimeline(run.runId)).map((e) => e.event));
  });
});
