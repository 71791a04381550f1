/**
 * Who may decide an approval. Pure: the Slack front resolves the clicking user's groups, this only judges.
 * Reasons are addressed to the person who clicked, in Slack mrkdwn (mentions render as names).
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
}

export type MayDecide = { allowed: true } | { allowed: false; reason: string };

/** Beyond this many, the reason lists a few and counts the rest: it must stay readable in an ephemeral message. */
const MAX_NAMED = 5;

export function mention(id: string): string {
  return id.startsWith('S') ? `<!subteam^${id}>` : `<@${id}>`;
}

export function mayDecide(approver: Approver, request: ApprovalRequest, policy: ApprovalPolicy): MayDecide {
  const listed =
    policy.approvers.includes(approver.userId) || approver.groupIds.some((g) => policy.approvers.includes(g));
  if (!listed) {
    if (policy.approvers.length === 0) {
      return {
        allowed: false,
        reason:
          'nobody is in CAPI_APPROVERS, so nobody can approve this step; ask the bot admin to set CAPI_APPROVERS',
      };
    }
    const named = policy.approvers.slice(0, MAX_NAMED).map(mention).join(', ');
    const more = policy.approvers.length - MAX_NAMED;
    return {
      allowed: false,
      reason: `you are not in CAPI_APPROVERS; ask one of ${named}${more > 0 ? ` (or ${more} more)` : ''}`,
    };
  }
  // Four eyes: the person who wants the destructive step is the one least likely to question it.
  if (approver.userId === request.requestedBy && !policy.allowSelfApproval) {
    return {
      allowed: false,
      reason: 'you asked for this run; another approver must decide (CAPI_ALLOW_SELF_APPROVAL is off)',
    };
  }
  return { allowed: true };
}
