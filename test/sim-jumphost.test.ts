import { existsSync } from 'node:fs';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type SimJumphost, startSimJumphost } from '../dev/sim/jumphost.js';
import { parseSiteProfile } from '../src/config/site.js';
import { shellQuote } from '../src/ssh/quote.js';
import type { JumphostTarget } from '../src/ssh/types.js';
import { eventually } from './support/eventually.js';
import { spawnCollecting } from './support/process.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bash -c '<script>'` in a jumphost session, the way the runbook engine does. */
function session(target: JumphostTarget, script: string): Promise<Run> {
  const args = [
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-i',
    target.privateKeyPath,
    '-p',
    String(target.port),
    `${target.user}@${target.host}`,
    `bash -c ${shellQuote(script)}`,
  ];
  // The product closes stdin (DOCFIX-021); so do we.
  return spawnCollecting('ssh', args).done;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

const capiScope = (pid: string) =>
  `source ~/admin-openrc; unset OS_PROJECT_ID OS_TENANT_ID OS_TENANT_NAME OS_PROJECT_DOMAIN_ID; export OS_PROJECT_ID=${pid}; unset OS_PROJECT_NAME OS_PROJECT_DOMAIN_NAME`;

beforeAll(() => {
  if (!existsSync('/usr/sbin/sshd'))
    throw new Error('openssh-server (/usr/sbin/sshd) is required for these tests');
});

describe('simulated jumphost with the mgmt VM up', () => {
  let sim: SimJumphost;
  beforeAll(async () => {
    sim = await startSimJumphost({ scenario: 'healthy', timeScale: 0.01 });
  });
  afterAll(async () => {
    await sim?.stop();
  });

  test('should answer openstack server show when the session sources admin-openrc', async () => {
    const r = await session(
      sim.target,
      `${capiScope(sim.site.capi_project_id)}; openstack server show ${sim.site.mgmt_server} -f value -c status`,
    );
    expect(r).toMatchObject({ code: 0, stdout: 'ACTIVE\n' });
    const admin = await session(
      sim.target,
      'source ~/admin-openrc && openstack loadbalancer amphora list -f value -c status',
    );
    expect(admin).toMatchObject({ code: 0, stdout: 'ALLOCATED\n' });
  });

  test('should describe a site profile the product accepts when the sim starts', () => {
    const site = parseSiteProfile(sim.site, 'sim');
    expect(site).toMatchObject({
      mgmt_fip: '127.0.0.1',
      mgmt_server: 'capi-mgmt-v2',
      mgmt_ssh_user: 'ubuntu',
      capi_project_id: 'c0ffee00c0ffee00c0ffee00c0ffee00',
      workload_cluster: 'capi-test-1',
      timing: { scale: 0.01 },
    });
    expect(JSON.stringify(sim.site)).not.toMatch(/\b10\.\d+\.\d+\.\d+\b/);
  });

  test('should reach k8s on the VM through the hop when the runbook block runs', async () => {
    const s = sim.site;
    const hop = `ssh -i ${s.mgmt_ssh_key} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 -p ${s.mgmt_ssh_port} ${s.mgmt_ssh_user}@${s.mgmt_fip}`;
    const r = await session(sim.target, `${hop} 'uptime; sudo k8s status 2>&1 </dev/null | head -4'`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ up .*\ncluster status: {11}ready\n/);
    const kube = await session(
      sim.target,
      `export KUBECONFIG="$HOME/capi-mgmt.kubeconfig"; kubectl get pods -A | egrep 'capi-|capo-|cert-manager|orc-system|janitor|addon' | wc -l`,
    );
    expect(kube.stdout.trim()).toBe('10');
  });
});

describe('simulated jumphost booting a parked mgmt VM', () => {
  let sim: SimJumphost;
  beforeAll(async () => {
    // parked: sshd 60 s, k8s ready 240 s after start => 1.2 s and 4.8 s at this scale.
    sim = await startSimJumphost({ scenario: 'parked', timeScale: 0.02 });
  });
  afterAll(async () => {
    await sim?.stop();
  });

  const hop = (cmd: string) => {
    const s = sim.site;
    return `ssh -i ${s.mgmt_ssh_key} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p ${s.mgmt_ssh_port} ${s.mgmt_ssh_user}@${s.mgmt_fip} ${shellQuote(cmd)}`;
  };

  test('should refuse the hop when the VM is still off', async () => {
    expect(await tcpOpen(sim.site.mgmt_ssh_port)).toBe(false);
    const r = await session(sim.target, `${hop('sudo k8s status </dev/null')}; echo "rc=$?"`);
    expect(r.stdout).toBe('rc=255\n');
    expect(r.stderr).toBe(
      `ssh: connect to host 127.0.0.1 port ${sim.site.mgmt_ssh_port}: Connection refused\n`,
    );
  });

  test('should open the FIP listener once the VM sshd is up', async () => {
    const start = await session(
      sim.target,
      `${capiScope(sim.site.capi_project_id)}; openstack server start capi-mgmt-v2`,
    );
    expect(start).toMatchObject({ code: 0, stdout: '', stderr: '' });
    expect(await tcpOpen(sim.site.mgmt_ssh_port)).toBe(false);
    expect(
      await eventually('the mgmt VM FIP port to open', () => tcpOpen(sim.site.mgmt_ssh_port), {
        until: (up) => up,
        timeoutMs: 10_000,
      }),
    ).toBe(true);
    const probe = await session(
      sim.target,
      `timeout 5 bash -c 'exec 3<>/dev/tcp/${sim.site.mgmt_fip}/${sim.site.mgmt_ssh_port}' && echo SSH-PORT-OK`,
    );
    expect(probe.stdout).toBe('SSH-PORT-OK\n');
  });

  test('should answer sudo k8s status through the hop when sshd is up', async () => {
    const first = await session(sim.target, hop('sudo k8s status 2>&1 </dev/null | head -1'));
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(
      /^(cluster status: +(not ready|ready)|Error: failed to get cluster status: .*control\.socket.*)\n$/,
    );
    const ready = await eventually(
      'k8s to report ready through the hop',
      () => session(sim.target, hop('sudo k8s status 2>&1 </dev/null | head -1')),
      { until: (r) => r.stdout === 'cluster status:           ready\n', timeoutMs: 10_000 },
    );
    expect(ready.stdout).toBe('cluster status:           ready\n');
    const state = await sim.state();
    expect(state.mgmt.k8sReadyAt).not.toBeNull();
    expect(await sim.violations()).toEqual([]);
    expect((await sim.journal()).map((j) => [j.action, j.ok])).toEqual([['server.start', true]]);
  });
});

describe('simulated jumphost lifecycle', () => {
  test('should return the same promise and clean up when stop() is called twice', async () => {
    const sim = await startSimJumphost({ scenario: 'healthy', timeScale: 0.01 });
    const fip = sim.site.mgmt_ssh_port;
    const sshdPort = sim.target.port;
    expect(
      await eventually('the mgmt VM FIP port to open', () => tcpOpen(fip), {
        until: (up) => up,
        timeoutMs: 10_000,
      }),
    ).toBe(true);
    const a = sim.stop();
    const b = sim.stop();
    expect(b).toBe(a);
    await a;
    expect(existsSync(sim.dir)).toBe(false);
    expect(await tcpOpen(fip)).toBe(false);
    expect(await tcpOpen(sshdPort)).toBe(false);
  });

  test('should throw a clear error when the scenario does not exist', async () => {
    await expect(startSimJumphost({ scenario: 'no-such-scenario', timeScale: 0.01 })).rejects.toThrow(
      /no-such-scenario\.yaml not found \(known scenarios: .*outage/,
    );
  });
});
