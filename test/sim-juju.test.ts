/**
 * The simulated juju 3.x client and its units, called from bash exactly as a jumphost session
 * would (the `juju` wrapper on PATH, CAPI_SIM_DIR set), without sshd: status in juju's JSON shape,
 * `juju ssh` into a unit's sandbox, haproxy's admin socket, systemctl and ps on the unit, the stale
 * macaroon. Mutations are asserted through the simulator's journal and violations.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { instantiateScenario, loadScenario } from '../dev/sim/cloud/scenario.js';
import type { CloudState } from '../dev/sim/cloud/schema.js';
import { readJournal, readState, readViolations, writeStateAtomic } from '../dev/sim/cloud/store.js';
import { materializeUnits } from '../dev/sim/cloud/units.js';
import { simBinPath } from '../dev/sim/jumphost.js';

const SCENARIOS = new URL('../dev/sim/scenarios/', import.meta.url).pathname;
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A simulated cloud on disk (state, units, the juju wrapper) and a bash to call it from. */
async function cloud(scenario: string, edit?: (s: CloudState) => void) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-juju-test-'));
  dirs.push(dir);
  const state = instantiateScenario(loadScenario(scenario, SCENARIOS), Date.now(), 0.01);
  edit?.(state);
  writeStateAtomic(dir, state);
  materializeUnits(dir, state.juju, { node: process.execPath, unitTool: simBinPath('unit-tool') });
  await mkdir(path.join(dir, 'bin'));
  await writeFile(
    path.join(dir, 'bin', 'juju'),
    `#!/bin/sh\nexport CAPI_SIM_DIR='${dir}'\nexec '${process.execPath}' '${simBinPath('juju')}' "$@"\n`,
    { mode: 0o755 },
  );
  const sh = (script: string): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', script], {
        env: { PATH: `${path.join(dir, 'bin')}:/usr/bin:/bin`, HOME: dir },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  return {
    dir,
    sh,
    state: () => readState(dir),
    journal: () => readJournal(dir),
    violations: () => readViolations(dir),
  };
}

const SHOW_STAT = `'echo "show stat" | sudo socat stdio /var/run/haproxy/admin.sock' </dev/null`;

describe('juju status', () => {
  it('should answer in juju 3.x JSON: principal units with their subordinates, subordinate apps without units', async () => {
    const c = await cloud('healthy');
    const r = await c.sh('juju status -m openstack --format json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.model).toMatchObject({ name: 'openstack', type: 'iaas', controller: 'sim-controller' });
    expect(doc.applications.keystone).toMatchObject({
      'charm-name': 'keystone',
      'charm-channel': '2024.1/stable',
      'application-status': { current: 'active' },
    });
    expect(doc.applications.keystone.units['keystone/1']).toMatchObject({
      'workload-status': { current: 'active', message: 'Unit is ready' },
      'juju-status': { current: 'idle' },
      machine: '1/lxd/3',
      'public-address': '127.0.4.22',
      subordinates: {
        'keystone-hacluster/1': expect.any(Object),
        'keystone-mysql-router/1': expect.any(Object),
      },
    });
    expect(doc.applications['keystone-hacluster']).toMatchObject({ 'subordinate-to': ['keystone'] });
    expect(doc.applications['keystone-hacluster'].units).toBeUndefined();
    expect(doc.machines['1'].containers['1/lxd/3']).toMatchObject({ 'dns-name': '127.0.4.22' });
    expect(doc.applications.keystone.units['keystone/0']['workload-status'].since).toMatch(
      /^\d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}Z$/,
    );
  });

  it('should refuse a model the controller does not have', async () => {
    const c = await cloud('healthy');
    const r = await c.sh('juju status -m admin/nosuch --format json');
    expect(r).toMatchObject({ code: 1, stderr: 'ERROR model sim-controller:admin/nosuch not found\n' });
  });

  it('should prompt for a password and fail with the discharge EOF when the macaroon is stale and stdin is closed', async () => {
    const c = await cloud('juju-login-expired');
    const r = await c.sh('juju status --format json </dev/null');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'please enter password for admin on sim-controller: \nERROR cannot get discharge from "https://127.0.0.1:17070/auth": EOF\n',
    );
    const ssh = await c.sh(`juju ssh keystone/0 'touch /etc/marker' </dev/null; echo "exit $?"`);
    expect(ssh.stdout).toBe('exit 1\n');
    expect(ssh.stderr).toMatch(/cannot get discharge from .*: EOF/);
    // whoami reads local files only: it still answers.
    expect((await c.sh('juju whoami')).stdout).toMatch(
      /^Controller: {2}sim-controller\nModel: {7}admin\/openstack\n/,
    );
  });
});

