import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SimJumphost } from '../dev/sim/jumphost.js';
import { ParamError } from '../src/errors.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { validateParams } from '../src/runbook/params.js';
import { ofType } from './support/engine.js';
import { type Answer, runOnSim } from './support/sim-run.js';

/**
 * The appendix-A checks as runbooks, end to end against the simulated cloud: each against the
 * failure it detects and against a healthy site (nothing destructive, a clear "all good").
 * Assertions are on what the simulated cloud recorded (journal, violations, state).
 */

const SCALE = 0.002;
const COMMANDS = new URL('../commands/', import.meta.url).pathname;

let runbooks: RunbookSet;
const sims: SimJumphost[] = [];
let fixtures: string | undefined;

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});

afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()));
  if (fixtures) await rm(fixtures, { recursive: true, force: true });
  fixtures = undefined;
});

function run(
  scenario: string,
  runbook: string,
  args: readonly string[] = [],
  answers: readonly Answer[] = [],
) {
  return runOnSim({ runbooks, scenario, runbook, args, answers, timeScale: SCALE, sims });
}

async function fixtureScenario(name: string, yaml: string): Promise<string> {
  fixtures ??= await mkdtemp(path.join(os.tmpdir(), 'capi-scenarios-'));
  const file = path.join(fixtures, `${name}.yaml`);
  await writeFile(file, yaml);
  return file;
}

const RELOAD = (unit: string) =>
  `juju ssh -m "openstack" "${unit}" 'sudo systemctl reload haproxy' </dev/null`;

