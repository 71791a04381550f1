import type { App } from '@slack/bolt';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { RunService } from '../../service/run-service.js';
import { validationMessage } from '../../validation.js';
import { APPROVE_WITH_REASON_ACTION_ID, DENY_ACTION_ID } from '../blocks.js';
import type { ApprovalPlaces } from '../click-place.js';
import type { FloodLimit } from '../flood-limit.js';
import type { GroupMembership } from '../membership.js';
import { REASON_CALLBACK_ID } from '../reason-modal.js';
import { openReasonDialog } from './actions/reason.js';
import { submitReason } from './views/reason.js';

const ReasonClickPayload = z.object({
  user: z.object({ id: z.string().min(1) }),
  channel: z.object({ id: z.string().min(1) }),
  trigger_id: z.string().min(1).max(200),
  container: z
    .looseObject({
      message_ts: z
        .string()
        .regex(/^\d{1,12}\.\d{1,8}$/)
        .optional(),
    })
    .optional(),
  message: z.object({ ts: z.string().optional() }).optional(),
  actions: z.array(z.object({ action_id: z.string(), value: z.string().min(1).max(2000) })).min(1),
});

/**
 * Deny and "Approve with reason" open the reason dialog; its submission decides. Acked first, like every
 * listener; the submission's ack carries the outcome (errors keep the dialog open).
 */
export function registerReasonDialogs(
  app: App,
  deps: {
    readonly service: RunService;
    readonly membership: GroupMembership;
    readonly approvers: readonly string[];
    readonly logger: Logger;
    readonly onDecided: (approvalId: string) => void;
    /** Where each approval's message is: the dialog opens only from there (click-place.ts). */
    readonly places: ApprovalPlaces;
    readonly flood?: FloodLimit;
  },
): void {
  for (const [actionId, kind] of [
    [DENY_ACTION_ID, 'deny'],
    [APPROVE_WITH_REASON_ACTION_ID, 'approve'],
  ] as const) {
    app.action(actionId, async ({ ack, body, client }) => {
      await ack();
      const parsed = ReasonClickPayload.safeParse(body);
      if (!parsed.success) {
        deps.logger.warn({ problem: validationMessage(parsed.error) }, 'malformed decision click');
        return;
      }
      const action = parsed.data.actions.find((a) => a.action_id === actionId);
      if (!action) return;
      if (deps.flood !== undefined && (await deps.flood.blocked(parsed.data.user.id))) return;
      await openReasonDialog(
        {
          service: deps.service,
          client,
          logger: deps.logger,
          places: deps.places,
          ...(deps.flood !== undefined ? { flood: deps.flood } : {}),
        },
        {
          userId: parsed.data.user.id,
          channelId: parsed.data.channel.id,
          messageTs: parsed.data.container?.message_ts ?? parsed.data.message?.ts,
          approvalId: action.value,
          triggerId: parsed.data.trigger_id,
          kind,
        },
      );
    });
  }

  app.view(REASON_CALLBACK_ID, async ({ ack, body }) => {
    let answer: Awaited<ReturnType<typeof submitReason>>;
    try {
      answer = await submitReason(deps, body);
    } catch (err) {
      deps.logger.error({ err }, 'reason submission failed');
      answer = {
        response_action: 'errors',
        errors: { capi_reason: 'Something went wrong; nothing was recorded. Try again.' },
      };
    }
    await (answer === undefined ? ack() : ack(answer));
  });
}
