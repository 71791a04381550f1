import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type SimJumphost, startSimJumphost } from '../dev/sim/jumphost.js';
import { type FakeSlack, startFakeSlack } from '../dev/slack/fake-slack.js';
import { DoctorReportSchema } from '../src/doctor/report.js';
import { type Finished, spawnCollecting } from './support/process.js';
import { type RedisProcess, scratchDir, startRedisProcess } from './support/redis-servers.js';

/**
 * `capi-chatops doctor` as an operator runs it, as its own process, against the simulated site (a real sshd
 * in front of the simulated cloud), redis-servers of its own and the strict fake Slack: all ok on a ready
 * site, and the one right failing line for each thing that is not ready.
 */

const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;
const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const TOKEN = 'xoxb-doctor-test-0001';
const CHANNEL = 'C0INCIDENT1';
const PREFIX = `{doctor-${process.pid}}`;

let scratch: { dir: string; remove: () => Promise<void> };
let ready: RedisProcess;
let noAof: RedisProcess;
let dir: string;
const sims: SimJumphost[] = [];
const slacks: FakeSlack[] = [];

beforeAll(async () => {
  scratch = await scratchDir('doctor');
  [ready, noAof] = await Promise.all([
    startRedisProcess({
      dir: scratch.dir,
      name: 'ready',
      config: ['appendonly yes', 'appendfsync everysec', 'maxmemory-policy noeviction'],
    }),
    startRedisProcess({ dir: scratch.dir, name: 'no-aof', config: ['maxmemory-policy noeviction'] }),
  ]);
  dir = await mkdtemp(path.join(os.tmpdir(), 'capi-doctor-'));
});

afterEach(async () => {
  await Promise.all([...sims.splice(0).map((s) => s.stop()), ...slacks.splice(0).map((s) => s.close())]);
});

afterAll(async () => {
  await Promise.all([ready?.kill(), noAof?.kill()]);
  await scratch?.remove();
  await rm(dir, { recursive: true, force: true });
});

interface Setup {
  readonly scenario?: string;
  readonly hostKey?: string;
  /** Pin the mgmt VM's host key (default), then let another machine answer on its address. */
  readonly pinMgmtKey?: boolean;
  readonly replaceMgmtKey?: boolean;
  readonly redis?: RedisProcess;
  readonly botChannels?: readonly string[];
}

async function doctor(setup: Setup = {}): Promise<Finished & { failing: string[] }> {
  const sim = await startSimJumphost({ scenario: setup.scenario ?? 'healthy', timeScale: 0.01 });
  sims.push(sim);
  const slack = await startFakeSlack({
    token: TOKEN,
    channels: [CHANNEL],
    ...(setup.botChannels !== undefined ? { botChannels: setup.botChannels } : {}),
  });
  slacks.push(slack);
  const site = {
    ...sim.site,
    ...(setup.pinMgmtKey !== false ? { mgmt_host_key: await sim.mgmtHostKey() } : {}),
    slack_channels: [CHANNEL],
    jumphost: { ...sim.site.jumphost, ...(setup.hostKey !== undefined ? { host_key: setup.hostKey } : {}) },
  };
  if (setup.replaceMgmtKey === true) await sim.replaceMgmtHostKey();
  const file = path.join(dir, `${sim.site.name}-${sims.length}.yaml`);
  await writeFile(file, stringify(site));
  const r = await spawnCollecting(process.execPath, [BIN, 'doctor', '--site', file], {
    env: {
      ...process.env,
      COMMANDS_DIR: COMMANDS,
      REDIS_URL: `redis://127.0.0.1:${(setup.redis ?? ready).port}`,
      QUEUE_PREFIX: PREFIX,
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_API_URL: slack.url,
      SITE_FILE: '',
    },
  }).done;
  const failing = r.stdout
    .split('\n')
    .filter((l) => /^ {2}(FAIL|WARN) /.test(l))
    .map((l) => l.trim().replace(/\s{2,}/g, ' | '));
  return { ...r, failing };
}

