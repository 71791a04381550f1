import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type Checkpoint,
  RunInterrupted,
  type RunOptions,
  runRunbook,
  runToEnd,
  validateParams,
} from '../src/engine/engine.js';
import { ApprovalPending, type ApprovalPort } from '../src/engine/events.js';
import { MemoryAttempts } from '../src/engine/in-process.js';
import { ParamError } from '../src/errors.js';
import type { Runbook } from '../src/runbook/model.js';
import { connectSsh } from '../src/ssh/executor.js';
import type { RemoteExecutor } from '../src/ssh/types.js';
import {
  ofType,
  recorder,
  scriptedApprovals,
  startPlainJumphost,
  testRunbook,
  testSite,
} from './support/engine.js';

let jump: Awaited<ReturnType<typeof startPlainJumphost>>;
let executor: RemoteExecutor;

beforeAll(async () => {
  jump = await startPlainJumphost();
  executor = await connectSsh({ target: jump.sshd.target });
});
afterAll(async () => {
  await executor?.close();
  await jump?.stop();
});

const marks = () => path.join(jump.home, 'marks');
const readMarks = async () =>
  (await readFile(marks(), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');

beforeEach(async () => {
  await writeFile(marks(), '');
});

function run(runbook: Runbook, more: Partial<RunOptions> = {}) {
  const rec = recorder();
  const approvals = more.approvals ?? scriptedApprovals([]);
  const outcome = runToEnd({
    runId: 'run-test',
    runbook,
    params: {},
    site: testSite(),
    requestedBy: 'U_REQUESTER',
    executor,
    approvals,
    attempts: new MemoryAttempts(),
    emit: rec.emit,
    ...more,
  });
  return { outcome, events: rec.events };
}

/** Two items, each deleted by a destructive step guarded by "is it still listed in ~/items?". */
const TWO_DELETES = testRunbook(`steps:
  - id: list
    title: List items
    run: cat ~/items
    parse: lines
    capture:
      items: out
  - id: delete
    title: Delete each item
    for_each: items
    as: item
    env:
      ITEM: { value: item, type: uuid }
    steps:
      - id: delete-one
        title: Delete {ITEM}
        destructive: true
        guard:
          - run: cat ~/items
            parse: lines
            skip_when: not (ITEM in out)
            say: "{ITEM} is no longer listed -> not deleting"
        approval:
          summary: Delete {ITEM}
          targets: ["item {ITEM}"]
          evidence: ["listed in ~/items"]
        verify:
          run: cat ~/items
          parse: lines
          took_effect: not (ITEM in out)
          say: "{ITEM} is no longer listed"
          check_by_hand: "cat ~/items"
        run: |
          echo "deleted $ITEM" >> ~/marks
          grep -v "$ITEM" ~/items > ~/items.new; mv ~/items.new ~/items
`);

const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';

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

  it('should run each destructive command exactly once per approval when every item is approved', async () => {
    await writeFile(path.join(jump.home, 'items'), `${A}\n${B}\n`);
    const approvals = scriptedApprovals(['approve', 'approve']);
    const { outcome } = run(TWO_DELETES, { approvals });
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(await readMarks()).toEqual([`deleted ${A}`, `deleted ${B}`]);
    expect(approvals.requests.map((r) => r.targets)).toEqual([[`item ${A}`], [`item ${B}`]]);
    expect(approvals.requests[0]?.commands[0]).toContain(`echo "deleted ${A}" >> ~/marks`);
  });

  it('should stop the run and run nothing destructive when the approver denies', async () => {
    await writeFile(path.join(jump.home, 'items'), `${A}\n${B}\n`);
    const { outcome, events } = run(TWO_DELETES, { approvals: scriptedApprovals(['deny']) });
    expect(await outcome).toMatchObject({ status: 'denied', failedStep: 'delete/delete-one' });
    expect(await readMarks()).toEqual([]);
    expect(ofType(events, 'step.finished').find((e) => e.stepId === 'delete/delete-one')?.status).toBe(
      'denied',
    );
  });

  it('should treat an expired approval as a denial and say so when nobody decides in time', async () => {
    await writeFile(path.join(jump.home, 'items'), `${A}\n`);
    const { outcome } = run(TWO_DELETES, { approvals: scriptedApprovals(['expire']) });
    const result = await outcome;
    expect(result.status).toBe('denied');
    expect(result.message).toMatch(/expired \(counts as a denial\)/);
    expect(await readMarks()).toEqual([]);
  });

  it('should skip the destructive command when the state changed while the human was deciding', async () => {
    await writeFile(path.join(jump.home, 'items'), `${A}\n`);
    // While the approver looks at the request, someone else already removes the item.
    const approvals = scriptedApprovals(['approve'], async () => {
      await writeFile(path.join(jump.home, 'items'), '');
    });
    const { outcome, events } = run(TWO_DELETES, { approvals });
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(await readMarks()).toEqual([]);
    expect(ofType(events, 'guard.skipped').map((e) => e.message)).toEqual([
      `${A} is no longer listed -> not deleting`,
    ]);
  });

  it('should not ask for approval when the guard already shows nothing to do', async () => {
    await writeFile(path.join(jump.home, 'items'), `${A}\n`);
    const rb = testRunbook(`steps:
  - id: delete-one
    title: Delete
    env:
      ITEM: { value: '"${A}"', type: uuid }
    destructive: true
    guard:
      - run: "true"
        skip_when: "true"
        say: already done
    approval:
      summary: Delete {ITEM}
      targets: ["{ITEM}"]
    verify: { run: "true", took_effect: "true", say: done, check_by_hand: "~/marks" }
    run: echo ran >> ~/marks
`);
    const approvals = scriptedApprovals(['approve']);
    const { outcome } = run(rb, { approvals });
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(approvals.requests).toHaveLength(0);
    expect(await readMarks()).toEqual([]);
  });

  it('should refuse a value taken from command output when it is not the declared type', async () => {
    await writeFile(path.join(jump.home, 'items'), `${A}\n$(touch ~/pwned); rm -rf ~\n`);
    const approvals = scriptedApprovals(['approve', 'approve']);
    const { outcome } = run(TWO_DELETES, { approvals });
    const result = await outcome;
    expect(result.status).toBe('failed');
    expect(result.message).toMatch(/ITEM from `item` is not safe to use: ITEM must be a lowercase UUID/);
    // The first, valid item was handled; the malformed one never reached a command.
    expect(await readMarks()).toEqual([`deleted ${A}`]);
    expect(approvals.requests).toHaveLength(1);
  });

  it('should jump forward when a decision says goto and finish early when one says finish', async () => {
    const rb = testRunbook(`steps:
  - id: look
    title: Look
    run: echo ACTIVE
    decide:
      - when: stdout == "ACTIVE"
        say: "already ACTIVE -> skipping the start"
        goto: check
  - id: start
    title: Start
    run: echo started >> ~/marks
  - id: check
    title: Check
    run: echo done
    decide:
      - when: stdout == "done"
        finish: "nothing left to do"
  - id: never
    title: Never
    run: echo never >> ~/marks
`);
    const { outcome, events } = run(rb);
    expect(await outcome).toMatchObject({ status: 'succeeded', message: 'nothing left to do' });
    expect(ofType(events, 'step.started').map((e) => e.stepId)).toEqual(['look', 'check']);
    expect(ofType(events, 'decision').map((e) => e.message)).toEqual([
      'already ACTIVE -> skipping the start',
    ]);
    expect(await readMarks()).toEqual([]);
  });

  it('should report every poll attempt and pass when the gate opens', async () => {
    await writeFile(path.join(jump.home, 'counter'), '0');
    const rb = testRunbook(`steps:
  - id: wait
    title: Wait
    poll:
      run: n=$(( $(cat ~/counter) + 1 )); echo $n > ~/counter; [ $n -ge 3 ] && echo READY || echo "not yet ($n)"
      attempts: 5
      every: 10s
      progress: "{stdout}"
      until: stdout == "READY"
      exhausted: never ready
`);
    const { outcome, events } = run(rb);
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(ofType(events, 'poll.attempt').map((e) => `${e.attempt}/${e.of} ${e.summary}`)).toEqual([
      '1/5 not yet (1)',
      '2/5 not yet (2)',
      '3/5 READY',
    ]);
  });

  it('should stop with the fail_when message and without retrying when a poll sees ERROR', async () => {
    const rb = testRunbook(`steps:
  - id: wait
    title: Wait
    poll:
      run: echo ERROR
      attempts: 5
      every: 10s
      until: stdout == "ACTIVE"
      fail_when: stdout == "ERROR"
      fail_message: "failover FAILED -- read octavia-worker.log; do NOT retry blind"
      exhausted: never
`);
    const { outcome, events } = run(rb);
    expect(await outcome).toMatchObject({
      status: 'failed',
      message: 'wait: failover FAILED -- read octavia-worker.log; do NOT retry blind',
    });
    expect(ofType(events, 'poll.attempt')).toHaveLength(1);
  });

  it('should fail with the exhausted message when the attempts run out', async () => {
    const rb = testRunbook(`steps:
  - id: wait
    title: Wait
    poll:
      run: echo BUILD
      attempts: 2
      every: 1s
      until: stdout == "ACTIVE"
      exhausted: "still {stdout} after 2 attempts"
`);
    const { outcome } = run(rb);
    expect(await outcome).toMatchObject({ status: 'failed', message: 'wait: still BUILD after 2 attempts' });
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
    const alive = await executor.exec({
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

  it('should fail before any step when a CLI the runbook uses is missing on the jumphost', async () => {
    const rb = testRunbook(`steps:
  - id: list
    title: List
    run: openstack server list
`);
    const { outcome, events } = run(rb);
    expect(await outcome).toMatchObject({ status: 'failed' });
    expect((await outcome).message).toMatch(/the jumphost lacks openstack on its PATH/);
    expect(ofType(events, 'step.started')).toHaveLength(0);
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

describe('suspending and resuming a run', () => {
  const base = (more: Partial<RunOptions>): RunOptions => ({
    runId: 'resumable',
    runbook: TWO_DELETES,
    params: {},
    site: testSite(),
    requestedBy: 'U_REQUESTER',
    executor,
    approvals: scriptedApprovals([]),
    attempts: new MemoryAttempts(),
    emit: () => undefined,
    ...more,
  });
  const pending: ApprovalPort = {
    open: async () => ({ approvalId: 'approval~x' }),
    decision: async (): Promise<never> => {
      throw new ApprovalPending('approval~x', '2026-11-22T12:00:00.000Z');
    },
  };

  it('should stop at an undecided approval and finish from its checkpoint once approved', async () => {
    await writeFile(path.join(jump.home, 'items'), `${A}\n${B}\n`);
    const first = await runRunbook(base({ approvals: pending }));
    expect(first).toMatchObject({ status: 'suspended', approvalId: 'approval~x' });
    if (first.status !== 'suspended') throw new Error('not suspended');
    expect(first.checkpoint).toMatchObject({ top: 1, loop: { n: 0, inner: 0, items: [A, B] } });
    expect(await readMarks()).toEqual([]);

    const rec = recorder();
    const second = await runToEnd(
      base({
        approvals: scriptedApprovals(['approve', 'approve']),
        emit: rec.emit,
        resume: { checkpoint: first.checkpoint, reason: 'approval decided' },
      }),
    );
    expect(second.status).toBe('succeeded');
    expect(await readMarks()).toEqual([`deleted ${A}`, `deleted ${B}`]);
    expect(rec.events[0]).toMatchObject({
      type: 'run.resumed',
      atStep: 'delete',
      reason: 'approval decided',
    });
    expect(ofType(rec.events, 'run.started')).toHaveLength(0);
  });

  it('should keep the item list it froze when a resumed loop meets a changed cloud', async () => {
    await writeFile(path.join(jump.home, 'items'), `${A}\n${B}\n`);
    const checkpoint: Checkpoint = {
      top: 1,
      loop: { items: [A, B], n: 1, inner: 0 },
      captured: { items: [A, B] },
    };
    // A new item appeared after the loop started: it was never looked at, so it is not acted on.
    const C = '33333333-3333-4333-8333-333333333333';
    await writeFile(path.join(jump.home, 'items'), `${A}\n${B}\n${C}\n`);
    const approvals = scriptedApprovals(['approve', 'approve']);
    const outcome = await runToEnd(base({ approvals, resume: { checkpoint, reason: 'agent restarted' } }));
    expect(outcome.status).toBe('succeeded');
    expect(await readMarks()).toEqual([`deleted ${B}`]);
    expect(approvals.requests.map((r) => r.targets[0])).toEqual([`item ${B}`]);
  });

  it('should not run a destructive command again when resumed at a step whose action already happened', async () => {
    await writeFile(path.join(jump.home, 'items'), `${A}\n`);
    const checkpoints: Checkpoint[] = [];
    await runToEnd(
      base({ approvals: scriptedApprovals(['approve']), onCheckpoint: (cp) => void checkpoints.push(cp) }),
    );
    expect(await readMarks()).toEqual([`deleted ${A}`]);
    // The agent died after the delete ran but before it could record that: it resumes at the delete.
    const atDelete = checkpoints.find((cp) => cp.loop?.n === 0);
    expect(atDelete).toBeDefined();
    const rec = recorder();
    const outcome = await runToEnd(
      base({
        approvals: scriptedApprovals(['approve']),
        emit: rec.emit,
        resume: { checkpoint: atDelete as Checkpoint, reason: 'agent restarted' },
      }),
    );
    expect(outcome.status).toBe('succeeded');
    expect(await readMarks()).toEqual([`deleted ${A}`]);
    expect(ofType(rec.events, 'guard.skipped').map((e) => e.message)).toEqual([
      `${A} is no longer listed -> not deleting`,
    ]);
  });

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
      base({
        runbook: rb,
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

  it('should say who cancelled when the abort carries a name', async () => {
    const abort = new AbortController();
    abort.abort('U0CANCEL via Slack');
    const outcome = await runToEnd(base({ signal: abort.signal }));
    expect(outcome).toMatchObject({ status: 'cancelled', message: 'cancelled by U0CANCEL via Slack' });
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
    const rec = recorder();
    const outcome = await runToEnd({
      runId: 'p',
      runbook: rb,
      params: validateParams(rb, [A]),
      site: testSite(),
      requestedBy: 'U',
      executor,
      approvals: scriptedApprovals([]),
      attempts: new MemoryAttempts(),
      emit: rec.emit,
    });
    expect(outcome.status).toBe('succeeded');
    expect(ofType(rec.events, 'step.output').map((e) => e.line)).toEqual([A]);
  });
});
