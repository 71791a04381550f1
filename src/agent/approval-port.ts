import {
  type ApprovalDecision,
  ApprovalPending,
  type ApprovalPort,
  type ApprovalRequest,
} from '../engine/events.js';
import { type ApprovalStore, approvalId } from '../runs/approvals.js';

/**
 * The agent's approval port: it records the request in Redis and never waits in-process. Undecided,
 * it throws ApprovalPending and the job parks in BullMQ's delayed set, holding no worker slot; a
 * decision (or the expiry) wakes it and this port then answers from what was stored.
 */
export class RedisApprovalPort implements ApprovalPort {
  constructor(
    private readonly store: ApprovalStore,
    private readonly timeoutMs: number,
  ) {}

  async request(req: ApprovalRequest): Promise<ApprovalDecision> {
    const id = approvalId(req.runId, req.step.stepId, req.step.iteration?.n);
    // Idempotent: a resumed run finds the request (and its expiry) it made before.
    const stored = await this.store.create(id, req, this.timeoutMs);
    if (stored.decision) return stored.decision;
    const due = await this.store.expireIfDue(id);
    if (due.outcome !== 'pending' && due.outcome !== 'not_found' && due.approval.decision) {
      return due.approval.decision;
    }
    throw new ApprovalPending(id, stored.expiresAt);
  }
}