describe('capi-chatops doctor', () => {
  it('should pass every check on a ready site and keep the report for the Home tab', async () => {
    const r = await doctor();
    expect(r.stderr).toBe('');
    expect(r.failing).toEqual([]);
    expect(r.code).toBe(0);
    const checks = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('  ok '))
      .map((l) => l.slice(8).split(/\s{2,}/)[0]);
    expect(checks).toEqual([
      'jumphost reachable',
      'jumphost host key',
      'login shell and PATH',
      'tool openstack',
      'tool kubectl',
      'tool ssh',
      'tool juju',
      'admin scope token',
      'project scope token',
      'mgmt VM FIP',
      'mgmt VM host key',
      'mgmt kubeconfig',
      'juju login',
      'redis version',
      'redis persistence',
      'redis eviction',
      'slack token',
      'slack scopes',
      `slack channel ${CHANNEL}`,
    ]);
    expect(r.stdout).toMatch(/ok +tool openstack +\S+\/bin\/openstack, 7\.4\.0 \(tested with openstack 7\.x/);
    expect(r.stdout).toMatch(
      /ok +juju login +valid: juju status -m openstack answers without a password prompt/,
    );
    expect(r.stdout).toMatch(/ok +redis persistence +AOF on \(appendfsync everysec\)/);
    expect(r.stdout).toMatch(/ok +mgmt VM host key +the VM presents the pinned mgmt_host_key/);
    expect(r.stdout).toMatch(/site sim-healthy: 19 ok\n$/);

    const kept = new Redis({ port: ready.port, host: '127.0.0.1' });
    try {
      const report = DoctorReportSchema.parse(
        JSON.parse((await kept.get(`${PREFIX}:doctor:sim-healthy`)) ?? ''),
      );
      expect(report.lines).toHaveLength(19);
      expect(report.lines.every((l) => l.level === 'ok')).toBe(true);
    } finally {
      await kept.del(`${PREFIX}:doctor:sim-healthy`);
      kept.disconnect();
    }
  });

  it('should fail on the host key line alone and send nothing when the jumphost presents another key', async () => {
    const r = await doctor({ hostKey: `SHA256:${'A'.repeat(43)}` });
    expect(r.code).toBe(2);
    expect(r.failing).toEqual([
      expect.stringMatching(
        /^FAIL \| jumphost host key \| root@127\.0\.0\.1:\d+ presented SHA256:\S+, but the site pins SHA256:A{43}; nothing else was checked, nothing was sent$/,
      ),
    ]);
    expect(r.stdout).toContain('fix: If the jumphost was rebuilt, read its new key out of band');
  });

  it('should fail on the mgmt VM host key line when another machine answers on its address', async () => {
    const r = await doctor({ replaceMgmtKey: true });
    expect(r.code).toBe(2);
    expect(r.failing).toEqual([
      expect.stringMatching(/^FAIL \| mgmt VM host key \| mgmt-host-key: exit 255: .*capi-mgmt-sim-healthy/),
    ]);
    expect(r.stdout).toContain('fix: the mgmt VM answered with a host key other than the one on record');
  });

  it('should warn, with how to pin it, when the mgmt VM host key is neither pinned nor seen before', async () => {
    const r = await doctor({ pinMgmtKey: false });
    expect(r.code).toBe(1);
    expect(r.failing).toEqual([
      expect.stringMatching(
        /^WARN \| mgmt VM host key \| not pinned \(mgmt_host_key\) and never seen from this jumphost \(~\/\.capi-chatops\/known_hosts\/sim-healthy\): the first run will trust whatever answers on 127\.0\.0\.1$/,
      ),
    ]);
  });

  it('should fail on the kubectl line, naming what refuses without it, when the jumphost lacks kubectl', async () => {
    // A ready site but for kubectl (the shipped no-kubectl scenario is the outage).
    const scenario = path.join(dir, 'ready-no-kubectl.yaml');
    await writeFile(
      scenario,
      'name: ready-no-kubectl\nextends: healthy\njumphost:\n  missing_tools: [kubectl]\n',
    );
    const r = await doctor({ scenario });
    expect(r.code).toBe(2);
    expect(r.failing).toEqual([
      expect.stringMatching(
        /^FAIL \| tool kubectl \| not on the PATH commands get(, though a login shell finds it at \S+)?; refused without it: recover, stuck-delete; not observable without it: its steps in diagnose$/,
      ),
      // The kubeconfig is there, but nothing can read it without kubectl.
      'WARN | mgmt kubeconfig | not checked: kubectl is not on the PATH (see tool kubectl)',
    ]);
  });

  it('should fail on the juju login line with the juju login fix when the macaroon expired', async () => {
    const r = await doctor({ scenario: 'juju-login-expired' });
    expect(r.code).toBe(2);
    expect(r.failing).toEqual([
      expect.stringMatching(
        /^FAIL \| juju login \| juju-macaroon: exit 1: .*cannot get discharge from .*: EOF$/,
      ),
    ]);
    expect(r.stdout).toContain('fix: the juju login expired: run `juju login` on the jumphost');
  });

  it('should fail on the persistence line when Redis runs without AOF', async () => {
    const r = await doctor({ redis: noAof });
    expect(r.code).toBe(2);
    expect(r.failing).toEqual([
      'FAIL | redis persistence | AOF is off and so are RDB snapshots: a Redis restart loses runs, locks, approvals and attempt records',
    ]);
    expect(r.stdout).toContain('fix: Set appendonly yes and appendfsync everysec');
  });

  it('should fail on the channel line when the bot is not in the incident channel', async () => {
    const r = await doctor({ botChannels: [] });
    expect(r.code).toBe(2);
    expect(r.failing).toEqual([
      `FAIL | slack channel ${CHANNEL} | the bot is not a member of #incident-c0incident1: it cannot post the runs' threads there`,
    ]);
    expect(r.stdout).toContain('fix: Invite it: /invite @capi-bot in #incident-c0incident1.');
  });
});
