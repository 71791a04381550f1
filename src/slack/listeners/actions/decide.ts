import type { WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import { describeRefusal, unconfirmedNotice } from '../../../fronts/format.js';
import type { RunService } from '../../../service/run-service.js';
import { mention, quorumNotice } from '../../blocks.js';
import { type ApprovalPlaces, clickPlaceProblem } from '../../click-place.js';
import type { FloodLimit } from '../../flood-limit.js';
import type { GroupMembership } from '../../membership.js';

export interface DecideDeps {
  readonly service: RunService;
  readonly client: WebClient;
  readonly membership: GroupMembership;
  readonly approvers: readonly string[];
  /** Where each approval's message is: a click counts only there (click-place.ts). */
  readonly places: ApprovalPlaces;
  readonly logger: Logger;
  /** Refreshes the approval message in place (the thread poster owns it). */
  readonly onDecided: (approvalId: string) => void;
  /** Refused clicks count against the clicker's SLACK_FLOOD_REFUSALS. */
  readonly flood?: FloodLimit;
}

export interface Click {
  readonly userId: string;
  readonly channelId: string;
  /** The ts of the message the button was on. */
  readonly messageTs: string | undefined;
  readonly approvalId: string;
  readonly approved: boolean;
}

/**
 * An Approve or Deny click. The first valid decision wins (atomically, in Redis); everyone else is
 * told, privately, who decided or why they may not. A refused click leaves a timeline entry.
 */
export async function decideAction(deps: DecideDeps, click: Click): Promise<void> {
  const tell = (text: string) =>
    deps.client.chat
      .postEphemeral({ channel: click.channelId, user: click.userId, text })
      .then(() => undefined);
  // A refused click changed nothing: past the flood limit its clicker hears "slow down" once, then nothing,
  // and nothing more is stored for them (no ephemeral, no timeline line).
  const mayAnswerRefusal = async (): Promise<boolean> =>
    deps.flood === undefined || (await deps.flood.allow(click.userId, 'refusal', tell));
  const runId = (await deps.service.getApproval(click.approvalId))?.runId;
  const misplaced = await clickPlaceProblem(deps.places, { ...click, runId });
  if (misplaced !== undefined) {
    if (await mayAnswerRefusal()) await tell(misplaced);
    return;
  }
  const groupIds = await deps.membership.groupsOf(click.userId, deps.approvers);
  const result = await deps.service.decide(
    click.approvalId,
    { userId: click.userId, groupIds },
    click.approved,
    'slack',
  );
  if (result.unconfirmed !== undefined) {
    await tell(unconfirmedNotice(click.approved ? 'approval' : 'denial', result.unconfirmed));
  }
  if (result.outcome === 'decided') {
    deps.onDecided(click.approvalId);
    return;
  }
  if (result.outcome === 'voted') {
    // A step that needs several approvers: the message shows the count; the approver hears where it stands.
    await tell(quorumNotice(result.outcome, result.approval));
    deps.onDecided(click.approvalId);
    return;
  }
  if (!(await mayAnswerRefusal())) return;
  switch (result.outcome) {
    case 'already_voted':
      await tell(quorumNotice(result.outcome, result.approval));
      deps.onDecided(click.approvalId);
      return;
    case 'refused':
      await tell(`Your click changed nothing: ${describeRefusal(result.refusal, mention)}.`);
      // The thread and the postmortem say so too, with ids rather than mentions (no one gets notified).
      await deps.service.recordRefusal(click.approvalId, click.userId, describeRefusal(result.refusal));
      return;
    case 'already_decided':
    case 'expired': {
      const d = result.approval.decision;
      const what = d?.approved ? 'approved' : d?.reason === 'expired' ? 'expired' : 'denied';
      await tell(
        `Already decided: ${what}${d && d.by !== 'expiry' ? ` by ${mention(d.by)}` : ''} at ${d?.at ?? '?'}.`,
      );
      deps.onDecided(click.approvalId);
      return;
    }
    case 'superseded':
      await tell(
        `This request was replaced (${result.approval.superseded?.why === 'stale' ? 'it was approved too long ago to still hold' : 'the action changed since it was asked'}); nothing changed. Decide the new request in the thread.`,
      );
      deps.onDecided(click.approvalId);
      return;
    case 'not_found':
      await tell('This approval is not known any more (the run may have been cleaned up).');
      return;
  }
}
