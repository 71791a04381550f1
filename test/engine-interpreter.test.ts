/**
 * The interpreter's fast tier: branching, decisions, polls, guards, approvals and resumption, driven through
 * runRunbook against an in-memory executor that answers each command from a script. Milliseconds per test;
 * what needs a real remote shell (streaming, kills, timeouts, the login environment) is in engine.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { runRunbook, runToEnd } from '../src/engine/engine.js';
import { ApprovalPending, type ApprovalPort } from '../src/engine/events.js';
import type { Checkpoint } from '../src/engine/outcome.js';
import {
  ofType,
  recordedRun,
  recorder,
  runOptions,
  scriptedApprovals,
  testRunbook,
} from './support/engine.js';
import { ScriptedExecutor } from './support/scripted-executor.js';

const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';

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
        run: delete-item "$ITEM"
`);

/** A jumphost whose ~/items lists what exists and whose `delete-item` removes one and records it. */
function itemsHost(initial: readonly string[]) {
  const state = { items: [...initial], deleted: [] as string[] };
  const executor = new ScriptedExecutor([
    [
      'delete-item',
      (req) => {
        const item = req.env.ITEM ?? '';
        state.deleted.push(item);
        state.items = state.items.filter((i) => i !== item);
        return {};
      },
    ],
    ['cat ~/items', () => ({ stdout: state.items.map((i) => `${i}\n`).join('') })],
  ]);
  return { state, executor };
}

describe('destructive steps: guard, approval, guard, send', () => {
  it('should send each destructive command exactly once per approval when every item is approved', async () => {
    const { state, executor } = itemsHost([A, B]);
    const approvals = scriptedApprovals(['approve', 'approve']);
    const { outcome } = recordedRun(TWO_DELETES, executor, { approvals });
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(state.deleted).toEqual([A, B]);
    expect(executor.sent('delete-item')).toHaveLength(2);
    expect(approvals.requests.map((r) => r.targets)).toEqual([[`item ${A}`], [`item ${B}`]]);
    expect(approvals.requests[0]?.commands[0]).toContain(`delete-item "${A}"`);
    expect(executor.unanswered).toEqual([]);
  });

  it('should stop the run and send nothing destructive when the approver denies', async () => {
    const { state, executor } = itemsHost([A, B]);
    const { outcome, events } = recordedRun(TWO_DELETES, executor, {
      approvals: scriptedApprovals(['deny']),
    });
    expect(await outcome).toMatchObject({ status: 'denied', failedStep: 'delete/delete-one' });
    expect(state.deleted).toEqual([]);
    expect(executor.sent('delete-item')).toEqual([]);
    expect(ofType(events, 'step.finished').find((e) => e.stepId === 'delete/delete-one')?.status).toBe(
      'denied',
    );
  });

  it('should treat an expired approval as a denial and say so when nobody decides in time', async () => {
    const { state, executor } = itemsHost([A]);
    const { outcome } = recordedRun(TWO_DELETES, executor, { approvals: scriptedApprovals(['expire']) });
    const result = await outcome;
    expect(result.status).toBe('denied');
    expect(result.message).toMatch(/expired \(counts as a denial\)/);
    expect(state.deleted).toEqual([]);
  });

  it('should skip the destructive command when the state changed while the human was deciding', async () => {
    const { state, executor } = itemsHost([A]);
    // While the approver looks at the request, someone else already removes the item.
    const approvals = scriptedApprovals(['approve'], async () => {
      state.items = [];
    });
    const { outcome, events } = recordedRun(TWO_DELETES, executor, { approvals });
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(executor.sent('delete-item')).toEqual([]);
    expect(ofType(events, 'guard.skipped').map((e) => e.message)).toEqual([
      `${A} is no longer listed -> not deleting`,
    ]);
  });

  it('should not ask for approval when the guard already shows nothing to do', async () => {
    const executor = new ScriptedExecutor([['already-done', { stdout: 'yes\n' }]]);
    const rb = testRunbook(`steps:
  - id: delete-one
    title: Delete
    env:
      ITEM: { value: '"${A}"', type: uuid }
    destructive: true
    guard:
      - run: already-done
        skip_when: stdout == "yes"
        say: already done
    approval:
      summary: Delete {ITEM}
      targets: ["{ITEM}"]
    verify: { run: already-done, took_effect: "true", say: done, check_by_hand: "look" }
    run: delete-item "$ITEM"
`);
    const approvals = scriptedApprovals(['approve']);
    const { outcome, events } = recordedRun(rb, executor, { approvals });
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(approvals.requests).toHaveLength(0);
    expect(executor.sent('delete-item')).toEqual([]);
    expect(ofType(events, 'guard.skipped').map((e) => e.message)).toEqual(['already done']);
  });

  it('should refuse a value taken from command output when it is not the declared type', async () => {
    const { state, executor } = itemsHost([A, '$(touch ~/pwned); rm -rf ~']);
    const approvals = scriptedApprovals(['approve', 'approve']);
    const { outcome } = recordedRun(TWO_DELETES, executor, { approvals });
    const result = await outcome;
    expect(result.status).toBe('failed');
    expect(result.message).toMatch(/ITEM from `item` is not safe to use: ITEM must be a lowercase UUID/);
    // The first, valid item was handled; the malformed one never reached a command.
    expect(state.deleted).toEqual([A]);
    expect(approvals.requests).toHaveLength(1);
    expect(executor.calls.some((c) => Object.values(c.env).some((v) => v.includes('pwned')))).toBe(false);
  });
});

