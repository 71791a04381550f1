import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runToEnd } from '../src/engine/engine.js';
import { MemoryAttempts } from '../src/engine/in-process.js';
import { parseKnownErrors, parseRunbook, parseScopes } from '../src/runbook/load.js';
import type { Runbook } from '../src/runbook/model.js';
import { ofType, recorder, scriptedApprovals, testSite, usePlainJumphost } from './support/engine.js';

/**
 * The remote-execution traps of appendix A, end to end over a real sshd and bash: L1 (a zero count
 * is an answer), the stale juju macaroon (a known error stops the step, never retried) and the
 * nginx sed trap (an edit is proven by reading it back). The known-error signatures are the shipped
 * ones from commands/scopes.yaml.
 */

const SCOPES_FILE = new URL('../commands/scopes.yaml', import.meta.url).pathname;
/** What juju prints when its macaroon is stale and </dev/null answers the password prompt. */
const STALE_MACAROON =
  'please enter password for admin on sim-controller: \nERROR cannot get discharge from "https://127.0.0.1:17070/auth": EOF';

const jump = usePlainJumphost();
let shipped: { scopes: ReturnType<typeof parseScopes>; knownErrors: ReturnType<typeof parseKnownErrors> };

beforeAll(async () => {
  const text = await readFile(SCOPES_FILE, 'utf8');
  shipped = { scopes: parseScopes(SCOPES_FILE, text), knownErrors: parseKnownErrors(SCOPES_FILE, text) };
});

function runbook(steps: string): Runbook {
  return parseRunbook(
    '/test/traps.yaml',
    `name: traps\nsummary: traps\nsource: test\nsteps:\n${steps}`,
    shipped.scopes,
    shipped.knownErrors,
  );
}

async function run(rb: Runbook) {
  const rec = recorder();
  const outcome = await runToEnd({
    runId: 'run-traps',
    runbook: rb,
    params: {},
    site: testSite(),
    requestedBy: 'U_REQUESTER',
    executor: jump.executor,
    approvals: scriptedApprovals([]),
    attempts: new MemoryAttempts(),
    emit: rec.emit,
  });
  return { outcome, events: rec.events };
}

describe('L1: a count of zero is an answer, not a failure', () => {
  it('should read a grep -c of zero as the answer 0 when the step lists exit 1 in ok_exit', async () => {
    await writeFile(
      path.join(jump.home, 'stat.csv'),
      'keystone-public,keystone-0,UP\nkeystone-public,keystone-1,UP\n',
    );
    const { outcome, events } = await run(
      runbook(`  - id: count-down
    title: Count DOWN rows
    run: grep -c ',DOWN' ~/stat.csv
    ok_exit: [0, 1]
    capture:
      down: num(out)
    decide:
      - when: down == 0
        finish: "zero DOWN"
`),
    );
    expect(outcome).toMatchObject({ status: 'succeeded', message: 'zero DOWN' });
    expect(ofType(events, 'step.finished')[0]).toMatchObject({ status: 'ok', exitCode: 1 });
  });

  it('should still stop the run on a grep -c of zero when the step does not say exit 1 is an answer', async () => {
    const { outcome } = await run(
      runbook(`  - id: count-down
    title: Count DOWN rows
    run: grep -c ',DOWN' ~/stat.csv
`),
    );
    expect(outcome).toMatchObject({ status: 'failed', message: 'count-down: exited 1: 0' });
  });

  it('should keep a real grep error a failure when only exit 1 is declared an answer', async () => {
    const { outcome } = await run(
      runbook(`  - id: count-down
    title: Count DOWN rows
    run: grep -c ',DOWN' ~/no-such-file.csv
    ok_exit: [0, 1]
`),
    );
    expect(outcome.status).toBe('failed');
    expect(outcome.message).toMatch(/exited 2: grep: .*no-such-file\.csv: No such file or directory/);
  });

  it('should refuse ok_exit without 0 when the runbook is loaded', () => {
    expect(() =>
      runbook(`  - id: x
    title: X
    run: "true"
    ok_exit: [1]
`),
    ).toThrow(/ok_exit: lists the exit codes that are answers, 0 included/);
  });
});

