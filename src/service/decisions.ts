import { Job } from 'bullmq';
import { CapiError, ErrorCode } from '../errors.js';
import { cancelChannel } from '../queue/queues.js';
import { decisionReasonSchema } from '../runs/decision-reason.js';
import { type Approver, mayDecide } from '../runs/policy.js';
import type { RunRecord } from '../runs/registry.js';
import { type DecisionSigner, statementText } from '../signing/statement.js';
import type { ServiceParts } from './parts.js';
import type { Confirmed, DecisionOutcome } from './types.js';

/**
 * Records who asked. A running agent sees it between steps and kills the running command; a run
 * parked on an approval is woken so its agent can end it now rather than at the expiry.
 */
export async function cancel(
  parts: ServiceParts,
  runId: string,
  by: string,
  via?: string,
): Promise<Confirmed<RunRecord>> {
  const record = await parts.registry.requestCancel(runId, by);
  // Before anyone is told it is done: a cancel Redis loses lets an approved step be sent after all.
  const unconfirmed = await parts.unconfirmed();
  parts.audit.record({ event: 'run.cancel_requested', runId, by, ...(via !== undefined ? { via } : {}) });
  // The running agent hears it at once (it also reads the record every few seconds, in case it missed it).
  await parts.opts.redis.publish(cancelChannel(parts.opts.prefix), runId);
  await wake(parts, record);
  return unconfirmed === undefined ? record : { ...record, unconfirmed };
}

/**
 * Policy first (who may decide), then the decision as a signed statement (the agent acts on nothing else),
 * then the atomic first-decision-wins write, then wake the run. `reason` is the decider's own words
 * (optional): validated here, signed and stored with the decision, audited. `signer` signs this decision
 * instead of the service's own (a terminal: the operator's SSH key).
 */
export async function decide(
  parts: ServiceParts,
  approvalId: string,
  approver: Approver,
  approved: boolean,
  via: string,
  opts: { readonly reason?: string; readonly signer?: DecisionSigner } = {},
): Promise<DecisionOutcome> {
  const parsedReason = decisionReasonSchema.safeParse(opts.reason ?? '');
  if (!parsedReason.success) {
    const why = parsedReason.error.issues.map((i) => i.message).join('; ');
    throw new CapiError(ErrorCode.ParamInvalid, `reason: ${why}`);
  }
  const reason = parsedReason.data === '' ? undefined : parsedReason.data;
  const stored = await parts.approvals.get(approvalId);
  if (!stored) return { outcome: 'not_found' };
  const allowed = mayDecide(approver, stored.request, {
    approvers: parts.opts.approvers,
    allowSelfApproval: parts.opts.allowSelfApproval,
    trustSlackGroups: parts.opts.trustSlackGroups ?? false,
  });
  if (!allowed.allowed) {
    parts.audit.record({
      event: 'approval.refused',
      runId: stored.runId,
      approvalId,
      by: approver.userId,
      // The rule that refused (no_approvers, not_an_approver, own_run): each front words it for people.
      reason: allowed.refusal.kind,
    });
    parts.opts.metrics?.approvals.inc({ runbook: stored.request.runbook, outcome: 'refused' });
    return { outcome: 'refused', refusal: allowed.refusal };
  }
  const signer = opts.signer ?? parts.opts.decisionSigner;
  if (signer === undefined) {
    throw new CapiError(
      ErrorCode.NotAllowed,
      'this front has no key to sign decisions with (serve: CAPI_DECISION_SIGNING_KEY), and the agents act on no unsigned decision; nothing was recorded',
    );
  }
  const group = allowed.group;
  const signed = await signer.sign(
    statementText({
      approvalId,
      digest: stored.request.digest,
      decider: approver.userId,
      verdict: approved ? 'approve' : 'deny',
      at: new Date().toISOString(),
      via,
      ...(group !== undefined ? { group } : {}),
      ...(reason !== undefined ? { note: reason } : {}),
    }),
  );
  const result = await parts.approvals.decide(approvalId, {
    approved,
    by: approver.userId,
    via,
    signed,
    ...(reason !== undefined ? { note: reason } : {}),
  });
  // A denial Redis loses would be pending again; confirmed before the decider is told it is done.
  const unconfirmed =
    result.outcome === 'decided' || result.outcome === 'voted' ? await parts.unconfirmed() : undefined;
  if (result.outcome === 'decided') {
    const d = result.approval.decision;
    parts.audit.record({
      event: 'approval.decided',
      runId: stored.runId,
      approvalId,
      digest: stored.request.digest,
      decision: approved ? 'approved' : 'denied',
      by: approver.userId,
      via,
      ...(group !== undefined ? { group } : {}),
      ...(reason !== undefined ? { reason } : {}),
      ...(d?.approved && d.approvers !== undefined ? { approvers: d.approvers } : {}),
    });
  }
  if (result.outcome === 'voted') {
    const count = result.approval.votes?.length ?? 0;
    const quorum = stored.request.quorum ?? 1;
    parts.audit.record({
      event: 'approval.voted',
      runId: stored.runId,
      approvalId,
      digest: stored.request.digest,
      by: approver.userId,
      via,
      ...(group !== undefined ? { group } : {}),
      count,
      quorum,
      ...(reason !== undefined ? { reason } : {}),
    });
    // The thread and the postmortem show each approval as it comes; the run itself waits for the last.
    await parts.timeline.append(stored.runId, {
      type: 'approval.voted',
      approvalId,
      by: approver.userId,
      count,
      of: quorum,
      ...(reason !== undefined ? { note: reason } : {}),
    });
  }
  if (result.outcome === 'decided' || result.outcome === 'expired') {
    const record = await parts.registry.get(stored.runId);
    if (record) await wake(parts, record);
  }
  return unconfirmed === undefined ? result : { ...result, unconfirmed };
}

/**
 * Puts a refused decision on its run's timeline (who, and why in words), so the thread and the
 * postmortem show it; nothing else changes. Quietly nothing when the approval is unknown.
 */
export async function recordRefusal(
  parts: ServiceParts,
  approvalId: string,
  by: string,
  reason: string,
): Promise<void> {
  const stored = await parts.approvals.get(approvalId);
  if (stored) await parts.timeline.append(stored.runId, { type: 'approval.refused', approvalId, by, reason });
}

/** Moves a run's delayed job (waiting on an approval) back to the queue at once. */
async function wake(parts: ServiceParts, record: RunRecord): Promise<void> {
  const job = await Job.fromId(parts.queue(record.queue), record.runId);
  if (!job || !(await job.isDelayed())) return;
  try {
    await job.promote();
  } catch (err) {
    // Two fronts waking the same job: the second finds it no longer delayed, which is fine.
    parts.opts.logger.debug({ runId: record.runId, err }, 'job already woken');
  }
}