describe('branching and decisions', () => {
  const GOTO_FINISH = testRunbook(`steps:
  - id: look
    title: Look
    run: look-at-vm
    decide:
      - when: stdout == "ACTIVE"
        say: "already ACTIVE -> skipping the start"
        goto: check
      - when: stdout == "ERROR"
        fail: "the VM is in ERROR: investigate nova first"
  - id: start
    title: Start
    run: start-vm
  - id: check
    title: Check
    run: check-vm
    decide:
      - when: stdout == "done"
        finish: "nothing left to do"
  - id: never
    title: Never
    run: never-run
`);

  it('should jump forward when a decision says goto and finish early when one says finish', async () => {
    const executor = new ScriptedExecutor([
      ['look-at-vm', { stdout: 'ACTIVE\n' }],
      ['check-vm', { stdout: 'done\n' }],
    ]);
    const { outcome, events } = recordedRun(GOTO_FINISH, executor);
    expect(await outcome).toMatchObject({ status: 'succeeded', message: 'nothing left to do' });
    expect(ofType(events, 'step.started').map((e) => e.stepId)).toEqual(['look', 'check']);
    expect(ofType(events, 'decision').map((e) => e.message)).toEqual([
      'already ACTIVE -> skipping the start',
    ]);
    expect(executor.sent('start-vm')).toEqual([]);
    expect(executor.sent('never-run')).toEqual([]);
  });

  it('should run the next step when no decision holds, and fail the run when one says fail', async () => {
    const shutoff = new ScriptedExecutor([
      ['look-at-vm', { stdout: 'SHUTOFF\n' }],
      ['start-vm', {}],
      ['check-vm', { stdout: 'done\n' }],
    ]);
    expect(await recordedRun(GOTO_FINISH, shutoff).outcome).toMatchObject({ status: 'succeeded' });
    expect(shutoff.sent('start-vm')).toHaveLength(1);

    const error = new ScriptedExecutor([['look-at-vm', { stdout: 'ERROR\n' }]]);
    expect(await recordedRun(GOTO_FINISH, error).outcome).toMatchObject({
      status: 'failed',
      message: 'the VM is in ERROR: investigate nova first',
    });
    expect(error.calls.map((c) => c.env.CAPI_STEP)).toEqual(['look']);
  });
});

