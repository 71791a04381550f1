/**
 * An Approve or Deny click counts only where the bot asked: in the channel of the run's thread, on the
 * approval message itself. The payload's channel and message ts must be the ones the thread poster
 * recorded when it posted that approval; a click anywhere else (a copied button in another channel, a
 * forged payload naming a real approval id, a message the bot never posted) changes nothing.
 */
import type { ThreadCursors } from './thread-cursors.js';

export interface ApprovalMessagePlace {
  readonly channel: string;
  readonly ts: string;
}

/** Where the bot posted an approval's message; undefined when it posted none. */
export interface ApprovalPlaces {
  approvalMessage(runId: string, approvalId: string): Promise<ApprovalMessagePlace | undefined>;
}

/** The places the thread poster recorded in its cursors (thread-cursors.ts). */
export function threadApprovalPlaces(cursors: ThreadCursors): ApprovalPlaces {
  return {
    async approvalMessage(runId, approvalId) {
      const cursor = await cursors.load(runId);
      const ts = cursor.approvals.get(approvalId);
      return cursor.channel !== undefined && ts !== undefined ? { channel: cursor.channel, ts } : undefined;
    },
  };
}

export const MISPLACED_CLICK_REPLY =
  "Your click changed nothing: approvals are decided only on the bot's own approval message, in the thread of its run.";

/**
 * Why this click is not on the approval's own message; undefined when it is. `runId` undefined: the
 * approval is unknown, which the decision itself reports.
 */
export async function clickPlaceProblem(
  places: ApprovalPlaces,
  click: {
    readonly runId: string | undefined;
    readonly approvalId: string;
    readonly channelId: string;
    readonly messageTs: string | undefined;
  },
): Promise<string | undefined> {
  if (click.runId === undefined) return undefined;
  const place = await places.approvalMessage(click.runId, click.approvalId);
  if (place === undefined || place.channel !== click.channelId || place.ts !== click.messageTs) {
    return MISPLACED_CLICK_REPLY;
  }
  return undefined;
}
