import { describe, expect, it } from 'vitest';
import { describeRefusal, formatDuration, itemText } from '../src/fronts/format.js';
import { formatEvent } from '../src/fronts/terminal.js';
import { mention } from '../src/slack/blocks.js';
import { ref } from './support/events.js';

describe('describeRefusal', () => {
  it('should name the approvers as Slack mentions in Slack and as ids elsewhere', () => {
    const refusal = { kind: 'not_an_approver', approvers: ['U0APPROVE1', 'S0ONCALL01'] } as const;
    expect(describeRefusal(refusal, mention)).toBe(
      'you are not in CAPI_APPROVERS; ask one of <@U0APPROVE1>, <!subteam^S0ONCALL01>',
    );
    expect(describeRefusal(refusal)).toBe('you are not in CAPI_APPROVERS; ask one of U0APPROVE1, S0ONCALL01');
  });

  it('should name a few approvers and count the rest when the list is long', () => {
    const approvers = Array.from({ length: 8 }, (_, i) => `U0APPROVE${i}`);
    expect(describeRefusal({ kind: 'not_an_approver', approvers }, mention)).toBe(
      'you are not in CAPI_APPROVERS; ask one of <@U0APPROVE0>, <@U0APPROVE1>, <@U0APPROVE2>, ' +
        '<@U0APPROVE3>, <@U0APPROVE4> (or 3 more)',
    );
  });

  it('should say nobody can approve, or that the requester may not, in words', () => {
    expect(describeRefusal({ kind: 'no_approvers' })).toContain('nobody is in CAPI_APPROVERS');
    expect(describeRefusal({ kind: 'own_run' })).toBe(
      'you asked for this run; another approver must decide (CAPI_ALLOW_SELF_APPROVAL is off)',
    );
  });
});

describe('formatDuration', () => {
  it.each([
    [850, '850ms'],
    [4_240, '4.2s'],
    [185_000, '3m 5s'],
    [3_723_000, '1h 2m 3s'],
  ])('should write %d ms as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('itemText', () => {
  it('should show a loop item by its name with its ids after it, and by its ids alone without a name', () => {
    expect(itemText({ label: '1b00-id', name: 'load balancer kubeapi, VIP 10.0.0.5' })).toBe(
      'load balancer kubeapi, VIP 10.0.0.5 [1b00-id]',
    );
    expect(itemText({ label: '1b00-id' })).toBe('1b00-id');
    const line = formatEvent({
      ...ref('sweep/delete-orphan', 15, 19, {
        n: 1,
        of: 3,
        label: '5e00 a000',
        name: 'nova server amphora-a000',
      }),
      type: 'step.started',
      kind: 'run',
      title: 'Delete it',
      destructive: true,
    });
    expect(line).toContain('sweep/delete-orphan (1/3 nova server amphora-a000 [5e00 a000])');
  });
});