describe('polls', () => {
  it('should report every poll attempt and pass when the gate opens', async () => {
    const executor = new ScriptedExecutor([
      ['gate', (_req, n) => ({ stdout: n >= 2 ? 'READY\n' : `not yet (${n + 1})\n` })],
    ]);
    const rb = testRunbook(`steps:
  - id: wait
    title: Wait
    poll:
      run: gate
      attempts: 5
      every: 10s
      progress: "{stdout}"
      until: stdout == "READY"
      exhausted: never ready
`);
    const { outcome, events } = recordedRun(rb, executor);
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(ofType(events, 'poll.attempt').map((e) => `${e.attempt}/${e.of} ${e.summary}`)).toEqual([
      '1/5 not yet (1)',
      '2/5 not yet (2)',
      '3/5 READY',
    ]);
  });

  it('should stop with the fail_when message and without retrying when a poll sees ERROR', async () => {
    const executor = new ScriptedExecutor([['lb-status', { stdout: 'ERROR\n' }]]);
    const rb = testRunbook(`steps:
  - id: wait
    title: Wait
    poll:
      run: lb-status
      attempts: 5
      every: 10s
      until: stdout == "ACTIVE"
      fail_when: stdout == "ERROR"
      fail_message: "failover FAILED -- read octavia-worker.log; do NOT retry blind"
      exhausted: never
`);
    const { outcome, events } = recordedRun(rb, executor);
    expect(await outcome).toMatchObject({
      status: 'failed',
      message: 'wait: failover FAILED -- read octavia-worker.log; do NOT retry blind',
    });
    expect(ofType(events, 'poll.attempt')).toHaveLength(1);
    expect(executor.sent('lb-status')).toHaveLength(1);
  });

  it('should fail with the exhausted message when the attempts run out', async () => {
    const executor = new ScriptedExecutor([['lb-status', { stdout: 'BUILD\n' }]]);
    const rb = testRunbook(`steps:
  - id: wait
    title: Wait
    poll:
      run: lb-status
      attempts: 2
      every: 1s
      until: stdout == "ACTIVE"
      exhausted: "still {stdout} after 2 attempts"
`);
    const { outcome } = recordedRun(rb, executor);
    expect(await outcome).toMatchObject({ status: 'failed', message: 'wait: still BUILD after 2 attempts' });
    expect(executor.sent('lb-status')).toHaveLength(2);
  });
});

