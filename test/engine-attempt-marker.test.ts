import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryAttempts } from '../src/engine/in-process.js';
import { ofType, recordedRun, scriptedApprovals, testRunbook, usePlainJumphost } from './support/engine.js';

const jump = usePlainJumphost();
beforeEach(async () => {
  await jump.write('marks', '');
  await jump.write('effect', 'none\n');
});

/** The guard always lets it through (like a failover whose LB fast-failed back to ERROR); verify reads ~/effect. */
const APPLY = testRunbook(`steps:
  - id: apply
    title: Apply the change
    destructive: true
    guard:
      - run: "true"
        skip_when: "false"
        say: never
    approval:
      summary: Apply it
      targets: ["the thing"]
    verify:
      run: cat ~/effect
      took_effect: stdout == "applied"
      say: "the change is in"
      check_by_hand: "cat ~/effect (first sent at {attempt.started_at})"
    run: |
      echo sent >> ~/marks
      echo applied > ~/effect
  - id: after
    title: After
    run: echo after >> ~/marks
`);

/** One run of APPLY; a fresh in-memory journal each time is a Redis that forgot every attempt. */
const run = (runId: string) => {
  const approvals = scriptedApprovals(['approve']);
  return {
    ...recordedRun(APPLY, jump.executor, { runId, approvals, attempts: new MemoryAttempts() }),
    approvals,
  };
};

describe('a destructive step whose attempt only the jumphost remembers', () => {
  it('should not send again and go on when reading back shows the first send took effect', async () => {
    expect(await run('marker-took').outcome).toMatchObject({ status: 'succeeded' });
    const again = run('marker-took');
    expect(await again.outcome).toMatchObject({ status: 'succeeded' });
    // Asked and approved again (nothing in the journal said otherwise), yet sent once.
    expect(again.approvals.requests).toHaveLength(1);
    expect(await jump.lines('marks')).toEqual(['sent', 'after', 'after']);
    expect(ofType(again.events, 'attempt.verified')).toEqual([
      expect.objectContaining({
        tookEffect: true,
        message: expect.stringMatching(
          /^the jumphost refused to send `echo applied > ~\/effect` again: an earlier send of this step is on record there, made at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ .*reading back shows it took effect: the change is in\. Not sent again\.$/,
        ),
      }),
    ]);
  });

  it('should end OUTCOME UNKNOWN, saying when the first was sent and that it may have landed, when reading back cannot show it', async () => {
    expect(await run('marker-unknown').outcome).toMatchObject({ status: 'succeeded' });
    // The effect went away since (as a failover that fast-failed back to ERROR does).
    await jump.write('effect', 'none\n');
    const again = run('marker-unknown');
    const outcome = await again.outcome;
    expect(outcome.status).toBe('failed');
    const sentAt = /made at (\S+Z) /.exec(outcome.message)?.[1] ?? '';
    expect(Math.abs(Date.parse(sentAt) - Date.now())).toBeLessThan(60_000);
    expect(outcome.message).toContain(
      `apply: OUTCOME UNKNOWN: the jumphost refused to send \`echo applied > ~/effect\` again: an earlier send of this step is on record there, made at ${sentAt}`,
    );
    expect(outcome.message).toContain(
      `The first send may have landed, and reading back cannot show it took effect. It is NOT sent again. Check by hand: cat ~/effect (first sent at ${sentAt})`,
    );
    expect(await jump.lines('marks')).toEqual(['sent', 'after']);
  });
});
