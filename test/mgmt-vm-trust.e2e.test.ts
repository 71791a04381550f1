import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SIM_CLIENT_KEY_DATA, type SimJumphost, startSimJumphost } from '../dev/sim/jumphost.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import { ofType } from './support/engine.js';
import { runOnSim } from './support/sim-run.js';

/**
 * Whoever answers on the mgmt VM's floating IP while the VM is parked must not be believed: its host key is
 * checked (pinned in the site profile, else the one first seen), and the kubeconfig it hands out is installed
 * only when it runs nothing and names the mgmt endpoint. Engine -> ssh2 -> real sshd -> the simulated hop
 * `ssh`, which checks host keys as OpenSSH does; what ran on the "VM" is counted by the simulator.
 */

const SCALE = 0.002;
const COMMANDS = new URL('../commands/', import.meta.url).pathname;
/** A valid ed25519 public key that is not the simulated VM's. */
const ANOTHER_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

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

async function sim(scenario: string): Promise<SimJumphost> {
  const s = await startSimJumphost({ scenario, timeScale: SCALE });
  sims.push(s);
  return s;
}

/** A scenario file extending `healthy` with `mgmt` fields. */
async function healthyWith(mgmt: string): Promise<string> {
  fixtures ??= await mkdtemp(path.join(os.tmpdir(), 'capi-trust-'));
  const file = path.join(fixtures, `trust-${Date.now()}.yaml`);
  await writeFile(file, `name: trust\nextends: healthy\ndescription: test\nmgmt:\n${mgmt}`);
  return file;
}

function recover(on: SimJumphost, siteFields: Record<string, unknown> = {}) {
  return runOnSim({
    runbooks,
    scenario: '',
    runbook: 'recover',
    timeScale: SCALE,
    sims,
    sim: on,
    siteFields,
  });
}

const sessions = async (s: SimJumphost) => (await s.state()).mgmt.hopSessions;
const home = (s: SimJumphost, file: string) => path.join(s.dir, 'home', file);
const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

describe("the mgmt VM's host key", () => {
  it('should record the key first seen for the site and stop, reading nothing, when another key answers later', async () => {
    const s = await sim('healthy');
    const first = await recover(s);
    expect(first.outcome.status).toBe('succeeded');
    const recorded = await readFile(home(s, `.capi-chatops/known_hosts/${s.site.name}`), 'utf8');
    expect(recorded).toBe(`capi-mgmt-${s.site.name} ${await s.mgmtHostKey()}\n`);

    const before = await sessions(s);
    expect(before).toBeGreaterThan(0);
    await s.replaceMgmtHostKey();
    const second = await recover(s);
    expect(second.outcome.status).toBe('failed');
    expect(second.outcome.failedStep).toBe('k8s-ready');
    expect(second.outcome.message).toMatch(
      /^k8s-ready: the mgmt VM answered with a host key other than the one on record for this site .* Not retried\. \(mgmt-host-key;/,
    );
    // One attempt, not the poll's fifteen; no session on the machine that answered; the record is unchanged.
    expect(ofType(second.events, 'poll.attempt').filter((e) => e.stepId === 'k8s-ready')).toEqual([]);
    expect(await sessions(s)).toBe(before);
    expect(await readFile(home(s, `.capi-chatops/known_hosts/${s.site.name}`), 'utf8')).toBe(recorded);
    expect(second.changes).toEqual([]);
  });

  it('should stop before reading anything when the VM does not offer the pinned key, and go on with the one it does', async () => {
    const s = await sim('healthy');
    const pinnedWrong = await recover(s, { mgmt_host_key: ANOTHER_KEY });
    expect(pinnedWrong.outcome.status).toBe('failed');
    expect(pinnedWrong.outcome.failedStep).toBe('k8s-ready');
    expect(pinnedWrong.outcome.message).toMatch(/host key other than the one on record.*\(mgmt-host-key;/);
    expect(await sessions(s)).toBe(0);
    // A pin is never a first use: nothing was recorded for the site.
    expect(await exists(home(s, `.capi-chatops/known_hosts/${s.site.name}`))).toBe(false);

    const pinnedRight = await recover(s, { mgmt_host_key: `${await s.mgmtHostKey()} root@capi-mgmt-v2` });
    expect(pinnedRight.outcome.status).toBe('succeeded');
    expect(await sessions(s)).toBeGreaterThan(0);
  });
});

describe('the re-emitted mgmt kubeconfig', () => {
  it('should check and install the admin kubeconfig when the jumphost has none', async () => {
    const s = await sim(await healthyWith('  kubeconfig_on_jumphost: false\n'));
    const r = await recover(s);
    expect(r.outcome.status).toBe('succeeded');
    const check = ofType(r.events, 'step.finished').find((e) => e.stepId === 'kubeconfig-check');
    expect(check?.summary).toBe(
      'server https://127.0.0.1:6443; user(s) k8s-user, none with exec or auth-provider',
    );
    expect(await readFile(home(s, 'capi-mgmt.kubeconfig'), 'utf8')).toContain(SIM_CLIENT_KEY_DATA);
    expect(JSON.stringify(r.events)).not.toContain(SIM_CLIENT_KEY_DATA.slice(0, 24));
  });

  it('should refuse a kubeconfig whose user runs exec, install nothing and show none of it', async () => {
    // The machine answering on the FIP was there first: trust on first use took its key, so only the check
    // of what it hands out stands between its kubeconfig and kubectl on the jumphost.
    const s = await sim(await healthyWith('  kubeconfig_on_jumphost: false\n  kubeconfig: exec-user\n'));
    const r = await recover(s);
    expect(r.outcome.status).toBe('failed');
    expect(r.outcome.failedStep).toBe('kubeconfig-check');
    expect(r.outcome.message).toMatch(
      /^kubeconfig-check: the kubeconfig is refused and not installed: users\[0\]\.user\.exec is a credential plugin/,
    );
    expect(await exists(home(s, 'capi-mgmt.kubeconfig'))).toBe(false);
    expect(ofType(r.events, 'step.started').map((e) => e.stepId)).not.toContain('kubeconfig-install');
    expect(JSON.stringify(r.events)).not.toContain(SIM_CLIENT_KEY_DATA.slice(0, 24));
    expect(JSON.stringify(r.events)).not.toContain('capi-sim-exec-ran');
  });

  it('should refuse a kubeconfig whose server is not the mgmt endpoint', async () => {
    const s = await sim(await healthyWith('  kubeconfig_on_jumphost: false\n  kubeconfig: foreign-server\n'));
    const r = await recover(s);
    expect(r.outcome.status).toBe('failed');
    expect(r.outcome.message).toBe(
      `kubeconfig-check: the re-emitted kubeconfig names the server(s) https://127.0.0.66:6443, not the mgmt endpoint https://127.0.0.1:6443: refused, not installed. Another machine may be answering on the mgmt FIP: check ${s.site.mgmt_server} (openstack console log show ${s.site.mgmt_server}) before re-running`,
    );
    expect(await exists(home(s, 'capi-mgmt.kubeconfig'))).toBe(false);
  });
});
