import { describe, expect, it } from 'vitest';
import type { ApprovalRequest } from '../src/engine/events.js';
import { mayDecide } from '../src/runs/policy.js';

const REQUESTER = 'U0REQUEST1';
const request: ApprovalRequest = {
  runId: 'r1test',
  runbook: 'stuck-delete',
  step: { stepId: 'delete-lbs', index: 2, total: 3 },
  title: 'Delete stale load balancers',
  summary: 'Delete 2 load balancers',
  commands: ['openstack loadbalancer delete --cascade lb-a'],
  targets: ['lb-a'],
  evidence: [],
  requestedBy: REQUESTER,
  digest: 'd1gest',
};
const policy = { approvers: ['U0APPROVE1', 'S0ONCALL01'], allowSelfApproval: false, trustSlackGroups: true };

describe('mayDecide', () => {
  it('should allow a user when their user id is in the approvers', () => {
    expect(mayDecide({ userId: 'U0APPROVE1', groupIds: [] }, request, policy)).toEqual({ allowed: true });
  });

  it('should allow a user when one of their groups is in the approvers, naming the group', () => {
    expect(
      mayDecide({ userId: 'U0OTHER001', groupIds: ['S0DEVS0001', 'S0ONCALL01'] }, request, policy),
    ).toEqual({ allowed: true, group: 'S0ONCALL01' });
  });

  it('should let no group grant the right unless the deployment trusts Slack groups', () => {
    const untrusted = { ...policy, trustSlackGroups: false };
    expect(mayDecide({ userId: 'U0OTHER001', groupIds: ['S0ONCALL01'] }, request, untrusted)).toEqual({
      allowed: false,
      refusal: { kind: 'not_an_approver', approvers: ['U0APPROVE1', 'S0ONCALL01'] },
    });
    expect(mayDecide({ userId: 'U0APPROVE1', groupIds: [] }, request, untrusted)).toEqual({ allowed: true });
  });

  it('should refuse and name the approvers when the user is not in them', () => {
    expect(mayDecide({ userId: 'U0OTHER001', groupIds: ['S0DEVS0001'] }, request, policy)).toEqual({
      allowed: false,
      refusal: { kind: 'not_an_approver', approvers: ['U0APPROVE1', 'S0ONCALL01'] },
    });
  });

  it('should say nobody can approve when CAPI_APPROVERS is empty', () => {
    expect(mayDecide({ userId: 'U0APPROVE1', groupIds: [] }, request, { ...policy, approvers: [] })).toEqual({
      allowed: false,
      refusal: { kind: 'no_approvers' },
    });
  });

  it('should refuse the requester when self-approval is off', () => {
    const approvers = { ...policy, approvers: [...policy.approvers, REQUESTER] };
    expect(mayDecide({ userId: REQUESTER, groupIds: [] }, request, approvers)).toEqual({
      allowed: false,
      refusal: { kind: 'own_run' },
    });
    // Being an approver through a group does not change that.
    expect(mayDecide({ userId: REQUESTER, groupIds: ['S0ONCALL01'] }, request, policy).allowed).toBe(false);
  });

  it('should allow the requester when self-approval is on and they are an approver', () => {
    const selfOk = { approvers: ['S0ONCALL01'], allowSelfApproval: true, trustSlackGroups: true };
    expect(mayDecide({ userId: REQUESTER, groupIds: ['S0ONCALL01'] }, request, selfOk)).toEqual({
      allowed: true,
      group: 'S0ONCALL01',
    });
  });

  it('should still refuse the requester when self-approval is on but they are not an approver', () => {
    const selfOk = { ...policy, allowSelfApproval: true };
    expect(mayDecide({ userId: REQUESTER, groupIds: [] }, request, selfOk).allowed).toBe(false);
  });
});
