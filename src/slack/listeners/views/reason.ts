import type { ViewResponseAction } from '@slack/bolt';
import type { Logger } from 'pino';
import { describeRefusal, unconfirmedNotice } from '../../../fronts/format.js';
import { decisionReasonSchema, type RunService } from '../../../queue/service.js';
import { validationMessage } from '../../../validation.js';
import { quorumNotice } from '../../blocks.js';
import type { GroupMembership } from '../../membership.js';
import {
  bindingProblem,
  closedBecause,
  REASON_BLOCK_ID,
  reasonMetadataSchema,
  reasonSubmissionSchema,
  typedReason,
} from '../../reason-modal.js';

export interface ReasonSubmitDeps {
  readonly service: RunService;
  readonly membership: GroupMembership;
  readonly approvers: readonly string[];
  readonly logger: Logger;
  /** Refreshes the approval message in place (the thread poster owns it). */
  readonly onDecided: (approvalId: string) => void;
}

/** What the submission's ack says: nothing (the dialog closes) or why nothing was recorded (it stays open). */
export type ReasonAck = ViewResponseAction | undefined;

const refuse = (text: string): ReasonAck => ({
  response_action: 'errors',
  errors: { [REASON_BLOCK_ID]: text.slice(0, 300) },
});

/**
 * The reason dialog was submitted: everything is checked again, as if it were a click. The submitter must be
 * an approver and not the requester (Slack lets only the user it opened for submit it, but the check does not
 * rely on that), the dialog must still match the request it was opened for (run, step, digest), the request
 * must still be open, and the reason must be text of at most REASON_MAX_CHARS. A refusal keeps the dialog open
 * with the reason why; a decision closes it.
 */
export async function submitReason(deps: ReasonSubmitDeps, body: unknown): Promise<ReasonAck> {
  const parsed = reasonSubmissionSchema.safeParse(body);
  if (!parsed.success) {
    deps.logger.warn({ problem: validationMessage(parsed.error) }, 'malformed reason submission');
    return refuse('This dialog could not be read; nothing was recorded.');
  }
  let metadata: unknown;
  try {
    metadata = JSON.parse(parsed.data.view.private_metadata);
  } catch {
    metadata = undefined;
  }
  const meta = reasonMetadataSchema.safeParse(metadata);
  if (!meta.success) {
    deps.logger.warn({ problem: validationMessage(meta.error) }, 'reason dialog with foreign metadata');
    return refuse('This dialog does not name an approval request; nothing was recorded.');
  }
  const reason = decisionReasonSchema.safeParse(typedReason(parsed.data.view.state.values));
  if (!reason.success)
    return refuse(`Not recorded: ${reason.error.issues.map((i) => i.message).join('; ')}.`);
  if (meta.data.kind === 'approve' && reason.data === '') {
    return refuse('Say why, or close this and click Approve for an approval without a reason.');
  }
  const { approvalId } = meta.data;
  const stored = await deps.service.getApproval(approvalId);
  const problem = bindingProblem(meta.data, stored);
  if (problem !== undefined) return refuse(`Not recorded: ${problem}.`);

  const userId = parsed.data.user.id;
  const groupIds = await deps.membership.groupsOf(userId, deps.approvers);
  const result = await deps.service.decide(
    approvalId,
    { userId, groupIds },
    meta.data.kind === 'approve',
    'slack',
    reason.data === '' ? {} : { reason: reason.data },
  );
  switch (result.outcome) {
    case 'decided':
    case 'voted':
      deps.onDecided(approvalId);
      if (result.unconfirmed === undefined) return undefined;
      // Recorded, but not yet safe from a Redis failure: the dialog says so instead of just closing.
      return {
        response_action: 'update',
        view: {
          type: 'modal',
          title: { type: 'plain_text', text: 'Recorded, not confirmed' },
          close: { type: 'plain_text', text: 'Close' },
          blocks: [
            {
              type: 'section',
              text: {
                type: 'plain_text',
                text: unconfirmedNotice(
                  meta.data.kind === 'approve' ? 'approval' : 'denial',
                  result.unconfirmed,
                ).slice(0, 3000),
              },
            },
          ],
        },
      };
    case 'already_voted':
      return refuse(quorumNotice(result.outcome, result.approval));
    case 'refused':
      await deps.service.recordRefusal(approvalId, userId, describeRefusal(result.refusal));
      return refuse(`Not recorded: ${describeRefusal(result.refusal)}.`);
    case 'already_decided':
    case 'expired':
    case 'superseded':
      deps.onDecided(approvalId);
      return refuse(
        closedBecause(result.approval, new Date()) ?? 'This request is closed; nothing was recorded.',
      );
    case 'not_found':
      return refuse('This approval is not known any more (the run may have been cleaned up).');
  }
}
