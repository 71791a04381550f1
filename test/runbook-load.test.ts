import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunbookError } from '../src/errors.js';
import { leafSteps, loadRunbooks, parseRunbook, parseScopes } from '../src/runbook/load.js';

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
      'diagnose',
      'failover',
      'park',
      'recover',
      'stuck-delete',
      'sweep',
    ]);
    expect([...scopes.keys()].sort()).toEqual(['admin', 'capi-project', 'mgmt-kube']);
  });

  it('should mark exactly the seed-listed destructive actions when loading the shipped runbooks', async () => {
    const { runbooks } = await loadRunbooks(COMMANDS);
    const destructive = [...runbooks.values()].flatMap((rb) =>
      leafSteps(rb.steps)
        .filter((s) => s.kind === 'run' && s.destructive)
        .map((s) => `${rb.name}:${s.id}`),
    );
    // The product's list: delete orphaned amphorae, patch finalizers, neutron clean-up, LB failover, stop the mgmt VM.
    expect(destructive.sort()).toEqual([
      'failover:failover-lb',
      'park:stop-mgmt-vm',
      'recover:delete-orphan',
      'recover:failover-lb',
      'stuck-delete:clear-finalizers',
      'stuck-delete:neutron-cleanup',
      'sweep:delete-orphan',
    ]);
  });

  it('should keep diagnose free of destructive steps when it is declared read-only', async () => {
    const { runbooks } = await loadRunbooks(COMMANDS);
    const diagnose = runbooks.get('diagnose');
    expect(diagnose?.readOnly).toBe(true);
    expect(leafSteps(diagnose?.steps ?? []).some((s) => s.kind === 'run' && s.destructive)).toBe(false);
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