describe('stale juju macaroon: "cannot get discharge ... EOF"', () => {
  const staleStep = (extra: string) => `  - id: read-units
    title: Read the units
    run: |
      printf '%s\\n' '${STALE_MACAROON.replace(/\n/g, "'\n      printf '%s\\n' '")}' >&2
      exit 1
${extra}`;

  it('should stop the step with the juju login fix when the output carries the stale-macaroon error', async () => {
    const { outcome, events } = await run(runbook(staleStep('')));
    expect(outcome).toMatchObject({ status: 'failed', failedStep: 'read-units' });
    expect(outcome.message).toMatch(/^read-units: the juju login expired: run `juju login` on the jumphost/);
    expect(outcome.message).toMatch(/controller is not down/);
    expect(ofType(events, 'step.finished')[0]).toMatchObject({ status: 'failed' });
  });

  it('should stop even a step that allows failure when the error is a known one', async () => {
    const { outcome } = await run(runbook(staleStep('    allow_failure: true\n')));
    expect(outcome.status).toBe('failed');
    expect(outcome.message).toMatch(/the juju login expired/);
  });

  it('should not retry a poll when its first attempt meets the stale macaroon', async () => {
    const { outcome, events } = await run(
      runbook(`  - id: wait-units
    title: Wait for the units
    poll:
      run: |
        printf '%s\\n' 'ERROR cannot get discharge from "https://127.0.0.1:17070/auth": EOF' >&2
        exit 1
      allow_failure: true
      attempts: 5
      every: 10ms
      until: exit_code == 0
      exhausted: never ready
`),
    );
    expect(outcome.message).toMatch(/^wait-units: the juju login expired/);
    expect(ofType(events, 'poll.attempt')).toHaveLength(0);
    expect(ofType(events, 'step.output').filter((e) => /cannot get discharge/.test(e.line))).toHaveLength(1);
  });

  it('should let a step that observes known errors read it as known_error and go on', async () => {
    const { outcome, events } = await run(
      runbook(`${staleStep('    allow_failure: true\n    known_errors: observe\n    capture:\n      login_expired: known_error == "juju-macaroon"\n')}
  - id: verdict
    title: Verdict
    report:
      - when: login_expired
        say: "juju login expired"
    none: "juju login fine"
`),
    );
    expect(outcome.status).toBe('succeeded');
    expect(ofType(events, 'decision').map((d) => d.message)).toEqual(['juju login expired']);
  });
});

describe('the nginx sed trap: an edit is proven by reading it back', () => {
  const edit = (pattern: string) => `  - id: repoint-upstream
    title: Repoint the proxy upstream
    run: sed -i 's/${pattern}/proxy_pass https:\\/\\/127.0.0.2:8443;/' ~/vhost.conf
    verify:
      run: grep -c '^ *proxy_pass https://127.0.0.2:8443;$' ~/vhost.conf
      ok_exit: [0, 1]
      took_effect: num(stdout) == 1
      say: the edit landed
      check_by_hand: "~/vhost.conf has {stdout} matching proxy_pass line(s); sed exits 0 when its pattern matches nothing"
`;

  it('should fail the step when a sed -i matched nothing even though sed exited 0', async () => {
    await writeFile(
      path.join(jump.home, 'vhost.conf'),
      'location / {\n    proxy_pass http://127.0.0.2:80;\n}\n',
    );
    const { outcome, events } = await run(runbook(edit('proxy_pass https:\\/\\/127.0.0.9:80;')));
    expect(outcome).toMatchObject({ status: 'failed', failedStep: 'repoint-upstream' });
    expect(outcome.message).toBe(
      'repoint-upstream: reading back after the command shows it did not take effect: ~/vhost.conf has 0 matching proxy_pass line(s); sed exits 0 when its pattern matches nothing',
    );
    expect(await readFile(path.join(jump.home, 'vhost.conf'), 'utf8')).toContain('http://127.0.0.2:80;');
    expect(ofType(events, 'step.finished')[0]).toMatchObject({ status: 'failed' });
  });

  it('should pass the step when the read-back shows the edit landed', async () => {
    await writeFile(
      path.join(jump.home, 'vhost.conf'),
      'location / {\n    proxy_pass http://127.0.0.2:80;\n}\n',
    );
    const { outcome } = await run(runbook(edit('proxy_pass http:\\/\\/127.0.0.2:80;')));
    expect(outcome.status).toBe('succeeded');
    expect(await readFile(path.join(jump.home, 'vhost.conf'), 'utf8')).toContain(
      '    proxy_pass https://127.0.0.2:8443;',
    );
  });
});