describe('haproxy (D-045 / DOCFIX-031)', () => {
  it('should reload exactly the two units whose haproxy reports DOWN, one at a time, each once after its approval', async () => {
    const r = await run('haproxy-down', 'haproxy', [], ['approve', 'approve']);
    expect(r.outcome).toMatchObject({
      status: 'succeeded',
      message:
        'all good: haproxy reports zero DOWN backends cloud-wide; reloaded keystone/1, magnum/0, one at a time',
    });
    expect(r.attempts).toEqual(['haproxy.reload keystone/1', 'haproxy.reload magnum/0']);
    expect(r.changes).toEqual(r.attempts);
    expect(r.violations).toEqual([]);
    // Each approval names its one unit and shows the exact command.
    expect(r.requests.map((q) => [q.targets, q.commands])).toEqual([
      [['haproxy on juju unit keystone/1 in model openstack -- this unit only'], [RELOAD('keystone/1')]],
      [['haproxy on juju unit magnum/0 in model openstack -- this unit only'], [RELOAD('magnum/0')]],
    ]);
    expect(r.requests[0]?.evidence[0]).toMatch(
      /^haproxy's own verdict on `keystone\/1`: `keystone\/1: keystone-public_127\.0\.4\.22\/keystone-0 \(L7STS 400\);/,
    );
    // One unit at a time: keystone/1 is reloaded and re-swept before magnum/0 is even checked.
    const started = ofType(r.events, 'step.started').map((e) =>
      `${e.stepId} ${e.iteration?.label ?? ''}`.trim(),
    );
    expect(started.indexOf('remediate/recheck keystone/1')).toBeLessThan(
      started.indexOf('remediate/config-check magnum/0'),
    );
    // haproxy's own verdict afterwards: nothing DOWN anywhere, only those two processes reloaded.
    const units = r.state.juju.units.filter((u) => u.haproxy !== null);
    expect(units.flatMap((u) => u.haproxy?.rows.filter((row) => row.status === 'DOWN') ?? [])).toEqual([]);
    expect(Object.fromEntries(units.map((u) => [u.name, u.haproxy?.reloads]))).toEqual({
      'keystone/0': 0,
      'keystone/1': 1,
      'keystone/2': 0,
      'magnum/0': 1,
      'magnum/1': 0,
      'octavia/0': 0,
    });
  });

  it('should say all good and touch nothing when no haproxy reports a DOWN backend', async () => {
    const r = await run('healthy', 'haproxy', [], ['approve']);
    expect(r.outcome.status).toBe('succeeded');
    expect(r.outcome.message).toBe(
      'all good: haproxy itself reports zero DOWN backends on all 6 units that run it (keystone/0, keystone/1, keystone/2, magnum/0, magnum/1, octavia/0); nothing reloaded',
    );
    expect(r.requests).toEqual([]);
    expect(r.attempts).toEqual([]);
  });

  it('should reload nothing when the first reload is denied', async () => {
    const r = await run('haproxy-down', 'haproxy', [], ['deny']);
    expect(r.outcome).toMatchObject({ status: 'denied', failedStep: 'remediate/reload' });
    expect(r.requests).toHaveLength(1);
    expect(r.attempts).toEqual([]);
    const k1 = r.state.juju.units.find((u) => u.name === 'keystone/1');
    expect(k1?.haproxy?.rows.every((row) => row.status === 'DOWN')).toBe(true);
  });

  it('should not reload, nor ask to, when haproxy -c rejects the unit config', async () => {
    const scenario = await fixtureScenario(
      'haproxy-invalid',
      [
        'name: haproxy-invalid',
        'extends: haproxy-down',
        'juju:',
        '  haproxy_invalid_config:',
        "    keystone/1: \"parsing [/etc/haproxy/haproxy.cfg:42] : 'server keystone-2' : could not resolve address 'juju-ffe3b8-2-lxd-3'.\"",
        '',
      ].join('\n'),
    );
    const r = await run(scenario, 'haproxy', [], ['approve', 'approve']);
    expect(r.outcome).toMatchObject({ status: 'failed', failedStep: 'remediate/config-check' });
    expect(r.outcome.message).toMatch(/haproxy -c on keystone\/1 does NOT say valid: not reloading/);
    expect(r.outcome.message).toMatch(/Fatal errors found in configuration\.$/);
    expect(r.requests).toEqual([]);
    expect(r.attempts).toEqual([]);
    expect(r.violations).toEqual([]);
  });

  it('should stop, after one reload, when the backend stays DOWN because the service itself is down', async () => {
    const scenario = await fixtureScenario(
      'backend-down',
      'name: backend-down\nextends: healthy\njuju:\n  haproxy_backend_down:\n    keystone/1: [keystone-2]\n',
    );
    const r = await run(scenario, 'haproxy', [], ['approve', 'approve']);
    expect(r.outcome).toMatchObject({ status: 'failed', failedStep: 'remediate/recheck' });
    expect(r.outcome.message).toMatch(
      /keystone\/1 still reports 1 DOWN backend row\(s\) after the reload: the backend service itself is down.*not reloading again/,
    );
    expect(r.attempts).toEqual(['haproxy.reload keystone/1']);
  });

  it('should stop at the first juju call with the juju login fix when the macaroon is stale', async () => {
    const r = await run('juju-login-expired', 'haproxy', [], ['approve']);
    expect(r.outcome).toMatchObject({ status: 'failed', failedStep: 'units' });
    expect(r.outcome.message).toMatch(/^units: the juju login expired: run `juju login` on the jumphost/);
    expect(ofType(r.events, 'step.started').map((e) => e.stepId)).toEqual(['units']);
    expect(r.attempts).toEqual([]);
    expect(r.violations).toEqual([]);
  });
});

describe('conductor (D-037, L-P6-1/2, DOCFIX-035)', () => {
  it('should name each unit, its cause and its fix when the conductor was launched without --config-dir', async () => {
    const r = await run('conductor-broken', 'conductor');
    expect(r.outcome.status).toBe('succeeded');
    expect(r.findings).toEqual([
      'magnum units: magnum/0, magnum/1',
      expect.stringMatching(
        /^D-037: the init script's show-args on magnum\/0 lacks --config-dir .*Fix: create \/etc\/default\/magnum-conductor .*DAEMON_ARGS="\$DAEMON_ARGS --config-dir \/etc\/magnum\/magnum.conf.d"/,
      ),
      expect.stringMatching(
        /^L-P6-2: the systemd unit on magnum\/0 mentions --config-dir, yet the live process does not carry it.*A string in a unit file is not proof/,
      ),
      expect.stringMatching(
        /^D-037 residual: on magnum\/1 show-args carries --config-dir but the LIVE conductor was started without it.*systemctl restart magnum-conductor/,
      ),
      expect.stringMatching(
        /^DOCFIX-035: helm does not resolve on the conductor's init PATH .* on magnum\/0, though a login shell finds it \(magnum\/0 \/usr\/local\/bin\/helm\).*ln -s \/usr\/local\/bin\/helm \/usr\/bin\/helm/,
      ),
    ]);
    expect(r.attempts).toEqual([]);
  });

  it('should say all good when every conductor carries --config-dir and helm is on the init PATH', async () => {
    const r = await run('healthy', 'conductor');
    expect(r.findings.at(-1)).toBe(
      'all good on magnum/0, magnum/1: the live magnum-conductor carries --config-dir /etc/magnum/magnum.conf.d, show-args agrees, /etc/default/magnum-conductor holds the append, and helm resolves to /usr/bin/helm on the init PATH',
    );
    expect(r.attempts).toEqual([]);
  });
});

