import { describe, expect, it } from 'vitest';
import { isReadOnly, parseCapiCommand } from '../src/slack/command.js';

describe('/capi command parsing', () => {
  it.each([
    ['recover', { kind: 'run', runbook: 'recover', args: [] }],
    ['  stuck-delete   capi-test-2 ', { kind: 'run', runbook: 'stuck-delete', args: ['capi-test-2'] }],
    [
      'failover 0f968008-4c1e-4d2a-9b7e-2b9d3c4e5f60',
      { kind: 'run', runbook: 'failover', args: ['0f968008-4c1e-4d2a-9b7e-2b9d3c4e5f60'] },
    ],
    ['status', { kind: 'status' }],
    ['status r1abc', { kind: 'status', runId: 'r1abc' }],
    ['cancel r1abc', { kind: 'cancel', runId: 'r1abc' }],
    ['timeline r1abc', { kind: 'timeline', runId: 'r1abc' }],
    ['', { kind: 'help' }],
    ['help', { kind: 'help' }],
  ])('should read %j as %j', (text, expected) => {
    expect(parseCapiCommand(text)).toMatchObject(expected);
  });

  it.each([
    ['reboot', /`reboot` is not a \/capi subcommand/],
    ['recover now', /`recover` takes no arguments: `\/capi recover`/],
    ['stuck-delete', /`stuck-delete` takes CLUSTER: `\/capi stuck-delete CLUSTER`/],
    ['failover a b', /`failover` takes LB/],
    ['cancel', /`cancel` takes one run id/],
    ['cancel r1; rm -rf /', /takes one run id/],
    ['status <@U123>', /is not a run id/],
  ])('should name what was wrong when the text is %j', (text, problem) => {
    const parsed = parseCapiCommand(text);
    expect(parsed.kind).toBe('invalid');
    expect(parsed.kind === 'invalid' ? parsed.problem : '').toMatch(problem);
  });

  it('should open diagnose, status, timeline and help to anyone and keep the rest for operators', () => {
    const open = ['diagnose', 'status', 'timeline r1', 'help'].map((t) => isReadOnly(parseCapiCommand(t)));
    const guarded = ['recover', 'park', 'sweep', 'cancel r1', 'failover x', 'stuck-delete x'].map((t) =>
      isReadOnly(parseCapiCommand(t)),
    );
    expect(open).toEqual([true, true, true, true]);
    expect(guarded).toEqual([false, false, false, false, false, false]);
  });
});
