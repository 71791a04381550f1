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

/**
 * The poster records the message's ts right after Slack answered its post, so a click can (rarely) arrive
 * in between: a place not recorded yet is read again for up to a second before the click is refused.
 */
const UNRECORDED_RETRIES = 5;
const UNRECORDED_WAIT_MS = 200;

async function recordedPlace(
  places: ApprovalPlaces,
  runId: string,
  approvalId: string,
): Promise<ApprovalMessagePlace | undefined> {
  for (let attempt = 0; ; attempt++) {
    const place = await places.approvalMessage(runId, approvalId);
    if (place !== undefined || attempt >= UNRECORDED_RETRIES) return place;
    await new Promise((resolve) => setTimeout(resolve, UNRECORDED_WAIT_MS));
  }
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
  const place = await recordedPlace(places, click.runId, click.approvalId);
  if (place === undefined || place.channel !== click.channelId || place.ts !== click.messageTs) {
    return MISPLACED_CLICK_REPLY;
  }
  return undefined;
}
