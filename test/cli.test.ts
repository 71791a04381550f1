import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startSimJumphost } from '../dev/sim/jumphost.js';
import { createTerminalApprovals } from '../src/fronts/terminal.js';
import { type Finished, spawnCollecting } from './support/process.js';
import { sampleSiteData } from './support/site.js';

const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;

/** A TCP listener standing where the jumphost would be: it only counts who knocks. */
let listener: net.Server;
let connections = 0;
let port = 0;
let dir: string;
let siteFile: string;

const site = (over: Record<string, unknown> = {}) =>
  sampleSiteData({
    name: 'clitest',
    jumphost: {
      host: '127.0.0.1',
      port,
      user: 'root',
      private_key_path: '/nonexistent/key',
      host_key: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    },
    ...over,
  });

beforeAll(async () => {
  listener = net.createServer((s) => {
    connections += 1;
    s.destroy();
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  port = (listener.address() as net.AddressInfo).port;
  dir = await mkdtemp(path.join(os.tmpdir(), 'capi-cli-test-'));
  siteFile = path.join(dir, 'site.yaml');
  await writeFile(siteFile, stringify(site()));
});

afterAll(async () => {
  await new Promise((r) => listener.close(r));
  await rm(dir, { recursive: true, force: true });
});

function cli(args: string[], input?: string): Promise<Finished> {
  return spawnCollecting(process.execPath, [BIN, ...args], input === undefined ? {} : { input }).done;
}

describe('capi-chatops run', () => {
  it.each([
    ['failover', ['0f968008-4c1e-4d2a-9b7e-2b9d3c4e5f60; reboot'], /lb must be a lowercase UUID/],
    ['stuck-delete', ['capi-test-2$(touch /tmp/x)'], /cluster must be a DNS-1123 name/],
    ['stuck-delete', ['Capi_Test'], /cluster must be a DNS-1123 name/],
    ['failover', [], /failover takes 1 argument\(s\), got 0\. Usage: failover LB/],
  ])('should refuse %s %j before opening any connection', async (runbook, args, message) => {
    const before = connections;
    const r = await cli(['run', runbook, ...args, '--site', siteFile]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain('Nothing was run');
    expect(connections).toBe(before);
  });

  it('should print every command with the destructive steps marked when --dry-run is given', async () => {
    const before = connections;
    const r = await cli(['run', 'stuck-delete', 'capi-test-2', '--site', siteFile, '--dry-run']);
    expect(r.code).toBe(0);
    expect(connections).toBe(before);
    expect(r.stdout).toContain('#   CLUSTER=capi-test-2');
    expect(r.stdout).toContain('#   MAGNUM_NS=magnum-0123456789abcdef0123456789abcdef');
    expect(r.stdout).toContain(
      'DESTRUCTIVE -- needs approval: Clear the finalizers of OpenStackCluster {OSC_NAME}',
    );
    expect(r.stdout).toContain(
      `| kubectl -n "$MAGNUM_NS" patch openstackcluster "$OSC_NAME" --type=merge -p '{"metadata":{"finalizers":[]}}'`,
    );
    expect(r.stdout).toContain('| export KUBECONFIG="$MGMT_KUBECONFIG"');
    expect(r.stdout.match(/DESTRUCTIVE/g)).toHaveLength(2);
  });

  it('should name the field and the fix when the site profile is invalid', async () => {
    const bad = path.join(dir, 'bad-site.yaml');
    await writeFile(bad, stringify(site({ capi_project_id: '674171fd', mgmt_fip: 'mgmt.example' })));
    const r = await cli(['run', 'recover', '--site', bad, '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/capi_project_id: must be a 32-character lowercase hex project id/);
    expect(r.stderr).toMatch(/mgmt_fip: must be an IPv4 address/);
  });

  it('should refuse a runbook name that does not exist and list the ones that do', async () => {
    const r = await cli(['run', 'reboot-everything', '--site', siteFile]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /no runbook named 'reboot-everything'; available: appcred-check, conductor, diagnose, failover, haproxy, image-check, park, recover/,
    );
  });

  it('should name the key file and the jumphost when the SSH private key cannot be read', async () => {
    const r = await cli(['run', 'diagnose', '--site', siteFile]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot read the SSH private key /nonexistent/key for root@127.0.0.1:${port}`);
  });
});

describe('capi-chatops run against the simulated jumphost', () => {
  it.each([
    ['--yes approves', ['--yes'], undefined, 0, 1],
    ['a typed y approves', [], 'y\n', 0, 1],
    ['end of input denies', [], undefined, 3, 0],
  ])('should park the mgmt VM from a site file when %s', async (_why, flags, input, exitCode, stops) => {
    const sim = await startSimJumphost({ scenario: 'healthy', timeScale: 0.002 });
    try {
      const file = path.join(dir, `sim-${exitCode}-${stops}.yaml`);
      await writeFile(file, stringify(sim.site));
      const r = await cli(['run', 'park', '--site', file, ...flags], input);
      expect(r.code).toBe(exitCode);
      expect(r.stdout).toContain('!!! APPROVAL NEEDED: Stop the CAPI management VM `capi-mgmt-v2`');
      const stopsRecorded = (await sim.journal()).filter((j) => j.ok && j.action === 'server.stop');
      expect(stopsRecorded).toHaveLength(stops);
    } finally {
      await sim.stop();
    }
  });
});

describe('capi-chatops list', () => {
  it('should show each runbook with its arguments', async () => {
    const r = await cli(['list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {2}failover LB\n/m);
    expect(r.stdout).toMatch(/^ {2}stuck-delete CLUSTER\n/m);
    expect(r.stdout).toMatch(/^ {2}diagnose {2}\(read-only\)/m);
    expect(r.stdout).toMatch(/^ {2}recover\n.*\n {6}requires on the jumphost: openstack, kubectl, ssh\n/m);
  });
});

describe('terminal approvals', () => {
  const request = {} as Parameters<ReturnType<typeof createTerminalApprovals>['ask']>[0];

  it.each([
    ['y', true],
    ['yes', true],
    ['', false],
    ['n', false],
    ['sure', false],
  ])('should decide approved=%s when the operator types %j', async (answer, approved) => {
    const input = new PassThrough();
    const output = new PassThrough();
    const port = createTerminalApprovals({ input, output, operator: 'ops@host', autoApprove: false });
    input.write(`${answer}\n`);
    const decision = await port.ask(request, new AbortController().signal);
    port.close();
    expect(decision.approved).toBe(approved);
    expect(decision.by).toBe('ops@host');
  });

  it('should deny when the input ends without an answer', async () => {
    const input = new PassThrough();
    const port = createTerminalApprovals({
      input,
      output: new PassThrough(),
      operator: 'ops',
      autoApprove: false,
    });
    input.end();
    const decision = await port.ask(request, new AbortController().signal);
    expect(decision).toMatchObject({ approved: false, reason: 'denied', note: 'no answer (end of input)' });
  });

  it('should approve without reading input and say so when --yes is given', async () => {
    const output = new PassThrough();
    const port = createTerminalApprovals({
      input: new PassThrough(),
      output,
      operator: 'ops',
      autoApprove: true,
    });
    const decision = await port.ask(request, new AbortController().signal);
    expect(decision).toMatchObject({ approved: true, by: 'ops (--yes)' });
    expect(String(output.read())).toContain('--yes given');
  });
});
