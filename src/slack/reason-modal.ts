/**
 * The reason dialog: Deny always opens it (the reason is optional), "Approve with reason" opens it with the
 * reason required. Pure builders and parsers: the listeners in listeners/actions/reason.ts and
 * listeners/views/reason.ts make the Slack calls.
 *
 * The dialog is bound to one approval request: its private_metadata names the approval, the run, the step and
 * the digest of the exact action, and the submission is refused unless the stored request still has them.
 * Slack returns private_metadata as we sent it, but it is parsed like any other input.
 */
import { z } from 'zod';
import { REASON_MAX_CHARS, type StoredApproval } from '../service/run-service.js';
import { confirmText } from './blocks.js';

export const REASON_CALLBACK_ID = 'capi_reason';
export const REASON_BLOCK_ID = 'capi_reason';
export const REASON_ACTION_ID = 'reason';

export type ReasonKind = 'approve' | 'deny';

export const reasonMetadataSchema = z.strictObject({
  v: z.literal(1),
  kind: z.enum(['approve', 'deny']),
  approvalId: z.string().min(1).max(1000),
  runId: z.string().min(1).max(200),
  stepId: z.string().min(1).max(500),
  digest: z.string().min(1).max(200),
  /** Where the click came from: refusals and notices go there. */
  channel: z.string().regex(/^[CDG][A-Z0-9]{2,30}$/),
  /** The approval message clicked, so the submission can be bound to it like a click. */
  messageTs: z
    .string()
    .regex(/^\d{1,12}\.\d{1,8}$/)
    .exactOptional(),
});
export type ReasonMetadata = z.infer<typeof reasonMetadataSchema>;

const plain = (text: string) => ({ type: 'plain_text', text, emoji: true }) as const;

/** The modal for `kind` on `approval`, opened from a click on the message `messageTs` in `channel`. */
export function reasonModal(
  approval: StoredApproval,
  kind: ReasonKind,
  channel: string,
  messageTs?: string,
): Record<string, unknown> {
  const r = approval.request;
  const metadata: ReasonMetadata = {
    v: 1,
    kind,
    approvalId: approval.approvalId,
    runId: approval.runId,
    stepId: approval.stepId,
    digest: r.digest,
    channel,
    ...(messageTs !== undefined ? { messageTs } : {}),
  };
  return {
    type: 'modal',
    callback_id: REASON_CALLBACK_ID,
    // Slack: title, submit and close at most 24 characters.
    title: plain(kind === 'deny' ? 'Deny this step' : 'Approve this step'),
    submit: plain(kind === 'deny' ? 'Deny' : 'Approve'),
    close: plain('Go back'),
    private_metadata: JSON.stringify(metadata),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: confirmText(r.title, r.targets) } },
      {
        type: 'input',
        block_id: REASON_BLOCK_ID,
        optional: kind === 'deny',
        label: plain(kind === 'deny' ? 'Why? (optional)' : 'Why?'),
        element: {
          type: 'plain_text_input',
          action_id: REASON_ACTION_ID,
          multiline: true,
          max_length: REASON_MAX_CHARS,
          placeholder: plain(
            kind === 'deny' ? 'e.g. the LB came back by itself' : 'e.g. checked with the LB owner',
          ),
        },
      },
      {
        type: 'context',
        elements: [
          {
            type: 'mrkdwn',
            text: 'The reason is shown in the run thread and kept with the decision and in the audit trail.',
          },
        ],
      },
    ],
  };
}

/** The fields of a view_submission the reason listener uses; everything else Slack sends is ignored. */
export const reasonSubmissionSchema = z.object({
  user: z.object({ id: z.string().min(1) }),
  view: z.object({
    callback_id: z.literal(REASON_CALLBACK_ID),
    private_metadata: z.string().max(3000),
    state: z.object({
      values: z.record(
        z.string(),
        z.record(z.string(), z.looseObject({ value: z.string().nullable().optional() })),
      ),
    }),
  }),
});

/** The typed reason ('' when left empty), straight from the view's state: untrusted, checked by the door. */
export function typedReason(
  values: z.infer<typeof reasonSubmissionSchema>['view']['state']['values'],
): string {
  return values[REASON_BLOCK_ID]?.[REASON_ACTION_ID]?.value ?? '';
}

/** Why the dialog no longer matches its request, or undefined when it still does. */
export function bindingProblem(meta: ReasonMetadata, stored: StoredApproval | null): string | undefined {
  if (stored === null) return 'this approval is not known any more (the run may have been cleaned up)';
  if (stored.runId !== meta.runId || stored.stepId !== meta.stepId || stored.request.digest !== meta.digest) {
    return 'this dialog no longer matches the approval request; nothing was recorded';
  }
  return undefined;
}

/** Why a request can no longer be decided, in words, or undefined while it is open. */
export function closedBecause(
  approval: StoredApproval,
  now: Date,
  name: (id: string) => string = (id) => id,
): string | undefined {
  const d = approval.decision;
  if (d !== undefined) {
    const what = d.approved ? 'approved' : d.reason === 'expired' ? 'expired' : 'denied';
    return `Already decided: ${what}${d.by !== 'expiry' ? ` by ${name(d.by)}` : ''} at ${d.at}.`;
  }
  if (approval.superseded !== undefined) {
    return 'This request was replaced; nothing changed. Decide the new request in the thread.';
  }
  if (Date.parse(approval.expiresAt) <= now.getTime()) return 'This request expired unanswered (a denial).';
  return undefined;
}
