import { PassThrough } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SimJumphost } from '../dev/sim/jumphost.js';
import type { RunEvent } from '../src/engine/events.js';
import { renderMarkdown } from '../src/fronts/postmortem.js';
import { createTerminalTimeline } from '../src/fronts/terminal.js';
import { loadRunbooks, type RunbookSet } from '../src/runbook/load.js';
import type { TimelineEntry } from '../src/runs/timeline.js';
import { ofType } from './support/engine.js';
import { runOnSim } from './support/sim-run.js';
import { eventPosts } from './support/thread.js';

/**
 * A jumphost without a tool: a diagnosis degrades (the steps that call it are "not observable", the findings
 * that read them undecided, everything else runs), a runbook that requires the tool refuses before step 1.
 */

const SCALE = 0.002;
const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const JUJU_WHY = "juju is not on the jumphost's PATH";
const KUBECTL_WHY = "kubectl is not on the jumphost's PATH";

let runbooks: RunbookSet;
const sims: SimJumphost[] = [];

beforeAll(async () => {
  runbooks = await loadRunbooks(COMMANDS);
});

afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()));
});

function run(scenario: string, runbook: string) {
  return runOnSim({ runbooks, scenario, runbook, timeScale: SCALE, sims });
}

/** How each step ended, as `id status`. */
function outcomes(events: readonly RunEvent[]): string[] {
  return ofType(events, 'step.finished').map((e) => `${e.stepId} ${e.status}`);
}

function entries(events: readonly RunEvent[]): TimelineEntry[] {
  return events.map((event, i) => ({ id: `${i + 1}-0`, at: '2026-06-10T10:00:00.000Z', event }));
}

function terminal(events: readonly RunEvent[]): string {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => {
    text += d.toString();
  });
  const print = createTerminalTimeline(out);
  for (const e of events) print(e);
  return text;
}

describe('diagnose on a jumphost without juju', () => {
  it('should report the outage, mark the juju steps not observable and leave their findings undecided', async () => {
    const r = await run('no-juju', 'diagnose');
    expect(r.outcome.status).toBe('succeeded');
    expect(ofType(r.events, 'preflight')[0]).toMatchObject({ missing: ['juju'] });

    const steps = outcomes(r.events);
    for (const id of [
      'juju-model',
      'haproxy-sweep',
      'conductor-probe',
      'compute-reserved-memory',
      'amphora-image-tag',
    ]) {
      expect(steps).toContain(`${id} unobservable`);
    }
    // Everything that needs no juju ran.
    for (const id of ['mgmt-vm', 'load-balancers', 'amphora-servers', 'headroom', 'capi-clusters']) {
      expect(steps).toContain(`${id} ok`);
    }
    // Each step names the known issues it leaves undecided.
    const said = (id: string) => ofType(r.events, 'step.finished').find((e) => e.stepId === id)?.message;
    expect(said('juju-model')).toBe(`not observable: ${JUJU_WHY}; leaves undecided: juju-macaroon`);
    expect(said('haproxy-sweep')).toBe(`not observable: ${JUJU_WHY}; leaves undecided: D-045 haproxy DOWN`);
    expect(said('conductor-probe')).toBe(
      `not observable: ${JUJU_WHY}; leaves undecided: D-037 conductor --config-dir, DOCFIX-035 helm on the init PATH`,
    );
    expect(said('amphora-image-tag')).toBe(
      `not observable: ${JUJU_WHY}; leaves undecided: amp-image-tag mismatch`,
    );

    // The outage is still diagnosed, not even a word less.
    expect(r.findings.some((f) => f.startsWith('D-041 mgmt VM capi-mgmt-v2 is SHUTOFF'))).toBe(true);
    expect(r.findings.some((f) => f.startsWith('LB provisioning ERROR with operating ONLINE'))).toBe(true);
    expect(r.findings.some((f) => f.startsWith('amphora orphans, heartbeating-zombie variant'))).toBe(true);
    expect(r.findings).toContain(
      `undecided, not observable (${JUJU_WHY}): juju-macaroon, D-045 haproxy DOWN, D-037 conductor --config-dir, DOCFIX-035 helm on the init PATH, amp-image-tag mismatch, D-040 reserved-host-memory`,
    );
    expect(r.findings.some((f) => f.startsWith('all good'))).toBe(false);
    expect(ofType(r.events, 'step.finished').at(-1)?.message).toMatch(/^\d+ finding\(s\), 6 undecided$/);
    expect(r.violations).toEqual([]);
    expect(r.changes).toEqual([]);

    // Shown as such in the terminal, the Slack thread and the postmortem.
    const term = terminal(r.events);
    expect(term).toContain(
      `jumphost ready (HOME=${r.sim.dir}/home; openstack, kubectl, ssh found); ${JUJU_WHY}: the steps that call it are not observable`,
    );
    expect(term).toMatch(
      /NOT OBSERVABLE .*not observable: juju is not on the jumphost's PATH; leaves undecided/,
    );
    const posts = eventPosts(entries(r.events)).map((p) => p.text);
    expect(posts).toContain(
      `Step 18 of 24 not observable: juju model openstack, and whether the jumphost's juju login is still valid · not observable: ${JUJU_WHY}; leaves undecided: juju-macaroon`,
    );
    expect(renderMarkdown(entries(r.events))).toContain('NOT OBSERVABLE');
  });

  it('should refuse haproxy before its first step, naming juju', async () => {
    const r = await run('no-juju', 'haproxy');
    expect(r.outcome).toMatchObject({
      status: 'failed',
      message: expect.stringMatching(
        /^haproxy cannot start: juju is not on the jumphost's PATH and it requires it; nothing was run/,
      ),
    });
    expect(ofType(r.events, 'step.started')).toEqual([]);
  });
});