describe('suspending and resuming a run', () => {
  const pending: ApprovalPort = {
    open: async () => ({ approvalId: 'approval~x' }),
    decision: async (): Promise<never> => {
      throw new ApprovalPending('approval~x', '2026-11-22T12:00:00.000Z');
    },
  };

  it('should stop at an undecided approval and finish from its checkpoint once approved', async () => {
    const { state, executor } = itemsHost([A, B]);
    const first = await runRunbook(runOptions(TWO_DELETES, executor, { approvals: pending }));
    expect(first).toMatchObject({ status: 'suspended', approvalId: 'approval~x' });
    if (first.status !== 'suspended') throw new Error('not suspended');
    expect(first.checkpoint).toMatchObject({ top: 1, loop: { n: 0, inner: 0, items: [A, B] } });
    expect(state.deleted).toEqual([]);

    const rec = recorder();
    const second = await runToEnd(
      runOptions(TWO_DELETES, executor, {
        approvals: scriptedApprovals(['approve', 'approve']),
        emit: rec.emit,
        resume: { checkpoint: first.checkpoint, reason: 'approval decided' },
      }),
    );
    expect(second.status).toBe('succeeded');
    expect(state.deleted).toEqual([A, B]);
    expect(rec.events[0]).toMatchObject({
      type: 'run.resumed',
      atStep: 'delete',
      reason: 'approval decided',
    });
    expect(ofType(rec.events, 'run.started')).toHaveLength(0);
  });

  it('should keep the item list it froze when a resumed loop meets a changed cloud', async () => {
    // A new item appeared after the loop started: it was never looked at, so it is not acted on.
    const C = '33333333-3333-4333-8333-333333333333';
    const { state, executor } = itemsHost([A, B, C]);
    const checkpoint: Checkpoint = {
      top: 1,
      loop: { items: [A, B], n: 1, inner: 0 },
      captured: { items: [A, B] },
    };
    const approvals = scriptedApprovals(['approve', 'approve']);
    const outcome = await runToEnd(
      runOptions(TWO_DELETES, executor, { approvals, resume: { checkpoint, reason: 'agent restarted' } }),
    );
    expect(outcome.status).toBe('succeeded');
    expect(state.deleted).toEqual([B]);
    expect(approvals.requests.map((r) => r.targets[0])).toEqual([`item ${B}`]);
  });

  it('should not send a destructive command again when resumed at a step whose action already happened', async () => {
    const { state, executor } = itemsHost([A]);
    const checkpoints: Checkpoint[] = [];
    await runToEnd(
      runOptions(TWO_DELETES, executor, {
        approvals: scriptedApprovals(['approve']),
        onCheckpoint: (cp) => void checkpoints.push(cp),
      }),
    );
    expect(state.deleted).toEqual([A]);
    // The agent died after the delete ran but before it could record that: it resumes at the delete.
    const atDelete = checkpoints.find((cp) => cp.loop?.n === 0);
    expect(atDelete).toBeDefined();
    const rec = recorder();
    const outcome = await runToEnd(
      runOptions(TWO_DELETES, executor, {
        approvals: scriptedApprovals(['approve']),
        emit: rec.emit,
        resume: { checkpoint: atDelete as Checkpoint, reason: 'agent restarted' },
      }),
    );
    expect(outcome.status).toBe('succeeded');
    expect(state.deleted).toEqual([A]);
    expect(ofType(rec.events, 'guard.skipped').map((e) => e.message)).toEqual([
      `${A} is no longer listed -> not deleting`,
    ]);
  });

  it('should say who cancelled when the abort carries a name', async () => {
    const { executor } = itemsHost([A]);
    const abort = new AbortController();
    abort.abort('U0CANCEL via Slack');
    const outcome = await runToEnd(runOptions(TWO_DELETES, executor, { signal: abort.signal }));
    expect(outcome).toMatchObject({ status: 'cancelled', message: 'cancelled by U0CANCEL via Slack' });
    expect(executor.calls).toEqual([]);
  });
});

/**
 * A read-only runbook on a jumphost without juju: one juju read, a value computed from it in a later
 * openstack step, a loop fed only by the juju read, and a report reading all of them.
 */
const DEGRADING = testRunbook(`read_only: true
steps:
  - id: vm
    title: Mgmt VM
    run: openstack server show capi-mgmt-v2 -f value -c status
    capture:
      vm_status: stdout
  - id: units
    title: juju units
    run: juju status --format json
    parse: json
    capture:
      units: keys(out.applications)
  - id: lbs
    title: LBs
    run: openstack loadbalancer list -f value -c id
    parse: lines
    capture:
      lbs: out
      lbs_and_units: len(out) + len(units)
    decide:
      - when: len(units) > 99
        fail: "too many units"
  - id: per-unit
    title: Each unit
    for_each: units
    as: unit
    env:
      UNIT: { value: unit, type: juju-unit }
    steps:
      - id: probe
        title: Probe {UNIT}
        run: openstack server show "$UNIT"
        capture:
          probed: stdout
  - id: verdict
    title: Verdict
    report:
      - issue: mgmt VM down
        when: vm_status == "SHUTOFF"
        say: "the mgmt VM is SHUTOFF"
      - issue: too few units
        when: len(units) < 3
        say: "fewer than three units"
      - issue: LB count
        when: lbs_and_units > 10
        say: "many"
    none: "all good"
`);

