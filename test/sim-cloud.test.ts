/**
 * The simulated cloud's stand-ins, called as child processes exactly as a jumphost session would
 * (`node dist/dev/sim/bin/X.js` with CAPI_SIM_DIR), without sshd. vitest builds dist/ first (test/support/build.ts).
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, test } from 'vitest';
import YAML from 'yaml';
import { newHostKey } from '../dev/sim/cloud/hostkey.js';
import { kubeconfigYaml, SIM_CLIENT_KEY_DATA } from '../dev/sim/cloud/kubeconfig.js';
import { pickAmphoraHost } from '../dev/sim/cloud/model.js';
import { instantiateScenario, loadScenario } from '../dev/sim/cloud/scenario.js';
import type { CloudState, JournalEntry, Violation } from '../dev/sim/cloud/schema.js';
import { readJournal, readViolations, withState, writeStateAtomic } from '../dev/sim/cloud/store.js';
import { simBinPath as bin } from '../dev/sim/jumphost.js';
import { eventually } from './support/eventually.js';
import { spawnCollecting } from './support/process.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCENARIOS = path.join(ROOT, 'dev', 'sim', 'scenarios');

const CAPI_PID = 'c0ffee00c0ffee00c0ffee00c0ffee00';
const NS = `magnum-${CAPI_PID}`;
const KUBE_LB = '1b000000-0000-4000-8000-000000000001';
const INGRESS_LB = '1b000000-0000-4000-8000-000000000002';
const OLD_AMP = 'a0000000-0000-4000-8000-0000000000a1';
const OLD_AMP_SERVER = '5e000000-0000-4000-8000-0000000000a1';
const ZOMBIE_ERROR = '5e000000-0000-4000-8000-0000000000e1';
const ZOMBIE_ACTIVE = '5e000000-0000-4000-8000-0000000000e2';
const COMPUTE0 = 'compute-0.sim.internal';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Sim {
  dir: string;
  home: string;
  /** `openstack` in admin scope (as after `source ~/admin-openrc`). */
  admin(...args: string[]): Promise<Run>;
  /** `openstack` in the capi project scope (OS_PROJECT_ID exported, project name unset). */
  capi(...args: string[]): Promise<Run>;
  kubectl(...args: string[]): Promise<Run>;
  tool(
    name: string,
    args: readonly string[],
    env?: Record<string, string>,
    input?: string | null,
  ): Promise<Run>;
  patch(fn: (s: CloudState) => void): void;
  journal(): JournalEntry[];
  violations(): Violation[];
}

const dirs: string[] = [];

function exec(
  file: string,
  args: readonly string[],
  env: Record<string, string>,
  input: string | null = '',
): Promise<Run> {
  return spawnCollecting(process.execPath, [file, ...args], { env, input }).done;
}

async function makeSim(scenario: string, timeScale: number): Promise<Sim> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-sim-test-'));
  dirs.push(dir);
  const home = path.join(dir, 'home');
  await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
  await mkdir(path.join(dir, 'vm-bin'), { recursive: true });
  const state = instantiateScenario(loadScenario(scenario, SCENARIOS), Date.now(), timeScale);
  writeStateAtomic(dir, state);
  await writeFile(path.join(home, 'capi-mgmt.kubeconfig'), kubeconfigYaml('https://127.0.0.1:6443'), {
    mode: 0o600,
  });
  await writeFile(path.join(home, '.ssh', 'id_ed25519'), 'fake key\n', { mode: 0o600 });
  for (const name of ['sudo', 'k8s']) {
    await writeFile(
      path.join(dir, 'vm-bin', name),
      `#!/bin/sh\nexport CAPI_SIM_DIR='${dir}'\nexec '${process.execPath}' '${bin(name)}' "$@"\n`,
      { mode: 0o755 },
    );
  }
  const base = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, CAPI_SIM_DIR: dir };
  const creds = {
    OS_AUTH_URL: 'https://127.0.0.1:5000/v3',
    OS_USERNAME: 'admin',
    OS_PASSWORD: state.auth.password,
    OS_USER_DOMAIN_NAME: 'admin_domain',
  };
  const tool = (
    name: string,
    args: readonly string[],
    env: Record<string, string> = {},
    input: string | null = '',
  ) => exec(bin(name), args, { ...base, ...env }, input);
  return {
    dir,
    home,
    admin: (...args) =>
      tool('openstack', args, { ...creds, OS_PROJECT_NAME: 'admin', OS_PROJECT_DOMAIN_NAME: 'admin_domain' }),
    capi: (...args) => tool('openstack', args, { ...creds, OS_PROJECT_ID: CAPI_PID }),
    kubectl: (...args) => tool('kubectl', args, { KUBECONFIG: path.join(home, 'capi-mgmt.kubeconfig') }),
    tool,
    patch: (fn) => withState(dir, fn),
    journal: () => readJournal(dir),
    violations: () => readViolations(dir),
  };
}

/** `openstack coe cluster show capi-test-1 -f value -c health_status_reason` in the capi project scope. */
const healthStatusReason = (sim: Sim) =>
  sim.capi('coe', 'cluster', 'show', 'capi-test-1', '-f', 'value', '-c', 'health_status_reason');

function hostUsed(run: Run, host: string): number {
  const rows = YAML.parse(run.stdout) as Record<string, unknown>[];
  return Number(rows.find((r) => r['Hypervisor Hostname'] === host)?.['Memory MB Used']);
}