describe('juju ssh into a unit', () => {
  it('should run the command in the unit, whose files are its own and whose paths print as on the unit', async () => {
    const c = await cloud('healthy');
    const r = await c.sh(
      `juju ssh keystone/1 'grep -c "^backend " /etc/haproxy/haproxy.cfg; ls /etc/haproxy; cat /etc/hostname 2>&1; readlink -f /var/run/haproxy/admin.sock; echo "$HOME"' </dev/null`,
    );
    expect(r.stdout).toBe(
      '1\nhaproxy.cfg\ncat: /etc/hostname: No such file or directory\n/run/haproxy/admin.sock\n/home/ubuntu\n',
    );
    expect(r.stdout + r.stderr).not.toContain(c.dir);
  });

  it('should tell an unknown unit from a known one', async () => {
    const c = await cloud('healthy');
    const r = await c.sh(`juju ssh keystone/9 true </dev/null`);
    expect(r).toMatchObject({ code: 1, stderr: 'ERROR unit "keystone/9" not found\n' });
    const leader = await c.sh(`juju ssh keystone/leader 'echo "$CAPI_SIM_UNIT"' </dev/null`);
    expect(leader.stdout).toBe('keystone/0\n');
  });
});

describe("haproxy's admin socket and systemctl on a unit", () => {
  it('should refuse the admin socket without sudo, as its mode 600 does', async () => {
    const c = await cloud('healthy');
    const r = await c.sh(
      `juju ssh keystone/1 'echo "show stat" | socat stdio /var/run/haproxy/admin.sock' </dev/null`,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /socat\[\d+\] E connect\(5, AF=1 "\/var\/run\/haproxy\/admin\.sock", \d+\): Permission denied/,
    );
  });

  it("should print show stat in haproxy 2.4's CSV with the DOWN rows a stale haproxy reports", async () => {
    const c = await cloud('haproxy-down');
    const r = await c.sh(`juju ssh keystone/1 ${SHOW_STAT}`);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    const header = (lines[0] ?? '').replace(/^# /, '').split(',');
    expect(header.slice(0, 2)).toEqual(['pxname', 'svname']);
    expect(header[17]).toBe('status');
    expect(header[36]).toBe('check_status');
    for (const l of lines.slice(1)) {
      expect(l.endsWith(',')).toBe(true);
      expect(l.split(',')).toHaveLength(header.length + 1);
    }
    const field = (l: string, name: string) => l.split(',')[header.indexOf(name)];
    const servers = lines.slice(1).filter((l) => !/,(FRONTEND|BACKEND),/.test(l));
    expect(servers.map((l) => [field(l, 'svname'), field(l, 'status'), field(l, 'check_status')])).toEqual([
      ['keystone-0', 'DOWN', 'L7STS'],
      ['keystone-1', 'DOWN', 'L7STS'],
      ['keystone-2', 'DOWN', 'L7STS'],
    ]);
    expect(lines.find((l) => l.startsWith('keystone-public_127.0.4.22,BACKEND,'))).toContain(',DOWN,');
    const other = await c.sh(`juju ssh keystone/0 ${SHOW_STAT} | grep -c ',DOWN,'`);
    expect(other.stdout).toBe('0\n');
  });

  it('should bring the stale rows back UP on a reload by root, journalled once for that unit only', async () => {
    const c = await cloud('haproxy-down');
    const denied = await c.sh(`juju ssh keystone/1 'systemctl reload haproxy' </dev/null`);
    expect(denied.stderr).toMatch(
      /^Failed to reload haproxy\.service: Interactive authentication required\./,
    );
    const ok = await c.sh(
      `juju ssh keystone/1 'sudo systemctl reload haproxy && systemctl is-active haproxy' </dev/null`,
    );
    expect(ok).toMatchObject({ code: 0, stdout: 'active\n' });
    expect(c.journal().map((j) => [j.tool, j.action, j.target, j.ok])).toEqual([
      ['juju', 'haproxy.reload', 'keystone/1', false],
      ['juju', 'haproxy.reload', 'keystone/1', true],
    ]);
    const units = c.state().juju.units;
    expect(units.find((u) => u.name === 'keystone/1')?.haproxy).toMatchObject({ reloads: 1, restarts: 0 });
    expect(units.find((u) => u.name === 'keystone/1')?.haproxy?.rows.map((r) => r.status)).toEqual([
      'UP',
      'UP',
      'UP',
    ]);
    expect(units.find((u) => u.name === 'magnum/0')?.haproxy?.rows.some((r) => r.status === 'DOWN')).toBe(
      true,
    );
    expect(c.violations()).toEqual([]);
  });

  it('should record a violation for a restart and for a reload of a haproxy with nothing DOWN', async () => {
    const c = await cloud('haproxy-down');
    await c.sh(`juju ssh keystone/1 'sudo systemctl restart haproxy' </dev/null`);
    await c.sh(`juju ssh keystone/0 'sudo systemctl reload haproxy' </dev/null`);
    expect(c.violations().map((v) => [v.rule, v.target])).toEqual([
      ['restarted-haproxy', 'keystone/1'],
      ['reloaded-without-down-backend', 'keystone/0'],
    ]);
  });

  it('should refuse a reload with an invalid config, leave the rows DOWN and record the violation', async () => {
    const c = await cloud('haproxy-down', (s) => {
      const h = s.juju.units.find((u) => u.name === 'keystone/1')?.haproxy;
      if (h)
        Object.assign(h, {
          configValid: false,
          configAlert: "parsing [/etc/haproxy/haproxy.cfg:42] : unknown keyword 'serverr'",
        });
    });
    const check = await c.sh(`juju ssh keystone/1 'sudo haproxy -c -f /etc/haproxy/haproxy.cfg' </dev/null`);
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(
      /\[ALERT\] .* : parsing \[\/etc\/haproxy\/haproxy\.cfg:42\].*\n.*Fatal errors found in configuration\.\n$/,
    );
    const reload = await c.sh(`juju ssh keystone/1 'sudo systemctl reload haproxy' </dev/null`);
    expect(reload.stderr).toMatch(/^Job for haproxy\.service failed/);
    expect(c.violations().map((v) => v.rule)).toEqual(['reloaded-invalid-config']);
    expect(
      c
        .state()
        .juju.units.find((u) => u.name === 'keystone/1')
        ?.haproxy?.rows.every((r) => r.status === 'DOWN'),
    ).toBe(true);
  });
});

describe('magnum-conductor and helm on a unit', () => {
  const PROBE = `'ps -ww -C magnum-conductor -o args | sed -n 2p; /etc/init.d/magnum-conductor show-args; env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c "command -v helm"; echo "login: $(command -v helm)"' </dev/null`;

  it('should show the launched command line, the init assembly and helm where a healthy unit has them', async () => {
    const c = await cloud('healthy');
    const r = await c.sh(`juju ssh magnum/0 ${PROBE}`);
    expect(r.stdout).toBe(
      [
        '/usr/bin/python3 /usr/bin/magnum-conductor --config-file=/etc/magnum/magnum.conf --log-file=/var/log/magnum/magnum-conductor.log --config-dir /etc/magnum/magnum.conf.d',
        '/usr/bin/magnum-conductor --config-file=/etc/magnum/magnum.conf --log-file=/var/log/magnum/magnum-conductor.log --config-dir /etc/magnum/magnum.conf.d',
        '/usr/bin/helm',
        'login: /usr/local/bin/helm',
        '',
      ].join('\n'),
    );
  });

  it('should launch the conductor with what the init script assembles once the D-037 fix is written and it restarts', async () => {
    const c = await cloud('conductor-broken');
    const before = await c.sh(`juju ssh magnum/0 ${PROBE}`);
    expect(before.stdout).toBe(
      [
        '/usr/bin/python3 /usr/bin/magnum-conductor --config-file=/etc/magnum/magnum.conf --log-file=/var/log/magnum/magnum-conductor.log',
        '/usr/bin/magnum-conductor --config-file=/etc/magnum/magnum.conf --log-file=/var/log/magnum/magnum-conductor.log',
        // DOCFIX-035: nothing on the init PATH; a login shell finds /usr/local/bin/helm.
        'login: /usr/local/bin/helm',
        '',
      ].join('\n'),
    );
    const drop = await c.sh(`juju ssh magnum/0 'systemctl cat magnum-conductor' </dev/null`);
    expect(drop.stdout).toContain(
      '# /etc/systemd/system/magnum-conductor.service.d/override.conf\n[Service]\nExecStart=\nExecStart=/etc/init.d/magnum-conductor systemd-start --config-dir /etc/magnum/magnum.conf.d\n',
    );
    const fix = await c.sh(
      `juju ssh magnum/0 'echo "DAEMON_ARGS=\\"\\$DAEMON_ARGS --config-dir /etc/magnum/magnum.conf.d\\"" | sudo tee /etc/default/magnum-conductor >/dev/null && sudo systemctl restart magnum-conductor' </dev/null`,
    );
    expect(fix).toMatchObject({ code: 0, stderr: '' });
    const after = await c.sh(
      `juju ssh magnum/0 'ps -ww -C magnum-conductor -o args= | head -n 1' </dev/null`,
    );
    expect(after.stdout).toBe(
      '/usr/bin/python3 /usr/bin/magnum-conductor --config-file=/etc/magnum/magnum.conf --log-file=/var/log/magnum/magnum-conductor.log --config-dir /etc/magnum/magnum.conf.d\n',
    );
    expect(c.journal().map((j) => `${j.action} ${j.target}`)).toEqual(['magnum-conductor.restart magnum/0']);
  });
});
