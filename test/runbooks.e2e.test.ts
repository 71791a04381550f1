import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SimJumphost } from '../dev/sim/jumphost.js';
import type { ApprovalRequest } from '../src/engine/events.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { ofType } from './support/engine.js';
import { type Answer, runOnSim } from './support/sim-run.js';

/**
 * Every runbook in commands/, end to end: engine -> ssh2 -> real sshd -> simulated cloud.
 * Assertions are on what the simulated cloud recorded (journal, violations, state), not on what
 * the engine says about itself.
 */

const SCALE = 0.002;
const COMMANDS = new URL('../commands/', import.meta.url).pathname;

const ZOMBIE_ERROR = '5e000000-0000-4000-8000-0000000000e1';
const ZOMBIE_ACTIVE = '5e000000-0000-4000-8000-0000000000e2';
const KUBE_API_LB = '1b000000-0000-4000-8000-000000000001';

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

function runOn(
  scenario: string,
  runbook: string,
  args: readonly string[],
  answers: readonly Answer[],
  onAsk?: (req: ApprovalRequest, sim: SimJumphost) => Promise<void>,
) {
  return runOnSim({
    runbooks,
    scenario,
    runbook,
    args,
    answers,
    timeScale: SCALE,
    sims,
    ...(onAsk ? { onAsk } : {}),
  });
}

async function fixtureScenario(name: string, yaml: string): Promise<string> {
  fixtures ??= await mkdtemp(path.join(os.tmpdir(), 'capi-scenarios-'));
  const file = path.join(fixtures, `${name}.yaml`);
  await writeFile(file, yaml);
  return file;
}

describe('recover', () => {
  it('should recover the outage bottom-up with one destructive command per approval', async () => {
    const r = await runOn('outage', 'recover', [], ['approve', 'approve', 'approve']);
    expect(r.outcome.status).toBe('succeeded');
    expect(r.outcome.message).toMatch(/D-042 cosmetic signature .* known good/);
    expect(r.changes).toEqual([
      'server.start capi-mgmt-v2',
      `server.delete ${ZOMBIE_ACTIVE}`,
      `server.delete ${ZOMBIE_ERROR}`,
      `loadbalancer.failover ${KUBE_API_LB}`,
    ]);
    expect(r.requests.map((q) => q.targets[0])).toEqual([
      expect.stringContaining(ZOMBIE_ACTIVE),
      expect.stringContaining(ZOMBIE_ERROR),
      expect.stringContaining(KUBE_API_LB),
    ]);
    expect(r.violations).toEqual([]);
    expect(r.state.loadbalancers.every((lb) => lb.provisioningStatus === 'ACTIVE')).toBe(true);
    // Bottom-up: the VM starts before anything reads k8s, the sweep happens before the failover.
    const started = ofType(r.events, 'step.started').map((e) => e.stepId);
    expect(started.indexOf('k8s-ready')).toBeLessThan(started.indexOf('capi-stack'));
    expect(started.indexOf('sweep/delete-orphan')).toBeLessThan(started.indexOf('failover/failover-lb'));
  });

  it('should run nothing destructive and stop when the first approval is denied', async () => {
    const r = await runOn('outage', 'recover', [], ['deny']);
    expect(r.outcome).toMatchObject({ status: 'denied', failedStep: 'sweep/delete-orphan' });
    expect(r.changes).toEqual(['server.start capi-mgmt-v2']);
    expect(r.requests).toHaveLength(1);
  });

  it('should skip to the final verify when every load balancer is already ACTIVE', async () => {
    const r = await runOn('healthy', 'recover', [], []);
    expect(r.outcome.status).toBe('succeeded');
    expect(r.changes).toEqual([]);
    expect(ofType(r.events, 'decision').map((d) => d.message)).toContain(
      'capi-mgmt-v2 is already ACTIVE -> skipping the start',
    );
    expect(ofType(r.events, 'decision').map((d) => d.message)).toContain(
      'all LBs ACTIVE -> skipping to final verify',
    );
    expect(ofType(r.events, 'step.started').map((e) => e.stepId)).not.toContain('amphora-inventory');
  });

  it('should not delete a candidate whose amphora reappears in octavia before it is asked about', async () => {
    const r = await runOn('reappearing-amphora', 'recover', [], ['approve', 'approve']);
    expect(r.outcome.status).toBe('succeeded');
    expect(r.changes).not.toContain(`server.delete ${ZOMBIE_ACTIVE}`);
    expect(r.changes).toContain(`server.delete ${ZOMBIE_ERROR}`);
    expect(ofType(r.events, 'guard.skipped').map((e) => e.message)).toEqual([
      expect.stringMatching(
        /amphora a0000000-0000-4000-8000-0000000000e2 is now in octavia's amphora list -> NOT deleting/,
      ),
    ]);
    expect(r.violations).toEqual([]);
  });

  it('should not delete a candidate whose amphora reappears between the approval and the delete', async () => {
    const scenario = await fixtureScenario(
      'reappears-late',
      'name: reappears-late\nextends: reappearing-amphora\ndescription: row appears at the 3rd read\namphorae:\n  a0000000-0000-4000-8000-0000000000e2:\n    appears_after_reads: 3\n',
    );
    const r = await runOn(scenario, 'recover', [], ['approve', 'approve', 'approve']);
    expect(r.outcome.status).toBe('succeeded');
    // The first approval was given for the server, and still it was not deleted.
    expect(r.requests[0]?.targets[0]).toContain(ZOMBIE_ACTIVE);
    expect(r.changes).not.toContain(`server.delete ${ZOMBIE_ACTIVE}`);
    expect(r.changes).toContain(`server.delete ${ZOMBIE_ERROR}`);
    expect(r.violations).toEqual([]);
  });

  it('should refuse the failover and say how to free room when no host has amphora headroom', async () => {
    const r = await runOn('no-headroom', 'recover', [], ['approve']);
    expect(r.outcome.status).toBe('failed');
    expect(r.outcome.message).toMatch(/no hypervisor clears used \+ 1024 MB <= ceiling/);
    expect(r.outcome.message).toMatch(/NOT failing over .*NoValidHost and mint another zombie/);
    expect(r.changes).toEqual([]);
    expect(r.requests).toHaveLength(0);
    expect(r.violations).toEqual([]);
  });

  it('should stop after a failover ends in ERROR and never retry it', async () => {
    const r = await runOn('failover-error', 'recover', [], ['approve', 'approve']);
    expect(r.outcome.status).toBe('failed');
    expect(r.outcome.message).toMatch(/FAILED -- read octavia-worker\.log; do NOT retry blind/);
    expect(r.changes.filter((c) => c.startsWith('loadbalancer.failover'))).toEqual([
      `loadbalancer.failover ${KUBE_API_LB}`,
    ]);
    expect(r.violations).toEqual([]);
  });
});