afterAll(async () => {
  if (process.env.CAPI_SIM_KEEP === '1') return;
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe.concurrent('openstack output formats', () => {
  test('should print only the value when -f value -c status is used', async ({ expect }) => {
    const sim = await makeSim('healthy', 1);
    const r = await sim.capi('server', 'show', 'capi-mgmt-v2', '-f', 'value', '-c', 'status');
    expect(r).toMatchObject({ code: 0, stdout: 'ACTIVE\n', stderr: '' });
  });

  test("should keep the command's column order when several -c are given", async ({ expect }) => {
    const sim = await makeSim('outage', 1);
    const r = await sim.capi(
      'loadbalancer',
      'show',
      KUBE_LB,
      '-f',
      'value',
      '-c',
      'provisioning_status',
      '-c',
      'operating_status',
    );
    expect(r.stdout).toBe('ONLINE\nERROR\n');
  });

  test('should emit real column headers when list output is json or yaml', async ({ expect }) => {
    const sim = await makeSim('outage', 1);
    const long = await sim.admin('server', 'list', '--all-projects', '--long', '-f', 'json');
    const rows = JSON.parse(long.stdout) as Record<string, unknown>[];
    expect(Object.keys(rows[0] ?? {})).toEqual([
      'ID',
      'Name',
      'Status',
      'Task State',
      'Power State',
      'Networks',
      'Image Name',
      'Image ID',
      'Flavor Name',
      'Flavor ID',
      'Availability Zone',
      'Host',
      'Properties',
    ]);
    const zombie = rows.find((r) => r.ID === ZOMBIE_ACTIVE);
    expect(zombie).toMatchObject({
      Name: 'amphora-a0000000-0000-4000-8000-0000000000e2',
      Status: 'ACTIVE',
      'Image Name': 'amphora-haproxy-x86_64-ubuntu-22.04-20260601',
      Host: COMPUTE0,
    });
    const hyp = await sim.admin('hypervisor', 'list', '--long', '-f', 'yaml');
    expect(hyp.stdout).toMatch(
      /^- Host IP: 127\.0\.0\.10\n {2}Hypervisor Hostname: compute-0\.sim\.internal\n/,
    );
    expect(hostUsed(hyp, COMPUTE0)).toBe(40448);
    const lbs = YAML.parse((await sim.capi('loadbalancer', 'list', '-f', 'yaml')).stdout) as unknown[];
    expect(lbs).toEqual([
      {
        id: KUBE_LB,
        name: `k8s-clusterapi-cluster-${NS}-capi-test-1-q8w4n-kubeapi`,
        operating_status: 'ONLINE',
        project_id: CAPI_PID,
        provider: 'amphora',
        provisioning_status: 'ERROR',
        vip_address: '127.0.10.50',
      },
    ]);
  });

  test('should print space-separated rows when a list uses -f value', async ({ expect }) => {
    const sim = await makeSim('outage', 1);
    const r = await sim.admin('loadbalancer', 'amphora', 'list', '-f', 'value', '-c', 'id', '-c', 'status');
    expect(r.stdout).toBe(`${OLD_AMP} ERROR\n`);
  });

  test('should print a python dict when health_status_reason is shown with -f value', async ({ expect }) => {
    const sim = await makeSim('healthy', 1);
    const value = await healthStatusReason(sim);
    expect(value.stdout).toBe(
      "{'capi-test-1.cluster': 'Ready', 'capi-test-1.controlplane': 'Ready', 'capi-test-1.nodegroup.default-worker': 'Ready', 'capi-test-1.infrastructure': 'Infrastructure resource not found.'}\n",
    );
    const json = JSON.parse((await sim.capi('coe', 'cluster', 'show', 'capi-test-1', '-f', 'json')).stdout);
    expect(json.health_status).toBe('UNHEALTHY');
    expect(json.health_status_reason['capi-test-1.infrastructure']).toBe(
      'Infrastructure resource not found.',
    );
  });

  test('should fail like cliff when no requested column exists', async ({ expect }) => {
    const sim = await makeSim('healthy', 1);
    const r = await sim.capi('server', 'show', 'capi-mgmt-v2', '-f', 'value', '-c', 'nope');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("No recognized column names in ['nope']");
  });

  test('should exit 2 with the openstackclient message when the command is unknown', async ({ expect }) => {
    const sim = await makeSim('healthy', 1);
    const r = await sim.admin('foo', 'bar');
    expect(r).toMatchObject({
      code: 2,
      stderr: "openstack: 'foo bar' is not an openstack command. See 'openstack --help'.\n",
    });
  });
});

describe.concurrent('keystone scope', () => {
  test('should refuse to run when the openrc was not sourced', async ({ expect }) => {
    const sim = await makeSim('healthy', 1);
    const r = await sim.tool('openstack', ['server', 'list']);
    expect(r).toMatchObject({
      code: 1,
      stderr: 'Missing value auth-url required for auth plugin password\n',
    });
  });

  test('should answer 403 when amphora and failover calls run in the capi project scope', async ({
    expect,
  }) => {
    const sim = await makeSim('outage', 1);
    const list = await sim.capi('loadbalancer', 'amphora', 'list');
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(/\(HTTP 403\)/);
    const failover = await sim.capi('loadbalancer', 'failover', KUBE_LB);
    expect(failover.code).toBe(1);
    expect(failover.stderr).toMatch(/\(HTTP 403\)/);
    expect(sim.journal().at(-1)).toMatchObject({
      action: 'loadbalancer.failover',
      ok: false,
      scope: { projectId: CAPI_PID },
    });
  });

  test('should list only the effective project servers when --all-projects is absent', async ({ expect }) => {
    const sim = await makeSim('outage', 1);
    const admin = await sim.admin('server', 'list', '-f', 'value', '-c', 'Name');
    expect(admin.stdout).toBe('');
    const capi = await sim.capi('server', 'list', '-f', 'value', '-c', 'Name');
    expect(capi.stdout.split('\n')).toContain('capi-mgmt-v2');
    expect(capi.stdout).not.toContain('amphora-');
    const all = await sim.capi('server', 'list', '--all-projects');
    expect(all.code).toBe(1);
  });

  test('should not resolve an amphora by name but delete it by UUID when in admin scope', async ({
    expect,
  }) => {
    const sim = await makeSim('outage', 1);
    const byName = await sim.admin('server', 'delete', 'amphora-a0000000-0000-4000-8000-0000000000e1');
    expect(byName.code).toBe(1);
    expect(byName.stderr).toContain(
      "No server with a name or ID of 'amphora-a0000000-0000-4000-8000-0000000000e1' exists.",
    );
    const byId = await sim.admin('server', 'delete', ZOMBIE_ERROR);
    expect(byId).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const hyp = await sim.admin('hypervisor', 'list', '--long', '-f', 'yaml');
    expect(hostUsed(hyp, COMPUTE0)).toBe(40448 - 1024);
    expect(sim.journal().map((j) => [j.action, j.target, j.ok])).toEqual([
      ['server.delete', 'amphora-a0000000-0000-4000-8000-0000000000e1', false],
      ['server.delete', ZOMBIE_ERROR, true],
    ]);
    expect(sim.violations()).toEqual([]);
  });
});

describe.concurrent('mgmt VM boot', () => {
  test('should move through power-on, API convergence and readiness when timestamps pass', async ({
    expect,
  }) => {
    const sim = await makeSim('parked', 1);
    const refused = await sim.kubectl('get', 'nodes');
    expect(refused).toMatchObject({
      code: 1,
      stderr:
        'The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?\n',
    });
    const parkedReason = await healthStatusReason(sim);
    expect(parkedReason.stdout).toBe('{}\n');
    expect((await sim.capi('server', 'start', 'capi-mgmt-v2')).code).toBe(0);
    const powering = JSON.parse((await sim.capi('server', 'show', 'capi-mgmt-v2', '-f', 'json')).stdout);
    expect(powering).toMatchObject({ status: 'SHUTOFF', 'OS-EXT-STS:task_state': 'powering-on' });
    const again = await sim.capi('server', 'start', 'capi-mgmt-v2');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/while it is in task_state powering-on \(HTTP 409\)/);

    // Jump the clock by rewriting the milestones instead of waiting on them.
    const now = Date.now();
    sim.patch((s) => {
      s.timeScale = 0.001;
      for (const srv of s.servers) if (srv.id === s.mgmt.serverId) srv.transition = null;
      s.mgmt.sshdAt = now - 1;
      s.mgmt.apiAt = now - 1;
      s.mgmt.k8sReadyAt = now + 3_600_000;
    });
    expect((await sim.capi('server', 'show', 'capi-mgmt-v2', '-f', 'value', '-c', 'status')).stdout).toBe(
      'ACTIVE\n',
    );
    const converging = await sim.kubectl('get', 'nodes');
    expect(converging).toMatchObject({
      code: 1,
      stderr: 'Unable to connect to the server: net/http: TLS handshake timeout\n',
    });
    sim.patch((s) => {
      s.mgmt.k8sReadyAt = Date.now() - 1;
    });
    const nodes = await sim.kubectl('get', 'nodes', '-o', 'wide');
    expect(nodes.code).toBe(0);
    expect(nodes.stdout).toMatch(/^NAME +STATUS +ROLES +AGE +VERSION +INTERNAL-IP/);
    expect(nodes.stdout).toMatch(
      /\ncapi-mgmt-v2 +Ready +control-plane,worker +\S+ +v1\.32\.3 +127\.0\.5\.10 /,
    );
    const health = await healthStatusReason(sim);
    expect(health.stdout).toContain("'capi-test-1.infrastructure': 'Infrastructure resource not found.'");

    expect((await sim.capi('server', 'stop', 'capi-mgmt-v2')).code).toBe(0);
    expect((await sim.kubectl('get', 'nodes')).stderr).toMatch(/127\.0\.0\.1:6443 was refused/);
    const stopAgain = await sim.capi('server', 'stop', 'capi-mgmt-v2');
    expect(stopAgain.stderr).toMatch(
      /Cannot 'stop' instance \S+ while it is in vm_state stopped \(HTTP 409\)/,
    );
  });

  test('should become ready on its own when the scaled boot time has elapsed', async ({ expect }) => {
    const sim = await makeSim('parked', 0.002);
    expect((await sim.capi('server', 'start', 'capi-mgmt-v2')).code).toBe(0);
    const status = await eventually(
      'capi-mgmt-v2 to be ACTIVE',
      () => sim.capi('server', 'show', 'capi-mgmt-v2', '-f', 'value', '-c', 'status'),
      { until: (r) => r.stdout === 'ACTIVE\n', timeoutMs: 8000 },
    );
    expect(status.stdout).toBe('ACTIVE\n');
    const nodes = await eventually('the mgmt cluster to answer kubectl', () => sim.kubectl('get', 'nodes'), {
      until: (r) => r.code === 0,
      timeoutMs: 8000,
    });
    expect(nodes.stdout).toContain('capi-mgmt-v2');
    expect(sim.journal()).toEqual([
      expect.objectContaining({
        tool: 'openstack',
        action: 'server.start',
        target: 'capi-mgmt-v2',
        ok: true,
      }),
    ]);
  });

  test('should fall back to localhost:8080 like kubectl when no kubeconfig exists', async ({ expect }) => {
    const sim = await makeSim('healthy', 1);
    const r = await sim.tool('kubectl', ['get', 'nodes'], {
      KUBECONFIG: path.join(sim.home, 'missing.kubeconfig'),
    });
    expect(r.stderr).toBe(
      'The connection to the server localhost:8080 was refused - did you specify the right host or port?\n',
    );
  });
});

describe.concurrent('octavia failover', () => {
  test('should fail fast and mint a zombie when no host has headroom', async ({ expect }) => {
    const sim = await makeSim('outage', 0.001);
    expect((await sim.admin('loadbalancer', 'failover', KUBE_LB)).code).toBe(0);
    const prov = await eventually(
      'the kube LB provisioning_status to be ERROR',
      () => sim.admin('loadbalancer', 'show', KUBE_LB, '-f', 'value', '-c', 'provisioning_status'),
      { until: (r) => r.stdout === 'ERROR\n', timeoutMs: 8000 },
    );
    expect(prov.stdout).toBe('ERROR\n');
    const servers = JSON.parse(
      (await sim.admin('server', 'list', '--all-projects', '-f', 'json')).stdout,
    ) as {
      ID: string;
      Name: string;
      Status: string;
    }[];
    const minted = servers.find((s) => s.Name === 'amphora-a0000000-0000-4000-8000-0000f0000001');
    expect(minted).toMatchObject({ ID: '5e000000-0000-4000-8000-0000f0000001', Status: 'ERROR' });
    const amps = JSON.parse((await sim.admin('loadbalancer', 'amphora', 'list', '-f', 'json')).stdout) as {
      id: string;
    }[];
    expect(amps.map((a) => a.id)).toEqual([OLD_AMP]);
    expect((await sim.admin('loadbalancer', 'failover', KUBE_LB)).code).toBe(0);
    expect(sim.violations().map((v) => v.rule)).toEqual([
      'failover-without-headroom',
      'failover-without-headroom',
      'failover-retry-after-error',
    ]);
  });

  test('should replace and reap the amphora when a failover runs after the zombie sweep', async ({
    expect,
  }) => {
    // 108 s => 3.2 s: wide enough to observe PENDING_UPDATE even on a loaded machine.
    const sim = await makeSim('outage', 0.03);
    expect((await sim.admin('server', 'delete', ZOMBIE_ERROR)).code).toBe(0);
    expect((await sim.admin('server', 'delete', ZOMBIE_ACTIVE)).code).toBe(0);
    expect(hostUsed(await sim.admin('hypervisor', 'list', '--long', '-f', 'yaml'), COMPUTE0)).toBe(38400);
    expect((await sim.admin('loadbalancer', 'failover', KUBE_LB)).code).toBe(0);
    const pending = await sim.admin('loadbalancer', 'show', KUBE_LB, '-f', 'json');
    expect(JSON.parse(pending.stdout)).toMatchObject({
      provisioning_status: 'PENDING_UPDATE',
      operating_status: 'ONLINE',
    });
    const again = await sim.admin('loadbalancer', 'failover', KUBE_LB);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(
      /^Invalid state PENDING_UPDATE of loadbalancer resource 1b0+-0000-4000-8000-0+1 \(HTTP 409\)/,
    );
    const done = await eventually(
      'the kube LB provisioning_status to be ACTIVE',
      () => sim.admin('loadbalancer', 'show', KUBE_LB, '-f', 'value', '-c', 'provisioning_status'),
      { until: (r) => r.stdout === 'ACTIVE\n', timeoutMs: 8000 },
    );
    expect(done.stdout).toBe('ACTIVE\n');
    const amps = YAML.parse((await sim.admin('loadbalancer', 'amphora', 'list', '-f', 'yaml')).stdout);
    expect(amps).toEqual([
      {
        ha_ip: '127.0.10.50',
        id: 'a0000000-0000-4000-8000-0000f0000001',
        lb_network_ip: 'fc00:1::1',
        loadbalancer_id: KUBE_LB,
        role: 'STANDALONE',
        status: 'ALLOCATED',
      },
    ]);
    const show = await sim.admin('server', 'show', OLD_AMP_SERVER);
    expect(show.stderr).toContain('No server with a name or ID of');
    expect(hostUsed(await sim.admin('hypervisor', 'list', '--long', '-f', 'yaml'), COMPUTE0)).toBe(38400);
    expect(sim.journal().map((j) => [j.action, j.ok])).toEqual([
      ['server.delete', true],
      ['server.delete', true],
      ['loadbalancer.failover', true],
      ['loadbalancer.failover', false],
    ]);
    expect(sim.violations()).toEqual([]);
  });

  test('should end in ERROR and leave a zombie when the scenario forces the outcome', async ({ expect }) => {
    const sim = await makeSim('failover-error', 0.001);
    const before = hostUsed(
      await sim.admin('hypervisor', 'list', '--long', '-f', 'yaml'),
      'compute-2.sim.internal',
    );
    expect((await sim.admin('loadbalancer', 'failover', KUBE_LB)).code).toBe(0);
    await eventually(
      'the kube LB provisioning_status to be ERROR',
      () => sim.admin('loadbalancer', 'show', KUBE_LB, '-f', 'value', '-c', 'provisioning_status'),
      { until: (r) => r.stdout === 'ERROR\n', timeoutMs: 8000 },
    );
    const after = hostUsed(
      await sim.admin('hypervisor', 'list', '--long', '-f', 'yaml'),
      'compute-2.sim.internal',
    );
    expect(after).toBe(before + 1024);
    const zombie = await sim.admin(
      'server',
      'show',
      '5e000000-0000-4000-8000-0000f0000001',
      '-f',
      'value',
      '-c',
      'status',
    );
    expect(zombie.stdout).toBe('ACTIVE\n');
    const amps = await sim.admin('loadbalancer', 'amphora', 'list', '-f', 'value', '-c', 'id');
    expect(amps.stdout).toBe(`${OLD_AMP}\n`);
  });

  test('should record concurrent-failover when a second LB fails over while one is pending', async ({
    expect,
  }) => {
    const sim = await makeSim('reappearing-amphora', 0.03);
    expect((await sim.admin('server', 'delete', ZOMBIE_ERROR)).code).toBe(0);
    expect((await sim.admin('loadbalancer', 'failover', KUBE_LB)).code).toBe(0);
    expect((await sim.admin('loadbalancer', 'failover', INGRESS_LB)).code).toBe(0);
    expect(sim.violations().map((v) => v.rule)).toContain('concurrent-failover');
  });
});

describe.concurrent('amphora zombie sweep', () => {
  test('should show the reappearing amphora only from the second read on', async ({ expect }) => {
    const sim = await makeSim('reappearing-amphora', 1);
    const first = await sim.admin('loadbalancer', 'amphora', 'list', '-f', 'value', '-c', 'id');
    expect(first.stdout.split('\n')).not.toContain('a0000000-0000-4000-8000-0000000000e2');
    const second = await sim.admin('loadbalancer', 'amphora', 'list', '-f', 'value', '-c', 'id');
    expect(second.stdout.split('\n')).toContain('a0000000-0000-4000-8000-0000000000e2');
  });

  test('should record deleted-live-amphora when the candidate is deleted without a re-check', async ({
    expect,
  }) => {
    const sim = await makeSim('reappearing-amphora', 1);
    await sim.admin('loadbalancer', 'amphora', 'list', '-f', 'yaml');
    expect((await sim.admin('server', 'delete', ZOMBIE_ACTIVE)).code).toBe(0);
    expect(sim.violations()).toEqual([
      expect.objectContaining({ rule: 'deleted-live-amphora', target: ZOMBIE_ACTIVE, tool: 'openstack' }),
    ]);
  });
});

describe.concurrent('stuck delete', () => {
  test('should finalize the Cluster after the exact OpenStackCluster finalizer is cleared', async ({
    expect,
  }) => {
    const sim = await makeSim('stuck-delete', 0.001);
    const names = await sim.kubectl('-n', NS, 'get', 'openstackcluster', '-o', 'name');
    expect(names.stdout).toBe(
      [
        'openstackcluster.infrastructure.cluster.x-k8s.io/capi-test-1-q8w4n',
        'openstackcluster.infrastructure.cluster.x-k8s.io/capi-test-2-x7k2p',
        'openstackcluster.infrastructure.cluster.x-k8s.io/capi-test-20-ab3cd',
        '',
      ].join('\n'),
    );
    const osc = JSON.parse(
      (await sim.kubectl('-n', NS, 'get', 'openstackcluster', 'capi-test-2-x7k2p', '-o', 'json')).stdout,
    );
    expect(osc.metadata).toMatchObject({
      name: 'capi-test-2-x7k2p',
      namespace: NS,
      finalizers: ['openstackcluster.infrastructure.cluster.x-k8s.io'],
    });
    expect(osc.metadata.deletionTimestamp).toMatch(/Z$/);

    const inferred = await sim.kubectl(
      '-n',
      NS,
      'patch',
      'openstackcluster',
      'capi-test-2',
      '--type=merge',
      '-p',
      '{"metadata":{"finalizers":[]}}',
    );
    expect(inferred).toMatchObject({
      code: 1,
      stderr:
        'Error from server (NotFound): openstackclusters.infrastructure.cluster.x-k8s.io "capi-test-2" not found\n',
    });
    const patched = await sim.kubectl(
      '-n',
      NS,
      'patch',
      'openstackcluster',
      'capi-test-2-x7k2p',
      '--type=merge',
      '-p',
      '{"metadata":{"finalizers":[]}}',
    );
    expect(patched).toMatchObject({
      code: 0,
      stdout: 'openstackcluster.infrastructure.cluster.x-k8s.io/capi-test-2-x7k2p patched\n',
    });
    expect((await sim.kubectl('-n', NS, 'get', 'openstackcluster', 'capi-test-2-x7k2p')).code).toBe(1);
    const gone = await eventually(
      'the Cluster capi-test-2 to be gone',
      () => sim.kubectl('-n', NS, 'get', 'cluster', 'capi-test-2'),
      { until: (r) => r.code === 1, timeoutMs: 8000 },
    );
    expect(gone.stderr).toBe(
      'Error from server (NotFound): clusters.cluster.x-k8s.io "capi-test-2" not found\n',
    );
    expect((await sim.capi('coe', 'cluster', 'show', 'capi-test-2')).stderr).toMatch(
      /could not be found \(HTTP 404\)/,
    );
    expect((await sim.kubectl('-n', NS, 'get', 'openstackcluster', 'capi-test-20-ab3cd')).code).toBe(0);
    expect(sim.journal().map((j) => [j.tool, j.action, j.target, j.ok, j.scope.namespace])).toEqual([
      ['kubectl', 'kubectl.patch', 'openstackcluster/capi-test-2', false, NS],
      ['kubectl', 'kubectl.patch', 'openstackcluster/capi-test-2-x7k2p', true, NS],
    ]);
    expect(sim.violations().map((v) => v.rule)).toEqual(['patch-not-found']);
  });

  test('should refuse a strategic merge patch on a CRD and flag patching the decoy', async ({ expect }) => {
    const sim = await makeSim('stuck-delete', 1);
    const strategic = await sim.kubectl(
      '-n',
      NS,
      'patch',
      'openstackcluster',
      'capi-test-2-x7k2p',
      '-p',
      '{"metadata":{"finalizers":[]}}',
    );
    expect(strategic.code).toBe(1);
    expect(strategic.stderr).toContain('application/strategic-merge-patch+json is not supported');
    const decoy = await sim.kubectl(
      '-n',
      NS,
      'patch',
      'openstackcluster',
      'capi-test-20-ab3cd',
      '--type',
      'merge',
      '-p',
      '{"metadata":{"finalizers":[]}}',
    );
    expect(decoy.code).toBe(0);
    expect(sim.violations().map((v) => [v.rule, v.target])).toEqual([
      ['patched-live-object', 'openstackcluster/capi-test-20-ab3cd'],
    ]);
  });

  test('should list both candidates when two OpenStackClusters match the cluster name', async ({
    expect,
  }) => {
    const sim = await makeSim('stuck-delete-ambiguous', 1);
    const r = await sim.kubectl(
      '-n',
      NS,
      'get',
      'openstackcluster',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}',
    );
    expect(r.stdout.split('\n').filter((n) => /^capi-test-2-[a-z0-9]{5}$/.test(n))).toEqual(
      ['capi-test-2-m4q9z', 'capi-test-2-x7k2p'].sort(),
    );
  });

  test('should show the multi-kind table and the LB-timeout condition when the LB is in ERROR', async ({
    expect,
  }) => {
    const sim = await makeSim('outage', 1);
    sim.patch((s) => {
      const vm = s.servers.find((x) => x.id === s.mgmt.serverId);
      if (vm !== undefined) vm.status = 'ACTIVE';
      s.mgmt.sshdAt = s.mgmt.apiAt = s.mgmt.k8sReadyAt = Date.now() - 1;
    });
    const r = await sim.kubectl('-n', NS, 'get', 'cluster,openstackcluster,machines');
    expect(r.code).toBe(0);
    const blocks = r.stdout.split('\n\n');
    expect(blocks).toHaveLength(3);
    expect(blocks[0]).toMatch(/^NAME +CLUSTERCLASS +AVAILABLE +CP DESIRED/);
    expect(blocks[0]).toMatch(/\ncluster\.cluster\.x-k8s\.io\/capi-test-1 +False +1/);
    expect(blocks[1]).toMatch(
      /openstackcluster\.infrastructure\.cluster\.x-k8s\.io\/capi-test-1-q8w4n +capi-test-1 +true/,
    );
    expect(blocks[2]).toMatch(/machine\.cluster\.x-k8s\.io\/capi-test-1-control-plane-qh7vd +capi-test-1/);
    const cluster = JSON.parse(
      (await sim.kubectl('-n', NS, 'get', 'cluster', 'capi-test-1', '-o', 'json')).stdout,
    );
    const available = cluster.status.conditions.find((c: { type: string }) => c.type === 'Available');
    expect(available.status).toBe('False');
    expect(available.message).toMatch(/load balancer 1b0+-0000-4000-8000-0+1 .*provisioning_status ERROR/);
  });
});

