/**
 * Who may decide an approval. Pure: the Slack front resolves the clicking user's groups, this only judges.
 * A refusal is data (which rule, which approvers); each front words it for its readers.
 */
import type { ApprovalRequest } from '../engine/events.js';

export interface Approver {
  readonly userId: string;
  /** Slack user-group ids (S…) the user belongs to. */
  readonly groupIds: readonly string[];
}

export interface ApprovalPolicy {
  /** CAPI_APPROVERS: Slack user ids (U…, W…) and user-group ids (S…). */
  readonly approvers: readonly string[];
  readonly allowSelfApproval: boolean;
  /**
   * Whether a user group in `approvers` grants the right (CAPI_TRUST_SLACK_GROUPS). Off by default: any
   * workspace member can edit a Slack user group unless an admin restricted it.
   */
  readonly trustSlackGroups: boolean;
}

export type Refusal =
  /** CAPI_APPROVERS is empty: nobody can approve. */
  | { readonly kind: 'no_approvers' }
  /** The user is not in CAPI_APPROVERS, directly or through a group; `approvers` is who is. */
  | { readonly kind: 'not_an_approver'; readonly approvers: readonly string[] }
  /** The user asked for the run and self-approval is off. */
  | { readonly kind: 'own_run' }
  /** The user asked for the run and the step needs `quorum` approvers: the requester never counts. */
  | { readonly kind: 'own_run_quorum'; readonly quorum: number };

/** Allowed: `group` is the user group that granted the right, when the user's own id is not listed. */
export type MayDecide = { allowed: true; group?: string } | { allowed: false; refusal: Refusal };

export function mayDecide(approver: Approver, request: ApprovalRequest, policy: ApprovalPolicy): MayDecide {
  const direct = policy.approvers.includes(approver.userId);
  const group = policy.trustSlackGroups
    ? approver.groupIds.find((g) => policy.approvers.includes(g))
    : undefined;
  if (!direct && group === undefined) {
    return policy.approvers.length === 0
      ? { allowed: false, refusal: { kind: 'no_approvers' } }
      : { allowed: false, refusal: { kind: 'not_an_approver', approvers: policy.approvers } };
  }
  // Four eyes: the person who wants the destructive step is the one least likely to question it.
  if (approver.userId === request.requestedBy) {
    // Several approvers are asked for so that several people other than the requester look: self-approval,
    // even where it is allowed, would make a quorum of two one other person.
    const quorum = request.quorum ?? 1;
    if (quorum > 1) return { allowed: false, refusal: { kind: 'own_run_quorum', quorum } };
    if (!policy.allowSelfApproval) return { allowed: false, refusal: { kind: 'own_run' } };
  }
  return direct || group === undefined ? { allowed: true } : { allowed: true, group };
}
