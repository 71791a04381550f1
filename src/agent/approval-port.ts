import {
  type ApprovalDecision,
  ApprovalPending,
  type ApprovalPort,
  type ApprovalRequest,
  type OpenedApproval,
} from '../engine/events.js';
import type { ApprovalStore } from '../runs/approvals.js';
import type { Fence } from '../runs/fence.js';

/**
 * The agent's approval port: it records the request in Redis and never waits in-process. Undecided,
 * it throws ApprovalPending and the job parks in BullMQ's delayed set, holding no worker slot; a
 * decision (or the expiry) wakes it and this port then answers from what was stored. Requests are
 * opened under the owner's fence, bound to their digest: a changed action supersedes the old request.
 */
export class RedisApprovalPort implements ApprovalPort {
  constructor(
    private readonly store: ApprovalStore,
    private readonly timeoutMs: number,
    private readonly fence: Fence,
  ) {}

  async open(request: ApprovalRequest): Promise<OpenedApproval> {
    const opened = await this.store.open(request, { timeoutMs: this.timeoutMs, fence: this.fence });
    return {
      approvalId: opened.approval.approvalId,
      ...(opened.superseded ? { superseded: opened.superseded } : {}),
    };
  }

  async decision(approvalId: string): Promise<ApprovalDecision> {
    const stored = await this.store.get(approvalId);
    if (!stored) throw new Error(`approval ${approvalId} vanished from Redis after it was opened`);
    if (stored.decision) return stored.decision;
    const due = await this.store.expireIfDue(approvalId);
    if (due.outcome !== 'pending' && due.outcome !== 'not_found' && due.approval.decision) {
      return due.approval.decision;
    }
    throw new ApprovalPending(approvalId, stored.expiresAt);
  }
}