describe.concurrent('neutron clean-up order', () => {
  test('should enforce the dependency order when orphaned resources are deleted', async ({ expect }) => {
    const sim = await makeSim('stuck-delete', 1);
    const name = `k8s-clusterapi-cluster-${NS}-capi-test-2-x7k2p`;
    const sg = `k8s-cluster-${NS}-capi-test-2-x7k2p-secgroup`;
    const early = await sim.capi('router', 'delete', name);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/Router ee2\S+ still has ports\n1 of 1 routers failed to delete\.\n$/);
    expect((await sim.capi('subnet', 'delete', name)).stderr).toContain(
      'One or more ports have an IP allocation from this subnet.',
    );
    expect((await sim.capi('network', 'delete', name)).stderr).toContain(
      'There are one or more ports still in use on the network.',
    );
    const steps = [
      ['router', 'remove', 'subnet', name, name],
      ['router', 'unset', '--external-gateway', name],
      ['router', 'delete', name],
      ['subnet', 'delete', name],
      ['network', 'delete', name],
      ['security', 'group', 'delete', `${sg}-controlplane`, `${sg}-worker`],
    ];
    for (const step of steps) {
      expect(await sim.capi(...step)).toMatchObject({ code: 0, stderr: '' });
    }
    const routers = await sim.capi('router', 'list', '-f', 'value', '-c', 'Name');
    expect(routers.stdout).not.toContain('capi-test-2-x7k2p');
    expect(sim.violations()).toEqual([]);
    expect(
      sim
        .journal()
        .filter((j) => j.ok)
        .map((j) => j.action),
    ).toEqual([
      'router.remove_subnet',
      'router.unset_external_gateway',
      'router.delete',
      'subnet.delete',
      'network.delete',
      'security_group.delete',
      'security_group.delete',
    ]);
  });

  test('should refuse to delete a security group still used by a port', async ({ expect }) => {
    const sim = await makeSim('stuck-delete', 1);
    const r = await sim.capi(
      'security',
      'group',
      'delete',
      `k8s-cluster-${NS}-capi-test-20-ab3cd-secgroup-controlplane`,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Security Group ee3\S+ in use\.\n1 of 1 groups failed to delete\.\n$/);
    expect(sim.violations().map((v) => v.rule)).toEqual(['touched-live-cluster-network']);
  });
});