describe('diagnose and recover on a jumphost without kubectl', () => {
  it('should report everything else and name the Kubernetes checks it could not observe', async () => {
    const r = await run('no-kubectl', 'diagnose');
    expect(r.outcome.status).toBe('succeeded');
    const steps = outcomes(r.events);
    for (const id of ['capi-clusters', 'capi-openstackclusters', 'workload-nodes']) {
      expect(steps).toContain(`${id} unobservable`);
    }
    for (const id of ['mgmt-vm', 'mgmt-k8s', 'load-balancers', 'juju-model', 'haproxy-sweep']) {
      expect(steps).toContain(`${id} ok`);
    }
    expect(ofType(r.events, 'step.finished').find((e) => e.stepId === 'workload-nodes')?.message).toBe(
      `not observable: ${KUBECTL_WHY}; leaves undecided: uninitialized-taint (mgmt down), uninitialized-taint (mgmt up)`,
    );
    expect(r.findings.some((f) => f.startsWith('D-041 mgmt VM capi-mgmt-v2 is SHUTOFF'))).toBe(true);
    expect(r.findings.some((f) => f.startsWith('amphora orphans, failed-spawn variant'))).toBe(true);
    expect(r.findings).toContain(
      `undecided, not observable (${KUBECTL_WHY}): uninitialized-taint (mgmt down), uninitialized-taint (mgmt up), Cluster not Available on an LB timeout, stuck-delete`,
    );
    expect(r.changes).toEqual([]);
  });

  it('should refuse recover before step 1, naming kubectl, and touch nothing', async () => {
    const r = await run('no-kubectl', 'recover');
    expect(r.outcome).toMatchObject({
      status: 'failed',
      message: expect.stringMatching(
        /^recover cannot start: kubectl is not on the jumphost's PATH and it requires it; nothing was run\. Install kubectl on the jumphost/,
      ),
    });
    expect(ofType(r.events, 'step.started')).toEqual([]);
    expect(ofType(r.events, 'preflight')).toEqual([]);
    expect(r.attempts).toEqual([]);
    expect(r.state.servers.find((s) => s.name === 'capi-mgmt-v2')?.status).toBe('SHUTOFF');
  });
});
