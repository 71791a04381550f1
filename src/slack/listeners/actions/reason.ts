import type { WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import type { RunService } from '../../../service/run-service.js';
import { mention } from '../../blocks.js';
import { type ApprovalPlaces, clickPlaceProblem } from '../../click-place.js';
import type { FloodLimit } from '../../flood-limit.js';
import { closedBecause, type ReasonKind, reasonModal } from '../../reason-modal.js';

export interface ReasonClick {
  readonly userId: string;
  readonly channelId: string;
  /** The ts of the message the button was on. */
  readonly messageTs: string | undefined;
  readonly approvalId: string;
  /** From the click: views.open takes it once, within 3 s. */
  readonly triggerId: string;
  readonly kind: ReasonKind;
}

/**
 * Deny, or "Approve with reason": opens the reason dialog for this request. Nothing is decided here; the
 * submission (listeners/views/reason.ts) decides. A request that can no longer be decided gets no dialog,
 * only a private word saying why.
 */
export async function openReasonDialog(
  deps: {
    readonly service: RunService;
    readonly client: WebClient;
    readonly logger: Logger;
    readonly places: ApprovalPlaces;
    readonly flood?: FloodLimit;
  },
  click: ReasonClick,
): Promise<void> {
  const tell = (text: string) =>
    deps.client.chat
      .postEphemeral({ channel: click.channelId, user: click.userId, text })
      .then(() => undefined);
  const stored = await deps.service.getApproval(click.approvalId);
  // Like Approve, the dialog opens only from the approval's own message, in its run's thread.
  const misplaced = await clickPlaceProblem(deps.places, { ...click, runId: stored?.runId });
  if (misplaced !== undefined) {
    if (deps.flood === undefined || (await deps.flood.allow(click.userId, 'refusal', tell))) {
      await tell(misplaced);
    }
    return;
  }
  if (stored === null) {
    await tell('This approval is not known any more (the run may have been cleaned up).');
    return;
  }
  const closed = closedBecause(stored, new Date(), mention);
  if (closed !== undefined) {
    await tell(closed);
    return;
  }
  try {
    await deps.client.views.open({
      trigger_id: click.triggerId,
      view: reasonModal(stored, click.kind, click.channelId, click.messageTs) as never,
    });
  } catch (err) {
    const slackError = (err as { data?: { error?: string } }).data?.error ?? (err as Error).message;
    deps.logger.warn({ approvalId: click.approvalId, err: slackError }, 'the reason dialog did not open');
    await tell(
      `The dialog did not open (Slack said: ${slackError}); nothing was recorded. Click ${
        click.kind === 'deny' ? 'Deny' : 'Approve with reason'
      } again.`,
    );
  }
}
