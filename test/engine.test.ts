/**
 * The engine over a real sshd: what needs a real remote shell (streamed output, timeouts and kills, the
 * login PATH, exit codes, env handover). The interpreter's logic is tested fast in engine-interpreter.test.ts.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { runRunbook } from '../src/engine/engine.js';
import { RunInterrupted, type RunOptions } from '../src/engine/outcome.js';
import { ParamError } from '../src/errors.js';
import type { Runbook } from '../src/runbook/model.js';
import { validateParams } from '../src/runbook/params.js';
import {
  ofType,
  recordedRun,
  recorder,
  runOptions,
  testRunbook,
  usePlainJumphost,
} from './support/engine.js';

const jump = usePlainJumphost();

const readMarks = () => jump.lines('marks');

beforeEach(async () => {
  await jump.write('marks', '');
});

const run = (runbook: Runbook, more: Partial<RunOptions> = {}) => recordedRun(runbook, jump.executor, more);

const A = '11111111-1111-4111-8111-111111111111';

describe('runbook engine over a real sshd', () => {
  it('should stream each step output line to the timeline in order when a runbook succeeds', async () => {
    const rb = testRunbook(`steps:
  - id: greet
    title: Greet
    scope: marked
    run: |
      echo "one"
      echo "in scope: $IN_SCOPE"
      echo "oops" >&2
`);
    const { outcome, events } = run(rb);
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(ofType(events, 'step.output').map((e) => `${e.stream}:${e.line}`)).toEqual([
      'stdout:one',
      'stdout:in scope: yes',
      'stderr:oops',
    ]);
    expect(events.map((e) => e.type)).toEqual([
      'run.started',
      'preflight',
      'step.started',
      'step.output',
      'step.output',
      'step.output',
      'step.finished',
      'run.finished',
    ]);
  });

  it('should kill the remote process and fail the step when it outlives its timeout', async () => {
    const rb = testRunbook(`steps:
  - id: hang
    title: Hang
    timeout: 500ms
    run: echo $$ > ~/hang.pid; sleep 300
  - id: after
    title: After
    run: echo after >> ~/marks
`);
    const { outcome } = run(rb);
    const result = await outcome;
    expect(result).toMatchObject({ status: 'failed', failedStep: 'hang' });
    expect(result.message).toMatch(/timed out after 0\.5s; the remote process group was killed/);
    const pid = (await readFile(path.join(jump.home, 'hang.pid'), 'utf8')).trim();
    const alive = await jump.executor.exec({
      script: `kill -0 ${pid} 2>/dev/null && echo alive || echo gone`,
      env: {},
      timeoutMs: 5000,
    });
    expect(alive.stdout.trim()).toBe('gone');
    expect(await readMarks()).toEqual([]);
  });

  it('should cancel the run and kill the running command when the operator aborts', async () => {
    const abort = new AbortController();
    const rb = testRunbook(`steps:
  - id: long
    title: Long
    run: echo started; sleep 300
  - id: after
    title: After
    run: echo after >> ~/marks
`);
    const seen: string[] = [];
    const { outcome } = run(rb, {
      signal: abort.signal,
      emit: (e) => {
        seen.push(e.type === 'step.finished' ? `${e.type}:${e.status}` : e.type);
        if (e.type === 'step.output' && e.line === 'started') abort.abort();
      },
    });
    expect(await outcome).toMatchObject({ status: 'cancelled' });
    expect(seen.slice(-2)).toEqual(['step.finished:cancelled', 'run.finished']);
    expect(await readMarks()).toEqual([]);
  });

  it('should redact secrets in streamed output when a command prints them', async () => {
    const rb = testRunbook(`steps:
  - id: leak
    title: Leak
    run: |
      echo "OS_PASSWORD=hunter2-very-secret"
      echo "client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo="
`);
    const { outcome, events } = run(rb);
    await outcome;
    const lines = ofType(events, 'step.output').map((e) => e.line);
    expect(lines.join('\n')).not.toMatch(/hunter2|LS0tLS1/);
    expect(lines).toEqual(['OS_PASSWORD=[REDACTED]', 'client-key-data: [REDACTED]']);
  });

  it('should fail before any step when a CLI the runbook requires is missing on the jumphost', async () => {
    const rb = testRunbook(`requires: [openstack]
steps:
  - id: list
    title: List
    run: openstack server list
`);
    const { outcome, events } = run(rb);
    expect(await outcome).toMatchObject({ status: 'failed' });
    expect((await outcome).message).toMatch(
      /^test cannot start: openstack is not on the jumphost's PATH and it requires it; nothing was run/,
    );
    expect(ofType(events, 'step.started')).toHaveLength(0);
  });

  it('should run the other steps and call the one needing a missing CLI not observable when it is not required', async () => {
    const rb = testRunbook(`steps:
  - id: list
    title: List
    run: openstack server list
  - id: home
    title: Home
    run: echo "$HOME"
`);
    const { outcome, events } = run(rb);
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(ofType(events, 'step.finished').map((e) => [e.stepId, e.status, e.message])).toEqual([
      ['list', 'unobservable', "not observable: openstack is not on the jumphost's PATH"],
      ['home', 'ok', undefined],
    ]);
  });

  it('should give a failing command its exit code and last stderr lines when it is not allowed to fail', async () => {
    const rb = testRunbook(`steps:
  - id: broken
    title: Broken
    run: echo "No server with a name or ID of 'x' exists." >&2; exit 1
`);
    const { outcome, events } = run(rb);
    expect(await outcome).toMatchObject({
      status: 'failed',
      message: "broken: exited 1: No server with a name or ID of 'x' exists.",
    });
    expect(ofType(events, 'step.finished')[0]).toMatchObject({ status: 'failed' });
  });
});

describe('interrupting a run', () => {
  it('should report an interrupted run at the step it was on when its process is shutting down', async () => {
    const rb = testRunbook(`steps:
  - id: first
    title: First
    run: echo first
  - id: long
    title: Long
    run: echo started; sleep 300
`);
    const abort = new AbortController();
    const rec = recorder();
    const outcome = await runRunbook(
      runOptions(rb, jump.executor, {
        signal: abort.signal,
        emit: (e) => {
          rec.emit(e);
          if (e.type === 'step.output' && e.line === 'started')
            abort.abort(new RunInterrupted('the agent is shutting down'));
        },
      }),
    );
    expect(outcome).toMatchObject({ status: 'interrupted', checkpoint: { top: 1 } });
    expect(ofType(rec.events, 'run.finished')).toHaveLength(0);
    expect(ofType(rec.events, 'step.finished').at(-1)).toMatchObject({
      stepId: 'long',
      status: 'interrupted',
    });
  });
});

describe('parameters', () => {
  const rb = testRunbook(
    `params:
  - { name: lb, type: uuid, env: LB_ID, description: the load balancer }
steps:
  - id: a
    title: A
    run: echo "$LB_ID"
`,
    'withparam',
  );

  it.each([
    ['shell metacharacters', `${A}; rm -rf /`],
    ['command substitution', '$(reboot)'],
    ['upper case', '0F968008-4C1E-4D2A-9B7E-2B9D3C4E5F60'],
    ['a name instead of an id', 'kube-api-lb'],
  ])('should refuse the argument before anything runs when it holds %s', (_why, value) => {
    expect(() => validateParams(rb, [value])).toThrow(ParamError);
    expect(() => validateParams(rb, [value])).toThrow(/lb must be a lowercase UUID.*Nothing was run/);
  });

  it('should refuse a missing argument with the usage line', () => {
    expect(() => validateParams(rb, [])).toThrow(
      /withparam takes 1 argument\(s\), got 0\. Usage: withparam LB/,
    );
  });

  it('should hand the validated value to the script as an environment variable', async () => {
    const { outcome, events } = run(rb, { params: validateParams(rb, [A]) });
    expect((await outcome).status).toBe('succeeded');
    expect(ofType(events, 'step.output').map((e) => e.line)).toEqual([A]);
  });
});
