import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunbookError } from '../src/errors.js';
import { leafSteps, loadRunbooks, parseKnownErrors, parseRunbook, parseScopes } from '../src/runbook/load.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;

async function scopes() {
  const file = join(COMMANDS, 'scopes.yaml');
  return parseScopes(file, await readFile(file, 'utf8'));
}

function refusal(fn: () => unknown): RunbookError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RunbookError);
    return err as RunbookError;
  }
  throw new Error('expected the runbook to be refused');
}

const HEADER = 'summary: test\nsource: test\n';

describe('runbook files in commands/', () => {
  it('should load every shipped runbook when the files are valid', async () => {
    const { runbooks, scopes } = await loadRunbooks(COMMANDS);
    expect([...runbooks.keys()].sort()).toEqual([
      'appcred-check',
      'conductor',
      'diagnose',
      'failover',
      'haproxy',
      'image-check',
      'park',
      'recover',
      'stuck-delete',
      'sweep',
    ]);
    expect([...scopes.keys()].sort()).toEqual(['admin', 'capi-project', 'mgmt-kube', 'mgmt-vm']);
  });

  it('should reach the mgmt VM only through mgmt_ssh, whose host key check is never turned off', async () => {
    const { runbooks, scopes } = await loadRunbooks(COMMANDS);
    const texts = [
      ...[...scopes.values()].map((s) => s.preamble),
      ...[...runbooks.values()].flatMap((rb) => leafSteps(rb.steps).map((s) => s.command.script)),
    ];
    for (const text of texts) {
      expect(text).not.toMatch(/StrictHostKeyChecking=no|UserKnownHostsFile=\/dev\/null/);
    }
    const mgmtVm = scopes.get('mgmt-vm')?.preamble ?? '';
    expect(mgmtVm).toMatch(/StrictHostKeyChecking="\$check"/);
    expect(mgmtVm).toMatch(/check=yes[\s\S]*check=accept-new/);
    const hops = [...runbooks.values()].flatMap((rb) =>
      leafSteps(rb.steps)
        .filter((s) => /\$MGMT_FIP|mgmt_ssh/.test(s.command.script) && !/\/dev\/tcp\//.test(s.command.script))
        .map((s) => [`${rb.name}/${s.id}`, s.scope?.name, /(^|[^_])\bssh /m.test(s.command.script)]),
    );
    expect(hops).toEqual([
      ['diagnose/mgmt-k8s', 'mgmt-vm', false],
      ['recover/k8s-ready', 'mgmt-vm', false],
      ['recover/kubeconfig', 'mgmt-vm', false],
    ]);
  });

  it("should stop on OpenSSH's own words when the mgmt VM's host key is not the one on record", async () => {
    const file = join(COMMANDS, 'scopes.yaml');
    const known = parseKnownErrors(file, await readFile(file, 'utf8'));
    const hostKey = known.find((k) => k.id === 'mgmt-host-key');
    // As OpenSSH 9.2 prints them for HostKeyAlias=capi-mgmt-lab1: a changed key, and a pin the VM does not offer.
    expect(
      hostKey?.match.test('Host key for capi-mgmt-lab1 has changed and you have requested strict checking.'),
    ).toBe(true);
    expect(
      hostKey?.match.test(
        'No ED25519 host key is known for capi-mgmt-lab1 and you have requested strict checking.',
      ),
    ).toBe(true);
    expect(
      hostKey?.match.test('Host key for juju-unit-3 has changed and you have requested strict checking.'),
    ).toBe(false);
    expect(hostKey?.message).toMatch(/^the mgmt VM answered with a host key other than the one on record/);
  });

  it('should mark exactly the seed-listed destructive actions when loading the shipped runbooks', async () => {
    const { runbooks } = await loadRunbooks(COMMANDS);
    const destructive = [...runbooks.values()].flatMap((rb) =>
      leafSteps(rb.steps)
        .filter((s) => s.kind === 'run' && s.destructive)
        .map((s) => `${rb.name}:${s.id}`),
    );
    // The product's list: delete orphaned amphorae, patch finalizers, neutron clean-up, LB failover, stop the mgmt VM,
    // reload haproxy on one unit (D-045).
    expect(destructive.sort()).toEqual([
      'failover:failover-lb',
      'haproxy:reload',
      'park:stop-mgmt-vm',
      'recover:delete-orphan',
      'recover:failover-lb',
      'stuck-delete:clear-finalizers',
      'stuck-delete:neutron-cleanup',
      'sweep:delete-orphan',
    ]);
  });

  it('should keep the check runbooks free of destructive steps when they are declared read-only', async () => {
    const { runbooks } = await loadRunbooks(COMMANDS);
    const readOnly = [...runbooks.values()].filter((rb) => rb.readOnly).map((rb) => rb.name);
    expect(readOnly.sort()).toEqual(['appcred-check', 'conductor', 'diagnose', 'image-check']);
    for (const name of readOnly) {
      const rb = runbooks.get(name);
      expect(leafSteps(rb?.steps ?? []).some((s) => s.kind === 'run' && s.destructive)).toBe(false);
    }
  });

  it('should close stdin on every juju ssh in the shipped runbooks (DOCFIX-021)', async () => {
    const { runbooks } = await loadRunbooks(COMMANDS);
    const scripts = [...runbooks.values()].flatMap((rb) =>
      leafSteps(rb.steps).flatMap((s) => [
        s.command.script,
        ...(s.kind === 'run'
          ? [...s.guard, ...(s.verify ? [s.verify] : [])].map((g) => g.command.script)
          : []),
      ]),
    );
    const calls = scripts.flatMap((text) =>
      text.split(/(?=juju ssh )/).filter((c) => c.startsWith('juju ssh ')),
    );
    expect(calls.length).toBeGreaterThan(5);
    for (const call of calls) expect(call, call).toMatch(/^juju ssh [^\n]*?'[^']*' <\/dev\/null/s);
  });

  it('should carry the stale-macaroon signature among the known errors when scopes.yaml is loaded', async () => {
    const file = join(COMMANDS, 'scopes.yaml');
    const known = parseKnownErrors(file, await readFile(file, 'utf8'));
    const macaroon = known.find((k) => k.id === 'juju-macaroon');
    expect(macaroon?.match.test('ERROR cannot get discharge from "https://127.0.0.1:17070/auth": EOF')).toBe(
      true,
    );
    expect(macaroon?.match.test('ERROR cannot connect to controller: connection refused')).toBe(false);
    expect(macaroon?.message).toMatch(/^the juju login expired: run `juju login` on the jumphost/);
  });

  it('should reference each scope preamble by name when a step needs openstack credentials', async () => {
    const { runbooks } = await loadRunbooks(COMMANDS);
    for (const rb of runbooks.values()) {
      for (const s of leafSteps(rb.steps)) {
        expect(s.command.script, `${rb.name}/${s.id} copies a preamble`).not.toMatch(/source .*openrc/);
        if (/\bopenstack\b/.test(s.command.script))
          expect(s.scope, `${rb.name}/${s.id} has no scope`).toBeDefined();
      }
    }
  });
});

describe('invalid runbook files', () => {
  const file = '/runbooks/bad.yaml';
  const parse = async (body: string) => {
    const sc = await scopes();
    return () => parseRunbook(file, `name: bad\n${HEADER}${body}`, sc);
  };

  it('should name the file, the line and the path when a step has no run, poll or for_each', async () => {
    const err = refusal(await parse('steps:\n  - id: one\n    title: One\n    scope: admin\n'));
    expect(err.message).toContain('runbook /runbooks/bad.yaml is invalid');
    expect(err.issues).toEqual([
      expect.stringMatching(/^line 5, steps\[0\]: a step needs exactly one of run, poll/),
    ]);
  });

  it('should refuse a destructive step when it has no guard or approval', async () => {
    const err = refusal(
      await parse(
        'steps:\n  - id: zap\n    title: Zap\n    destructive: true\n    run: openstack server delete "$X"\n',
      ),
    );
    expect(err.issues.join('\n')).toMatch(/steps\[0\]: a destructive step needs `approval`.*and a `guard`/);
  });

  it('should point at the column when an expression has a syntax error', async () => {
    const err = refusal(
      await parse('steps:\n  - id: one\n    title: One\n    run: echo hi\n    expect: stdout == "hi" and\n'),
    );
    expect(err.issues[0]).toMatch(/^line 8, steps\[0\]\.expect: /);
    expect(err.issues[0]).toContain('^');
  });

  it('should refuse a variable when no earlier step captures it', async () => {
    const err = refusal(
      await parse(
        'steps:\n  - id: one\n    title: One\n    run: echo hi\n    expect: len(zombies) == 0\n  - id: two\n    title: Two\n    run: echo\n    capture:\n      zombies: lines(stdout)\n',
      ),
    );
    expect(err.issues).toEqual([
      expect.stringMatching(/steps\[0\]\.expect: uses 'zombies', which no earlier step captures/),
    ]);
  });

  it('should refuse a backward goto when a decision would loop', async () => {
    const err = refusal(
      await parse(
        'steps:\n  - id: one\n    title: One\n    run: echo\n  - id: two\n    title: Two\n    run: echo\n    decide:\n      - when: "true"\n        goto: one\n',
      ),
    );
    expect(err.issues).toEqual([
      expect.stringMatching(/steps\[1\]\.decide\[0\]\.goto: 'one' is not after this step/),
    ]);
  });

  it('should refuse an unknown scope, a bad duration and an unknown key all at once', async () => {
    const err = refusal(
      await parse(
        'steps:\n  - id: one\n    title: One\n    scope: tenant\n    run: echo\n  - id: two\n    title: Two\n    poll:\n      run: echo\n      attempts: 3\n      every: soon\n      until: "true"\n      exhausted: never\n  - id: three\n    title: Three\n    run: echo\n    retries: 3\n',
      ),
    );
    const text = err.issues.join('\n');
    expect(text).toMatch(/steps\[0\]\.scope: unknown scope 'tenant'/);
    expect(text).toMatch(/steps\[1\]\.poll\.every: must be a duration such as 500ms, 10s, 2m or 1h/);
    expect(text).toMatch(/steps\[2\]: .*retries/);
    expect(err.issues).toHaveLength(3);
  });

  it('should refuse a nested for_each when a loop contains a loop', async () => {
    const err = refusal(
      await parse(
        'steps:\n  - id: outer\n    title: Outer\n    for_each: params\n    as: a\n    steps:\n      - id: inner\n        title: Inner\n        for_each: params\n        as: b\n        steps: []\n',
      ),
    );
    expect(err.issues).toEqual([expect.stringMatching(/steps\[0\]\.steps\[0\]: for_each cannot be nested/)]);
  });

  it("should refuse a loop item's label that names an unknown value or is too long, and keep a good one", async () => {
    const loop = (label: string) =>
      `params: []\nsteps:\n  - id: read\n    title: Read\n    run: echo\n    parse: json\n    capture:\n      lbs: out\n  - id: each\n    title: Each\n    for_each: lbs\n    as: lb\n    label: ${JSON.stringify(label)}\n    env:\n      LB_ID: { value: lb.id, type: uuid }\n    steps:\n      - id: show\n        title: Show {LB_ID}\n        run: echo "$LB_ID"\n`;
    const unknown = refusal(await parse(loop('load balancer {balancer.name}')));
    expect(unknown.issues).toEqual([expect.stringMatching(/steps\[1\]\.label: .*balancer/)]);
    const long = refusal(await parse(loop('x'.repeat(201))));
    expect(long.issues).toEqual([expect.stringMatching(/steps\[1\]\.label: at most 200 characters/)]);
    const sc = await scopes();
    const good = parseRunbook(
      '/runbooks/good.yaml',
      `name: good\n${HEADER}${loop('load balancer {lb.name}, VIP {lb.vip} {LB_ID}')}`,
      sc,
    );
    const each = good.steps[1];
    expect(each?.kind === 'for_each' && each.label?.source).toBe(
      'load balancer {lb.name}, VIP {lb.vip} {LB_ID}',
    );
  });

  it('should refuse a file whose name does not match its runbook name', async () => {
    const sc = await scopes();
    const err = refusal(() =>
      parseRunbook(
        '/runbooks/other.yaml',
        `name: bad\n${HEADER}steps:\n  - id: a\n    title: A\n    run: echo\n`,
        sc,
      ),
    );
    expect(err.issues).toEqual([expect.stringMatching(/name: is 'bad' but the file is other\.yaml/)]);
  });

  it('should refuse verify on a step that is not a run step, a verify without check_by_hand and a destructive step without verify', async () => {
    const err = refusal(
      await parse(
        'steps:\n  - id: one\n    title: One\n    run: sed -i s/a/b/ f\n    verify:\n      run: grep -c b f\n      took_effect: num(stdout) == 1\n      say: edited\n  - id: two\n    title: Two\n    poll:\n      run: echo\n      attempts: 1\n      every: 1s\n      until: "true"\n      exhausted: never\n    verify:\n      run: "true"\n      took_effect: "true"\n      say: s\n      check_by_hand: m\n  - id: three\n    title: Three\n    destructive: true\n    guard: [{ run: "true", skip_when: "false", say: s }]\n    approval: { summary: s, targets: [t] }\n    run: "true"\n',
      ),
    );
    const text = err.issues.join('\n');
    expect(text).toMatch(/steps\[0\]\.verify\.check_by_hand: /);
    expect(text).toMatch(/steps\[1\]: .*verify/);
    expect(text).toMatch(/steps\[2\]: a destructive step needs `verify`/);
  });

  it('should refuse a step that parses a kubeconfig unless it is sensitive', async () => {
    const err = refusal(
      await parse(
        'steps:\n  - id: one\n    title: One\n    run: cat kc\n    parse: kubeconfig\n  - id: two\n    title: Two\n    sensitive: true\n    run: cat kc\n    parse: kubeconfig\n',
      ),
    );
    expect(err.issues).toEqual([
      expect.stringMatching(
        /steps\[0\]\.parse: parse: kubeconfig reads credentials: the step must say sensitive: true/,
      ),
    ]);
  });

  it('should refuse a known error whose pattern is not a regular expression', () => {
    expect(() =>
      parseKnownErrors(
        '/runbooks/scopes.yaml',
        'scopes: {}\nknown_errors:\n  - id: broken\n    source: test\n    match: "cannot ("\n    message: m\n',
      ),
    ).toThrow(/known_errors\[0\]\.match: regex "cannot \(" does not compile/);
  });

  it('should hold known errors to the regex guard expressions get, so no remote output can hang an agent', () => {
    const scopes = (match: string) =>
      `scopes: {}\nknown_errors:\n  - id: slow\n    source: test\n    match: '${match}'\n    message: m\n`;
    expect(() => parseKnownErrors('/runbooks/scopes.yaml', scopes('(a+)+$'))).toThrow(
      /known_errors\[0\]\.match: regex "\(a\+\)\+\$" repeats a group that itself repeats/,
    );
    expect(() => parseKnownErrors('/runbooks/scopes.yaml', scopes('x'.repeat(201)))).toThrow(
      /known_errors\[0\]\.match: regex .* is 201 characters long, over the limit of 200/,
    );
    const [ok] = parseKnownErrors('/runbooks/scopes.yaml', scopes('cannot get discharge from .*EOF'));
    expect(ok?.match.test('ERROR cannot get discharge from https://c: EOF')).toBe(true);
  });

  it('should report YAML syntax errors with their line when the file is not YAML', async () => {
    const err = refusal(await parse('steps:\n  - id: one\n   title: [unclosed\n'));
    expect(err.issues[0]).toMatch(/^line \d+, YAML syntax: /);
  });

  describe('loading a directory', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'capi-runbooks-'));
      await writeFile(join(dir, 'scopes.yaml'), await readFile(join(COMMANDS, 'scopes.yaml'), 'utf8'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('should refuse to start when one file in the directory is invalid', async () => {
      await writeFile(
        join(dir, 'good.yaml'),
        `name: good\n${HEADER}steps:\n  - id: a\n    title: A\n    run: echo\n`,
      );
      await writeFile(join(dir, 'broken.yaml'), `name: broken\n${HEADER}steps: []\n`);
      await expect(loadRunbooks(dir)).rejects.toThrow(
        /broken\.yaml is invalid:\n.*steps: a runbook needs at least one step/,
      );
    });
  });
});