describe('image-check IMAGE (L-P6-3)', () => {
  it('should name the missing kube_version and os_distro with the command that sets them', async () => {
    const r = await run('image-unlabelled', 'image-check', ['ubuntu-jammy-kube-v1.34.8']);
    expect(r.findings).toEqual([
      expect.stringMatching(
        /^L-P6-3: ubuntu-jammy-kube-v1\.34\.8 \(1e000000-0000-4000-8000-000000000004\) has no kube_version property.*openstack image set --property kube_version=v<MAJOR\.MINOR\.PATCH> 1e000000-0000-4000-8000-000000000004/,
      ),
      'L-P6-3: ubuntu-jammy-kube-v1.34.8 has os_distro=unset, not ubuntu: the driver routes on os_distro. Fix: openstack image set --property os_distro=ubuntu 1e000000-0000-4000-8000-000000000004',
    ]);
  });

  it('should say all good for an image that carries both properties', async () => {
    const r = await run('healthy', 'image-check', ['ubuntu-jammy-kube-v1.32.13']);
    expect(r.findings).toEqual([
      'all good: ubuntu-jammy-kube-v1.32.13 (1e000000-0000-4000-8000-000000000002) is active and carries kube_version=v1.32.13 and os_distro=ubuntu; a cluster create can read its k8s version',
    ]);
  });

  it('should fail with what glance said when the image does not exist', async () => {
    const r = await run('healthy', 'image-check', ['ubuntu-jammy-kube-v9.9.9']);
    expect(r.outcome).toMatchObject({ status: 'failed', failedStep: 'image' });
    expect(r.outcome.message).toMatch(
      /ubuntu-jammy-kube-v9\.9\.9 is not an image the CAPI project can see: No Image found/,
    );
  });

  it('should refuse an image argument that is not a plain name or id before connecting', () => {
    const rb = runbooks.runbooks.get('image-check');
    if (!rb) throw new Error('image-check is not loaded');
    expect(() => validateParams(rb, ['kube image; rm -rf ~'])).toThrow(ParamError);
  });
});

describe('appcred-check (D-039)', () => {
  it('should name the frozen pre-fix credential and its cluster', async () => {
    const r = await run('appcred-frozen', 'appcred-check');
    expect(r.findings).toEqual([
      expect.stringMatching(
        /^D-039 frozen pre-fix credential\(s\): magnum-3a000000-0000-4000-8000-000000000001-7c1e9a2b \(ac000000000000000000000000000001, Magnum cluster \(capi-test-1\), roles: member reader\)\. .*so capi-test-1 keep\(s\) getting 403 from Octavia/,
      ),
    ]);
  });

  it('should say the service path itself is broken when the owner lacks load-balancer_member', async () => {
    const scenario = await fixtureScenario(
      'appcred-no-role',
      "name: appcred-no-role\nextends: appcred-frozen\nkeystone:\n  assignments:\n    '0a000000000000000000000000000001':\n      capi: [member, reader]\n",
    );
    const r = await run(scenario, 'appcred-check');
    expect(r.findings[0]).toMatch(
      /^D-039: 0a000000000000000000000000000001 created Magnum clusters but holds no load-balancer_member on the CAPI project.*openstack role add/,
    );
    expect(r.findings).toHaveLength(2);
  });

  it('should say all good when every minted credential carries load-balancer_member', async () => {
    const r = await run('healthy', 'appcred-check');
    expect(r.findings).toEqual([
      'all good: the 1 credential(s) Magnum minted (magnum-3a000000-0000-4000-8000-000000000001-7c1e9a2b) carry load-balancer_member, and their owner(s) hold it on the CAPI project, so new ones will too',
    ]);
  });
});

