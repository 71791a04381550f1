import {
  type ApprovalDecision,
  ApprovalPending,
  type ApprovalPort,
  ApprovalRejected,
  type ApprovalRequest,
  type OpenedApproval,
} from '../engine/events.js';
import type { ApprovalStore, StoredApproval } from '../runs/approvals.js';
import type { Fence } from '../runs/fence.js';
import { type DecisionJudge, judgeDecision } from '../runs/judge.js';

/**
 * The agent's approval port: it records the request in Redis and never waits in-process. Undecided,
 * it throws ApprovalPending and the job parks in BullMQ's delayed set, holding no worker slot; a
 * decision (or the expiry) wakes it and this port then answers from what was stored. Requests are
 * opened under the owner's fence, bound to their digest: a changed action supersedes the old request.
 *
 * A stored decision is judged before it is answered (judge.ts): its signatures verified, its deciders held
 * to this agent's own policy against the request as this agent built it. One that fails is ApprovalRejected.
 */
export class RedisApprovalPort implements ApprovalPort {
  constructor(
    private readonly store: ApprovalStore,
    private readonly timeoutMs: number,
    private readonly fence: Fence,
    private readonly judge: DecisionJudge,
  ) {}

  async open(request: ApprovalRequest): Promise<OpenedApproval> {
    const opened = await this.store.open(request, { timeoutMs: this.timeoutMs, fence: this.fence });
    return {
      approvalId: opened.approval.approvalId,
      ...(opened.superseded ? { superseded: opened.superseded } : {}),
    };
  }

  async decision(approvalId: string, request: ApprovalRequest): Promise<ApprovalDecision> {
    const stored = await this.store.get(approvalId);
    if (!stored) throw new Error(`approval ${approvalId} vanished from Redis after it was opened`);
    if (stored.decision) return this.judged(approvalId, stored, request);
    const due = await this.store.expireIfDue(approvalId);
    if (due.outcome !== 'pending' && due.outcome !== 'not_found' && due.approval.decision) {
      return this.judged(approvalId, due.approval, request);
    }
    throw new ApprovalPending(approvalId, stored.expiresAt);
  }

  private judged(approvalId: string, stored: StoredApproval, request: ApprovalRequest): ApprovalDecision {
    const judgement = judgeDecision(approvalId, stored, request, this.judge);
    if (judgement === undefined) throw new Error(`approval ${approvalId} has no decision to judge`);
    if (!judgement.ok) throw new ApprovalRejected(approvalId, judgement.by, judgement.reason);
    return judgement.decision;
  }
}