describe('the jumphost tools a runbook calls and requires', () => {
  const file = '/runbooks/tools.yaml';
  const DESTRUCTIVE_STEP = `  - id: zap
    title: Zap
    destructive: true
    scope: admin
    guard:
      - run: juju status --format json
        skip_when: "false"
        say: nothing
    approval: { summary: zap, targets: ["x"] }
    verify: { run: "true", took_effect: "true", say: ok, check_by_hand: look }
    run: |
      # kubectl is only named in this comment
      ssh -i ~/.ssh/id_ed25519 host 'uptime' </dev/null
      juju ssh -m "$JUJU_MODEL" keystone/0 'hostname' </dev/null
`;

  it('should find each tool where it is called, not in comments, paths or other words, and not ssh in juju ssh', async () => {
    const sc = await scopes();
    const rb = parseRunbook(
      file,
      `name: tools\n${HEADER}requires: [openstack, ssh, juju]\nsteps:\n${DESTRUCTIVE_STEP}  - id: read
    title: Read
    run: test -s ~/.ssh/config && ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub; echo "$MGMT_SSH_KEY"
`,
      sc,
    );
    expect(leafSteps(rb.steps).map((s) => [s.id, s.tools])).toEqual([
      ['zap', ['ssh', 'juju']],
      ['read', []],
    ]);
    expect(rb.requires).toEqual(['openstack', 'ssh', 'juju']);
  });

  it('should refuse a destructive runbook whose requires leaves out a tool its steps call', async () => {
    const sc = await scopes();
    const err = refusal(() =>
      parseRunbook(file, `name: tools\n${HEADER}requires: [openstack]\nsteps:\n${DESTRUCTIVE_STEP}`, sc),
    );
    expect(err.issues).toEqual([
      expect.stringMatching(
        /requires: must list ssh, juju: step 'zap' is destructive, so the runbook refuses to start without every tool its steps call rather than stop half-way \(write requires: \[openstack, ssh, juju\]\)$/,
      ),
    ]);
  });

  it('should refuse a tool it does not know in requires', async () => {
    const sc = await scopes();
    const err = refusal(() =>
      parseRunbook(
        file,
        `name: tools\n${HEADER}requires: [helm]\nsteps:\n  - id: a\n    title: A\n    run: "true"\n`,
        sc,
      ),
    );
    expect(err.issues).toEqual([
      expect.stringMatching(/requires\[0\]: must be one of openstack, kubectl, ssh, juju$/),
    ]);
  });

  it('should make recover require openstack, kubectl and ssh and leave diagnose requiring nothing', async () => {
    const { runbooks } = await loadRunbooks(COMMANDS);
    expect(runbooks.get('recover')?.requires).toEqual(['openstack', 'kubectl', 'ssh']);
    expect(runbooks.get('diagnose')?.requires).toEqual([]);
    expect(runbooks.get('diagnose')?.tools).toEqual(['openstack', 'kubectl', 'ssh', 'juju']);
  });
});