describe('diagnose: the appendix entries read-only commands can detect', () => {
  it('should report each control-plane and driver problem with its fix and runbook, changing nothing', async () => {
    const scenario = await fixtureScenario(
      'everything-wrong',
      [
        'name: everything-wrong',
        'extends: haproxy-down',
        'description: every read-only-detectable appendix entry at once, mgmt cluster up',
        'juju:',
        '  conductor:',
        '    magnum/0: { default_file: missing, systemd_dropin: true, helm: usr-local-only }',
        '  applications:',
        '    nova-compute:',
        '      config: { reserved-host-memory: 512 }',
        '    octavia:',
        '      config: { amp-image-tag: octavia-amphora-jammy }',
        'images:',
        '  1e000000-0000-4000-8000-000000000004: { name: ubuntu-jammy-kube-v1.34.8 }',
        '  1e000000-0000-4000-8000-000000000005: { name: ubuntu-noble-web-download, status: queued, size_bytes: null }',
        'cluster_templates:',
        '  7e000000-0000-4000-8000-000000000001: { image: 1e000000-0000-4000-8000-000000000004, network_driver: flannel }',
        'keystone:',
        '  app_credentials:',
        '    ac000000000000000000000000000001: { roles: [member, reader] }',
        'magnum_clusters:',
        '  capi-test-1:',
        '    health_reason:',
        '      capi-test-1.cluster: Ready',
        "      capi-test-1.nodegroup.default-worker: 'MachineDeployment capi-test-1-default-worker: 0 of 1 replicas ready'",
        'loadbalancers:',
        '  1b000000-0000-4000-8000-000000000001: { provisioning_status: PENDING_UPDATE }',
        '',
      ].join('\n'),
    );
    const r = await run(scenario, 'diagnose');
    expect(r.outcome.status).toBe('succeeded');
    expect(r.attempts).toEqual([]);
    expect(r.findings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^Magnum UNHEALTHY and NOT the D-042 signature: capi-test-1\.nodegroup\.default-worker: MachineDeployment capi-test-1-default-worker: 0 of 1 replicas ready\./,
        ),
        expect.stringMatching(
          /^LB in a transitional state: .*1b000000-0000-4000-8000-000000000001 PENDING_UPDATE\..*do NOT fail it over/,
        ),
        expect.stringMatching(
          /^D-045: haproxy reports DOWN backends on keystone\/1, magnum\/0 .*Fix: \/capi haproxy/,
        ),
        expect.stringMatching(
          /^D-037: magnum-conductor on magnum\/0 was launched without --config-dir.*\/capi conductor/,
        ),
        expect.stringMatching(/^DOCFIX-035: helm does not resolve to \/usr\/bin\/helm .* on magnum\/0/),
        expect.stringMatching(
          /^L-P6-3: capi-k8s-v1-32's image ubuntu-jammy-kube-v1\.34\.8 \(1e000000-0000-4000-8000-000000000004\) lacks kube_version and os_distro=ubuntu.*\/capi image-check/,
        ),
        expect.stringMatching(
          /^D-039 frozen pre-fix credential\(s\) without load-balancer_member: magnum-3a000000-/,
        ),
        expect.stringMatching(
          /^D-040: nova-compute reserved-host-memory is 512 MB.*juju config nova-compute reserved-host-memory=8192/,
        ),
      ]),
    );
    expect(r.findings.some((f) => f.startsWith('D-042 cosmetic'))).toBe(false);
    expect(r.findings.some((f) => f.startsWith('juju-macaroon'))).toBe(false);
  });

  it('should report the expired juju login as a finding and finish the rest of the diagnosis', async () => {
    const r = await run('juju-login-expired', 'diagnose');
    expect(r.outcome.status).toBe('succeeded');
    expect(r.findings).toEqual([
      expect.stringMatching(/^D-042 cosmetic false-negative/),
      expect.stringMatching(
        /^juju-macaroon: the jumphost's juju login expired .*Fix: run `juju login` on the jumphost.*re-run \/capi diagnose$/,
      ),
    ]);
  });
});