describe.concurrent('hop ssh and the VM side', () => {
  async function withVmPort(sim: Sim): Promise<{ port: number; close: () => Promise<void> }> {
    const server = net.createServer((s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const addr = server.address();
    const port = addr !== null && typeof addr === 'object' ? addr.port : 0;
    sim.patch((s) => {
      s.mgmt.sshPort = port;
    });
    return { port, close: () => new Promise((r) => server.close(() => r())) };
  }

  const hopArgs = (port: number, ...cmd: string[]) => [
    '-i',
    '~/.ssh/id_ed25519',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-p',
    String(port),
    'ubuntu@127.0.0.1',
    ...cmd,
  ];

  test('should refuse a non-loopback destination without connecting', async ({ expect }) => {
    const sim = await makeSim('healthy', 1);
    const r = await sim.tool('ssh', ['-o', 'ConnectTimeout=1', 'ubuntu@192.0.2.10', 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(
      /^ssh: capi-sim refuses to connect to 192\.0\.2\.10: only loopback destinations/,
    );
    const jump = await sim.tool('ssh', ['-J', 'bastion', 'ubuntu@127.0.0.1', 'true']);
    expect(jump.code).toBe(255);
  });

  test('should report connection refused when nothing listens on the port', async ({ expect }) => {
    const sim = await makeSim('parked', 1);
    const { port, close } = await withVmPort(sim);
    await close();
    const r = await sim.tool('ssh', hopArgs(port, 'true'));
    expect(r).toMatchObject({
      code: 255,
      stderr: `ssh: connect to host 127.0.0.1 port ${port}: Connection refused\n`,
    });
  });

  test('should run the command on the VM when the port answers and stdin is closed', async ({ expect }) => {
    const sim = await makeSim('healthy', 1);
    const { port, close } = await withVmPort(sim);
    try {
      const r = await sim.tool(
        'ssh',
        hopArgs(port, 'uptime >/dev/null; sudo k8s status 2>&1 </dev/null | head -2'),
      );
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        'cluster status:           ready\ncontrol plane nodes:      127.0.5.10:6400 (voter)\n',
      );
      expect(r.stderr).toBe(
        `Warning: Permanently added '[127.0.0.1]:${port}' (ED25519) to the list of known hosts.\r\n`,
      );
      const noSudo = await sim.tool('ssh', hopArgs(port, 'k8s status'));
      expect(noSudo.code).toBe(1);
      const cfg = await sim.tool(
        'ssh',
        hopArgs(port, 'sudo k8s config server=https://127.0.0.1:6443 </dev/null'),
      );
      const kc = YAML.parse(cfg.stdout);
      expect(kc.clusters[0].cluster.server).toBe('https://127.0.0.1:6443');
      expect(kc.users[0].user['client-key-data']).toBe(SIM_CLIENT_KEY_DATA);
      const which = await sim.tool('ssh', hopArgs(port, 'command -v openstack || echo none'));
      expect(which.stdout).toBe('none\n');
      const wrongUser = await sim.tool('ssh', [
        ...hopArgs(port, 'true').slice(0, -2),
        'root@127.0.0.1',
        'true',
      ]);
      expect(wrongUser).toMatchObject({
        code: 255,
        stderr: expect.stringContaining('Permission denied (publickey).'),
      });
    } finally {
      await close();
    }
  });

  test("should check the VM's host key as OpenSSH does: record it on first use, refuse another, never run anything then", async ({
    expect,
  }) => {
    const sim = await makeSim('healthy', 1);
    const { port, close } = await withVmPort(sim);
    const known = path.join(sim.home, '.capi-chatops', 'known_hosts', 'lab1');
    const checked = (strict: string, file = known) => [
      '-n',
      '-i',
      '~/.ssh/id_ed25519',
      '-o',
      'BatchMode=yes',
      '-o',
      'HostKeyAlias=capi-mgmt-lab1',
      '-o',
      `StrictHostKeyChecking=${strict}`,
      '-o',
      `UserKnownHostsFile=${file}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=ERROR',
      '-p',
      String(port),
      'ubuntu@127.0.0.1',
      'echo ran-on-vm',
    ];
    const sessions = () => {
      let n = 0;
      sim.patch((s) => {
        n = s.mgmt.hopSessions;
      });
      return n;
    };
    try {
      let served = '';
      sim.patch((s) => {
        served = s.mgmt.hostKey;
      });
      // Strict, nothing on record: refused before anything runs.
      expect(await sim.tool('ssh', checked('yes'))).toMatchObject({
        code: 255,
        stdout: '',
        stderr:
          'No ED25519 host key is known for capi-mgmt-lab1 and you have requested strict checking.\r\nHost key verification failed.\r\n',
      });
      expect(sessions()).toBe(0);
      // accept-new: the first key is recorded under the alias (silently at LogLevel=ERROR), then checked.
      expect(await sim.tool('ssh', checked('accept-new'))).toMatchObject({
        code: 0,
        stdout: 'ran-on-vm\n',
        stderr: '',
      });
      expect(await readFile(known, 'utf8')).toBe(`capi-mgmt-lab1 ssh-ed25519 ${served}\n`);
      expect((await sim.tool('ssh', checked('yes'))).stdout).toBe('ran-on-vm\n');
      expect(sessions()).toBe(2);

      // Another machine on the address: a new key is refused in OpenSSH's words, and nothing runs.
      sim.patch((s) => {
        s.mgmt.hostKey = newHostKey();
      });
      const changed = await sim.tool('ssh', checked('accept-new'));
      expect(changed.code).toBe(255);
      expect(changed.stdout).toBe('');
      expect(changed.stderr).toContain('@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n');
      expect(changed.stderr).toContain(`Offending ED25519 key in ${known}:1\r\n`);
      expect(changed.stderr).toMatch(
        /Host key for capi-mgmt-lab1 has changed and you have requested strict checking\.\r\nHost key verification failed\.\r\n$/,
      );
      expect(sessions()).toBe(2);
      expect(await readFile(known, 'utf8')).toBe(`capi-mgmt-lab1 ssh-ed25519 ${served}\n`);

      // A hashed known_hosts line (HashKnownHosts yes) names the host just as well.
      let now = '';
      sim.patch((s) => {
        now = s.mgmt.hostKey;
      });
      const salt = Buffer.from('0123456789abcdef0123');
      const hash = createHmac('sha1', salt).update('capi-mgmt-lab1').digest('base64');
      const hashed = path.join(sim.home, 'hashed_known_hosts');
      await writeFile(hashed, `|1|${salt.toString('base64')}|${hash} ssh-ed25519 ${now}\n`);
      expect((await sim.tool('ssh', checked('yes', hashed))).stdout).toBe('ran-on-vm\n');
    } finally {
      await close();
    }
  });

  test('should hang and record stdin-not-closed when the caller leaves stdin open', async ({ expect }) => {
    const sim = await makeSim('healthy', 1);
    const { port, close } = await withVmPort(sim);
    try {
      const child = spawn(process.execPath, [bin('ssh'), ...hopArgs(port, 'echo ran')], {
        env: { PATH: process.env.PATH ?? '', HOME: sim.home, CAPI_SIM_DIR: sim.dir },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
      const seen = await eventually('a violation to be recorded', async () => sim.violations(), {
        until: (v) => v.length > 0,
        timeoutMs: 5000,
      });
      expect(seen.map((v) => v.rule)).toEqual(['stdin-not-closed']);
      expect(out).toBe('');
      child.stdin.end();
      expect(await exited).toBe(0);
      expect(out).toBe('ran\n');
      const withN = await sim.tool('ssh', ['-n', ...hopArgs(port, 'echo quick')], {}, null);
      expect(withN.stdout).toBe('quick\n');
    } finally {
      await close();
    }
  });
});

describe('scenario files', () => {
  test('should instantiate every scenario with the headroom each one promises', async ({ expect }) => {
    const names = (await readdir(SCENARIOS))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.replace(/\.yaml$/, ''));
    expect(names.sort()).toEqual([
      'appcred-frozen',
      'boot-slow',
      'conductor-broken',
      'failover-error',
      'haproxy-down',
      'healthy',
      'image-unlabelled',
      'juju-login-expired',
      'lb-error',
      'lb-pending',
      'magnum-unhealthy',
      'no-headroom',
      'no-juju',
      'no-kubectl',
      'outage',
      'parked',
      'reappearing-amphora',
      'stuck-delete',
      'stuck-delete-ambiguous',
    ]);
    const headroom: Record<string, boolean> = {};
    for (const name of names) {
      const state = instantiateScenario(loadScenario(name, SCENARIOS), Date.now(), 1);
      expect(state.scenario).toBe(name);
      headroom[name] = pickAmphoraHost(state) !== null;
    }
    expect(headroom).toMatchObject({
      healthy: true,
      'failover-error': true,
      'lb-error': true,
      outage: false,
      'no-headroom': false,
    });
  });

  test('should keep site addresses out of the simulator when its files are scanned', async ({ expect }) => {
    const files = [
      ...(await readdir(SCENARIOS)).map((f) => path.join(SCENARIOS, f)),
      ...(await readdir(path.join(ROOT, 'dev', 'sim', 'cloud'))).map((f) =>
        path.join(ROOT, 'dev', 'sim', 'cloud', f),
      ),
      ...(await readdir(path.join(ROOT, 'dev', 'sim', 'bin'))).map((f) =>
        path.join(ROOT, 'dev', 'sim', 'bin', f),
      ),
      path.join(ROOT, 'dev', 'sim', 'jumphost.ts'),
    ];
    for (const f of files) {
      const text = await readFile(f, 'utf8');
      expect(text, f).not.toMatch(/\b10\.12\.\d/);
    }
  });
});

describe('state files', () => {
  test('should write one JSON object per line when mutations are journalled', async ({ expect }) => {
    const sim = await makeSim('outage', 1);
    await sim.capi('server', 'start', 'capi-mgmt-v2');
    const lines = (await readFile(path.join(sim.dir, 'journal.jsonl'), 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0] ?? '');
    expect(entry).toEqual({
      ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      tool: 'openstack',
      argv: ['openstack', 'server', 'start', 'capi-mgmt-v2'],
      scope: { projectId: CAPI_PID },
      action: 'server.start',
      target: 'capi-mgmt-v2',
      ok: true,
    });
  });
});