describe('a jumphost without a tool the runbook does not require', () => {
  it('should run what it can, say what it could not observe and never call the rest all good', async () => {
    const executor = new ScriptedExecutor(
      [
        ['server show capi-mgmt-v2', { stdout: 'ACTIVE\n' }],
        ['loadbalancer list', { stdout: 'lb-1\n' }],
      ],
      ['juju'],
    );
    const { outcome, events } = recordedRun(DEGRADING, executor);
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(ofType(events, 'preflight')[0]).toMatchObject({ tools: ['openstack'], missing: ['juju'] });
    expect(ofType(events, 'step.finished').map((e) => [e.stepId, e.status, e.message])).toEqual([
      ['vm', 'ok', undefined],
      [
        'units',
        'unobservable',
        "not observable: juju is not on the jumphost's PATH; leaves undecided: too few units, LB count",
      ],
      // Runs; its decision about the unknown units is not taken, and lbs_and_units stays unknown, not 1.
      ['lbs', 'ok', undefined],
      [
        'per-unit',
        'unobservable',
        "not observable: its input units was not observable (juju is not on the jumphost's PATH)",
      ],
      ['verdict', 'ok', '0 finding(s), 2 undecided'],
    ]);
    // Nothing was sent for the juju step nor for the loop it feeds.
    expect(executor.calls.map((c) => c.script)).toEqual([
      'openstack server show capi-mgmt-v2 -f value -c status',
      'openstack loadbalancer list -f value -c id',
    ]);
    expect(ofType(events, 'decision').map((e) => e.message)).toEqual([
      "undecided, not observable (juju is not on the jumphost's PATH): too few units, LB count",
      'no known issue matched among the 1 that could be decided; 2 could not be decided (above), so this is not an all-clear',
    ]);
  });

  it('should say all good only when every finding could be decided', async () => {
    const executor = new ScriptedExecutor([
      ['server show capi-mgmt-v2', { stdout: 'ACTIVE\n' }],
      ['juju status', { stdout: '{"applications": {"a/0": {}, "b/0": {}, "c/0": {}}}\n' }],
      ['loadbalancer list', { stdout: 'lb-1\n' }],
      ['openstack server show "$UNIT"', { stdout: 'ACTIVE\n' }],
    ]);
    const { outcome, events } = recordedRun(DEGRADING, executor);
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    expect(ofType(events, 'decision').map((e) => e.message)).toEqual(['all good']);
  });
});

describe("a loop item's name (the runbook's label:)", () => {
  const named = (label: string) =>
    testRunbook(`steps:
  - id: list
    title: List items
    run: cat ~/items
    parse: lines
    capture:
      items: out
  - id: each
    title: Show each item
    for_each: items
    as: item
    label: ${JSON.stringify(label)}
    env:
      ITEM: { value: item, type: uuid }
    steps:
      - id: show
        title: Show {ITEM}
        run: show-item "$ITEM"
`);
  const host = () =>
    new ScriptedExecutor([
      ['show-item', () => ({})],
      ['cat ~/items', () => ({ stdout: `${A}\n${B}\n` })],
    ]);

  it('should name each item from its label, its ids kept apart', async () => {
    const { outcome, events } = recordedRun(named('item {upper(item)}'), host());
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    const started = ofType(events, 'step.started').filter((e) => e.stepId === 'each/show');
    expect(started.map((e) => e.iteration)).toMatchObject([
      { n: 1, of: 2, label: A, name: `item ${A.toUpperCase()}` },
      { n: 2, of: 2, label: B, name: `item ${B.toUpperCase()}` },
    ]);
  });

  it('should show an item by its ids, and go on, when its label cannot be rendered', async () => {
    const { outcome, events } = recordedRun(named('item {num(item)}'), host());
    expect(await outcome).toMatchObject({ status: 'succeeded' });
    const started = ofType(events, 'step.started').filter((e) => e.stepId === 'each/show');
    expect(started.map((e) => e.iteration?.name)).toEqual([undefined, undefined]);
    expect(started.map((e) => e.iteration?.label)).toEqual([A, B]);
  });
});