describe('park', () => {
  it('should stop the mgmt VM by its id once when approved', async () => {
    const r = await runOn('healthy', 'park', [], ['approve']);
    expect(r.outcome.status).toBe('succeeded');
    const mgmtId = r.state.mgmt.serverId;
    expect(r.changes).toEqual([`server.stop ${mgmtId}`]);
    expect(r.state.servers.find((s) => s.id === mgmtId)?.status).toBe('SHUTOFF');
    expect(r.requests[0]?.commands[0]).toContain(`openstack server stop "${mgmtId}"`);
  });

  it('should do nothing and ask nothing when the mgmt VM is already parked', async () => {
    const r = await runOn('parked', 'park', [], ['approve']);
    expect(r.outcome).toMatchObject({
      status: 'succeeded',
      message: expect.stringMatching(/already SHUTOFF/),
    });
    expect(r.changes).toEqual([]);
    expect(r.requests).toHaveLength(0);
  });
});

describe('stuck-delete', () => {
  it('should patch the exact listed name, let the Cluster finalize and clean neutron in dependency order', async () => {
    const r = await runOn('stuck-delete', 'stuck-delete', ['capi-test-2'], ['approve', 'approve']);
    expect(r.outcome.status).toBe('succeeded');
    expect(r.changes).toEqual([
      'kubectl.patch openstackcluster/capi-test-2-x7k2p',
      'router.remove_subnet ee200000-0000-4000-8000-000000000021 ee100000-0000-4000-8000-000000000021',
      'router.unset_external_gateway ee200000-0000-4000-8000-000000000021',
      'router.delete ee200000-0000-4000-8000-000000000021',
      'subnet.delete ee100000-0000-4000-8000-000000000021',
      'network.delete ee000000-0000-4000-8000-000000000021',
      'security_group.delete ee300000-0000-4000-8000-000000000021',
      'security_group.delete ee300000-0000-4000-8000-000000000022',
    ]);
    expect(r.requests[0]?.targets).toEqual([
      'openstackcluster capi-test-2-x7k2p in namespace magnum-c0ffee00c0ffee00c0ffee00c0ffee00',
    ]);
    expect(r.violations).toEqual([]);
  });

  it('should stop without patching when several OpenStackClusters match the name', async () => {
    const r = await runOn('stuck-delete-ambiguous', 'stuck-delete', ['capi-test-2'], ['approve', 'approve']);
    expect(r.outcome.status).toBe('failed');
    expect(r.outcome.message).toMatch(
      /several OpenStackClusters match capi-test-2-<suffix>: .*capi-test-2-x7k2p/,
    );
    expect(r.changes).toEqual([]);
  });

  it('should stop without patching when no OpenStackCluster has that exact name', async () => {
    const r = await runOn('stuck-delete', 'stuck-delete', ['capi-test'], ['approve']);
    expect(r.outcome.status).toBe('failed');
    expect(r.outcome.message).toMatch(/no OpenStackCluster in .* is named capi-test-<suffix>/);
    expect(r.changes).toEqual([]);
  });

  it('should refuse to clear finalizers when the matching cluster is not being deleted', async () => {
    const r = await runOn('stuck-delete', 'stuck-delete', ['capi-test-1'], ['approve']);
    expect(r.outcome.status).toBe('failed');
    expect(r.outcome.message).toMatch(/capi-test-1-q8w4n is not being deleted/);
    expect(r.changes).toEqual([]);
  });
});

