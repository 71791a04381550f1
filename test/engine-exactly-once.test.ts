import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryAttempts } from '../src/engine/in-process.js';
import type { RunOptions } from '../src/engine/outcome.js';
import { ofType, recordedRun, scriptedApprovals, testRunbook, usePlainJumphost } from './support/engine.js';

const jump = usePlainJumphost();
beforeEach(async () => {
  await jump.write('marks', '');
  await jump.write('server', 'present\n');
});
const readMarks = () => jump.lines('marks');

/** "Deletes" ~/server; verify reads it back. */
const DELETE = testRunbook(`steps:
  - id: delete-server
    title: Delete the server
    destructive: true
    guard:
      - run: cat ~/server
        skip_when: stdout == "gone"
        say: already gone
    approval:
      summary: Delete the server
      targets: ["the server"]
    verify:
      run: cat ~/server
      took_effect: stdout == "gone"
      say: "the server is gone"
      check_by_hand: "cat ~/server (sent at {attempt.started_at})"
    run: |
      echo sent >> ~/marks
      echo gone > ~/server
  - id: after
    title: After
    run: echo after >> ~/marks
`);

function run(more: Partial<RunOptions>) {
  const approvals = scriptedApprovals(['approve', 'approve']);
  return { ...recordedRun(DELETE, jump.executor, { runId: 'once', approvals, ...more }), approvals };
}

/** An attempt journal where an earlier owner recorded the delete and died before it returned. */
async function inFlight(): Promise<MemoryAttempts> {
  const attempts = new MemoryAttempts();
  await attempts.begin(
    { stepId: 'delete-server', index: 1, total: 2 },
    { approvalId: 'a1', digest: 'd' },
    'rm',
  );
  return attempts;
}

describe('a destructive step whose attempt is already on record', () => {
  it('should not send again and go on when reading back shows the action took effect', async () => {
    await jump.write('server', 'gone\n');
    const r = run({ attempts: await inFlight() });
    expect(await r.outcome).toMatchObject({ status: 'succeeded' });
    expect(await readMarks()).toEqual(['after']);
    expect(r.approvals.requests).toHaveLength(0);
    expect(ofType(r.events, 'attempt.verified')).toEqual([
      expect.objectContaining({ tookEffect: true, message: expect.stringContaining('the server is gone') }),
    ]);
  });

  it('should stop with "outcome unknown", what was sent, when and what to check, when it cannot show the effect', async () => {
    const r = run({ attempts: await inFlight() });
    const outcome = await r.outcome;
    expect(outcome.status).toBe('failed');
    expect(outcome.message).toMatch(
      /OUTCOME UNKNOWN: `rm` was sent at \d{4}-\d\d-\d\dT.* It is NOT sent again\. Check by hand: cat ~\/server \(sent at /,
    );
    // Nothing was sent again and nothing after it ran.
    expect(await readMarks()).toEqual([]);
    expect(ofType(r.events, 'attempt.verified')[0]?.tookEffect).toBe(false);
  });

  it('should stop without sending when the recorded attempt exited non-zero', async () => {
    const attempts = await inFlight();
    await attempts.finish(
      { stepId: 'delete-server', index: 1, total: 2 },
      { exitCode: 1, signal: null, timedOut: false },
    );
    const r = run({ attempts });
    const outcome = await r.outcome;
    expect(outcome).toMatchObject({
      status: 'failed',
      message: expect.stringContaining('exited 1; it is not retried'),
    });
    expect(await readMarks()).toEqual([]);
  });

  it('should record the attempt before sending and send exactly once on a fresh run', async () => {
    const attempts = new MemoryAttempts();
    const r = run({ attempts });
    expect(await r.outcome).toMatchObject({ status: 'succeeded' });
    expect(await readMarks()).toEqual(['sent', 'after']);
    const started = ofType(r.events, 'attempt.started');
    expect(started).toHaveLength(1);
    const order = r.events.map((e) => e.type);
    expect(order.indexOf('approval.decided')).toBeLessThan(order.indexOf('attempt.started'));
    expect(order.indexOf('attempt.started')).toBeLessThan(order.indexOf('step.finished'));
    expect((await attempts.find({ stepId: 'delete-server', index: 1, total: 2 }))?.outcome).toEqual({
      exitCode: 0,
      signal: null,
      timedOut: false,
    });
  });
});

/** Zaps every load balancer listed in ~/lbs, each after its own approval. */
const ZAP_EACH = testRunbook(`steps:
  - id: list
    title: List
    run: cat ~/lbs
    parse: lines
    capture:
      lbs: out
  - id: each
    title: Zap each
    for_each: lbs
    as: lb
    env:
      LB: { value: lb, type: dns1123 }
    steps:
      - id: zap
        title: Zap {LB}
        destructive: true
        guard:
          - run: "true"
            skip_when: "false"
            say: never
        approval:
          summary: Zap {LB}
          targets: ["{LB}"]
        verify: { run: cat ~/zapped, took_effect: "true", say: zapped, check_by_hand: cat ~/zapped }
        run: echo $LB >> ~/zapped
`);

describe('attempts keyed by the item, not its place in the list', () => {
  it('should verify the attempt made for an item and send for a new one when the list is read again in another order', async () => {
    await jump.write('zapped', '');
    // One journal across both runs: the same run's attempts, its list read again (as a lost checkpoint would).
    const attempts = new MemoryAttempts();
    await jump.write('lbs', 'lb-a\n');
    const first = recordedRun(ZAP_EACH, jump.executor, {
      runId: 'items',
      attempts,
      approvals: scriptedApprovals(['approve']),
    });
    expect(await first.outcome).toMatchObject({ status: 'succeeded' });

    // lb-b now stands where lb-a stood.
    await jump.write('lbs', 'lb-b\nlb-a\n');
    const approvals = scriptedApprovals(['approve', 'approve']);
    const again = recordedRun(ZAP_EACH, jump.executor, { runId: 'items', attempts, approvals });
    expect(await again.outcome).toMatchObject({ status: 'succeeded' });
    // Each load balancer zapped once: lb-b was asked for and sent, lb-a's attempt was found, not sent again.
    expect(await jump.lines('zapped')).toEqual(['lb-a', 'lb-b']);
    expect(approvals.requests.map((r) => r.targets)).toEqual([['lb-b']]);
    expect(ofType(again.events, 'attempt.verified')).toEqual([
      expect.objectContaining({
        iteration: expect.objectContaining({ n: 2, label: 'lb-a' }),
        tookEffect: true,
      }),
    ]);
  });
});

describe('patience that holds', () => {
  it('should count a hung poll command as an unmet attempt and keep polling until exhausted', async () => {
    const rb = testRunbook(`steps:
  - id: ready
    title: Wait for ready
    poll:
      run: sleep 30
      timeout: 300ms
      attempts: 3
      every: 10ms
      until: stdout == "ready"
      exhausted: "not ready after 3 attempts"
`);
    const { outcome, events } = recordedRun(rb, jump.executor, { runId: 'patience' });
    expect(await outcome).toMatchObject({ status: 'failed', message: 'ready: not ready after 3 attempts' });
    const attempts = ofType(events, 'poll.attempt');
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    for (const a of attempts) expect(a.summary).toMatch(/^timed out after 0.3s/);
  });
});
