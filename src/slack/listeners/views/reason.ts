import type { ViewResponseAction } from '@slack/bolt';
import type { Logger } from 'pino';
import { z } from 'zod';
import { describeRefusal, unconfirmedNotice } from '../../../fronts/format.js';
import { decisionReasonSchema, type RunService } from '../../../service/run-service.js';
import { validationMessage } from '../../../validation.js';
import { quorumNotice } from '../../blocks.js';
import type { FloodLimit } from '../../flood-limit.js';
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
  /** Refused submissions count like refused clicks (serve always sets it). */
  readonly flood?: FloodLimit;
}

/** What the submission's ack says: nothing (the dialog closes) or why nothing was recorded (it stays open). */
export type ReasonAck = ViewResponseAction | undefined;

const refuse = (text: string): ReasonAck => ({
  response_action: 'errors',
  errors: { [REASON_BLOCK_ID]: text.slice(0, 300) },
});

const Submitter = z.object({ user: z.object({ id: z.string().min(1) }) });

/**
 * The reason dialog was submitted: everything is checked again, as if it were a click. The submitter must be
 * an approver and not the requester (Slack lets only the user it opened for submit it, but the check does not
 * rely on that), the dialog must still match the request it was opened for (run, step, digest), the request
 * must still be open, and the reason must be text of at most REASON_MAX_CHARS. A refusal keeps the dialog open
 * with the reason why; a decision closes it.
 *
 * Flood-limited like clicks: each refused submission counts, and past the limit the submitter is not looked at
 * (no approval read, no group lookup, nothing stored) until the window ends. The dialog then says "slow down"
 * rather than closing, which would read as recorded.
 */
export async function submitReason(deps: ReasonSubmitDeps, body: unknown): Promise<ReasonAck> {
  const { flood } = deps;
  const submitter = Submitter.safeParse(body);
  const who = submitter.success ? submitter.data.user.id : undefined;
  if (flood !== undefined && who !== undefined && (await flood.blocked(who))) return refuse(flood.slowDown());
  /** One refusal counted; `record` (the timeline's line) only while the submitter is under the limit. */
  const refused = async (text: string, record?: () => Promise<void>): Promise<ReasonAck> => {
    if (flood !== undefined && who !== undefined && (await flood.hit(who, 'refusal')) !== 'ok') {
      return refuse(flood.slowDown());
    }
    await record?.();
    return refuse(text);
  };
  const parsed = reasonSubmissionSchema.safeParse(body);
  if (!parsed.success) {
    deps.logger.warn({ problem: validationMessage(parsed.error) }, 'malformed reason submission');
    return refused('This dialog could not be read; nothing was recorded.');
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
    return refused('This dialog does not name an approval request; nothing was recorded.');
  }
  const reason = decisionReasonSchema.safeParse(typedReason(parsed.data.view.state.values));
  if (!reason.success)
    return refused(`Not recorded: ${reason.error.issues.map((i) => i.message).join('; ')}.`);
  if (meta.data.kind === 'approve' && reason.data === '') {
    return refused('Say why, or close this and click Approve for an approval without a reason.');
  }
  const { approvalId } = meta.data;
  const stored = await deps.service.getApproval(approvalId);
  const problem = bindingProblem(meta.data, stored);
  if (problem !== undefined) return refused(`Not recorded: ${problem}.`);

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
      return refused(quorumNotice(result.outcome, result.approval));
    case 'refused':
      return refused(`Not recorded: ${describeRefusal(result.refusal)}.`, () =>
        deps.service.recordRefusal(approvalId, userId, describeRefusal(result.refusal)),
      );
    case 'already_decided':
    case 'expired':
    case 'superseded':
      deps.onDecided(approvalId);
      return refused(
        closedBecause(result.approval, new Date()) ?? 'This request is closed; nothing was recorded.',
      );
    case 'not_found':
      return refused('This approval is not known any more (the run may have been cleaned up).');
  }
}