describe('failover and sweep', () => {
  it('should fail over one LB once the sweep has made room', async () => {
    const sweep = await runOn('outage', 'sweep', [], ['approve', 'approve']);
    expect(sweep.outcome.status).toBe('succeeded');
    expect(sweep.changes).toEqual([`server.delete ${ZOMBIE_ACTIVE}`, `server.delete ${ZOMBIE_ERROR}`]);

    const before = await runOn('outage', 'failover', [KUBE_API_LB], ['approve']);
    expect(before.outcome.message).toMatch(/no hypervisor clears/);
    expect(before.changes).toEqual([]);
  });

  it('should fail over an ERROR load balancer when there is headroom', async () => {
    const r = await runOn('failover-error', 'failover', [KUBE_API_LB], ['approve']);
    expect(r.requests).toHaveLength(1);
    expect(r.changes).toEqual([`loadbalancer.failover ${KUBE_API_LB}`]);
    expect(r.outcome.message).toMatch(/do NOT retry blind/);
  });

  it('should say there is nothing to do when the LB is already ACTIVE', async () => {
    const r = await runOn('healthy', 'failover', [KUBE_API_LB], ['approve']);
    expect(r.outcome).toMatchObject({
      status: 'succeeded',
      message: expect.stringMatching(/already provisioning ACTIVE/),
    });
    expect(r.changes).toEqual([]);
  });
});

describe('diagnose', () => {
  it('should report every known issue of the outage and change nothing', async () => {
    const r = await runOn('outage', 'diagnose', [], []);
    expect(r.outcome.status).toBe('succeeded');
    expect(r.changes).toEqual([]);
    const findings = ofType(r.events, 'decision').map((d) => d.message);
    expect(findings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^D-041 mgmt VM capi-mgmt-v2 is SHUTOFF.*Fix: \/capi recover$/),
        expect.stringMatching(/^Magnum UNHEALTHY with an EMPTY reason.*NOT D-042/),
        expect.stringMatching(new RegExp(`^LB provisioning ERROR with operating ONLINE: .*${KUBE_API_LB}`)),
        expect.stringMatching(new RegExp(`failed-spawn variant .*${ZOMBIE_ERROR}.*Fix: /capi sweep`)),
        expect.stringMatching(new RegExp(`heartbeating-zombie variant .*${ZOMBIE_ACTIVE}.*Fix: /capi sweep`)),
        expect.stringMatching(/^no hypervisor has \+1024 MB amphora headroom/),
        expect.stringMatching(
          /^uninitialized-taint: capi-test-1-default-worker-6d8x2-r2x7c of capi-test-1 still carry node\.cluster\.x-k8s\.io\/uninitialized while the mgmt cluster is down.*Fix: \/capi recover/,
        ),
      ]),
    );
    expect(findings.some((f) => f.startsWith('D-042'))).toBe(false);
  });

  it('should recognise the D-042 cosmetic signature as known good on a healthy site', async () => {
    const r = await runOn('healthy', 'diagnose', [], []);
    const findings = ofType(r.events, 'decision').map((d) => d.message);
    expect(findings).toEqual([expect.stringMatching(/^D-042 cosmetic false-negative/)]);
  });

  it('should point at stuck-delete when a cluster delete is wedged', async () => {
    const r = await runOn('stuck-delete', 'diagnose', [], []);
    const findings = ofType(r.events, 'decision').map((d) => d.message);
    expect(findings).toContainEqual(
      expect.stringMatching(/stuck delete: .*capi-test-2-x7k2p.*Fix: \/capi stuck-delete/),
    );
  });
});
