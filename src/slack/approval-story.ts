/**
 * A destructive step's whole story, as its approval message tells it: asked -> decided -> sent -> outcome.
 * The events of that story (the decision, a vote, the agent refusing the decision, the attempt sent, what
 * reading back found, the step's end) edit the one approval message instead of each making a post of its
 * own. Pure functions of the timeline, so a restarted poster tells the same story.
 */
import type { StepStatus } from '../engine/events.js';
import type { TimelineEntry } from '../service/run-service.js';

/** What happened to an approved (or refused) action after its request, as far as the timeline says. */
export interface ApprovalStory {
  /** The agent refused the decision on record (forged, unsigned, another action, a decider it does not allow). */
  readonly refused?: { readonly by: string; readonly reason: string; readonly at: string };
  /** The attempt was recorded and the command sent, at this time. */
  readonly sent?: { readonly at: string };
  /** A take-over read the cloud back for an attempt whose outcome was not recorded. */
  readonly verified?: { readonly tookEffect: boolean; readonly message: string };
  /** The step's end. */
  readonly finished?: {
    readonly status: StepStatus;
    readonly exitCode: number | null;
    readonly signal: string | null;
    readonly durationMs: number;
    readonly message?: string;
    readonly summary?: string;
  };
  /**
   * The steps of the same loop item that came after the action and read its result (a failover's watch
   * until ACTIVE): what the action did, so they are told here rather than in posts of their own.
   */
  readonly then: readonly FollowUp[];
  /** The run ended (run.finished is in the timeline). */
  readonly runEnded: boolean;
}

export interface FollowUp {
  readonly title: string;
  readonly status: StepStatus;
  readonly durationMs: number;
  readonly summary?: string;
  readonly message?: string;
  /** A poll's last reading. */
  readonly poll?: { readonly attempt: number; readonly of: number; readonly summary: string };
}

type Ref = { readonly stepId: string; readonly iteration?: { readonly n: number } };

function refKey(ref: Ref): string {
  return `${ref.stepId}#${ref.iteration?.n ?? 0}`;
}

/** The loop item an inner step belongs to (`loop#n`); undefined for a top-level step. */
function itemKey(ref: Ref): string | undefined {
  const slash = ref.stepId.indexOf('/');
  return slash === -1 || ref.iteration === undefined
    ? undefined
    : `${ref.stepId.slice(0, slash)}#${ref.iteration.n}`;
}

/**
 * For each timeline index whose event belongs to an approval's story, that approval's id. A step's end
 * belongs to the approval asked or decided (or the attempt verified) since the step last started; a verify
 * after a take-over belongs to the approval its attempt was sent under; once an approved action of a loop
 * item passed, the item's later steps (reading its result) belong to it too.
 */
export function storyOwners(entries: readonly TimelineEntry[], upTo = entries.length): Map<number, string> {
  const owners = new Map<number, string>();
  const latest = new Map<string, string>();
  const sentUnder = new Map<string, string>();
  const round = new Map<string, string>();
  const followedBy = new Map<string, string>();
  for (let i = 0; i < upTo; i++) {
    const e = (entries[i] as TimelineEntry).event;
    switch (e.type) {
      case 'step.started':
        round.delete(refKey(e));
        break;
      case 'approval.requested':
        latest.set(refKey(e), e.approvalId);
        round.set(refKey(e), e.approvalId);
        break;
      case 'approval.decided':
      case 'approval.rejected':
        // A resumed run finds the decision it was parked on without asking again: the step's round is its.
        round.set(refKey(e), e.approvalId);
        owners.set(i, e.approvalId);
        break;
      case 'approval.superseded':
      case 'approval.voted':
        owners.set(i, e.approvalId);
        break;
      case 'attempt.started':
        sentUnder.set(e.attemptId, e.approvalId);
        round.set(refKey(e), e.approvalId);
        owners.set(i, e.approvalId);
        break;
      case 'attempt.verified': {
        const id = sentUnder.get(e.attemptId) ?? latest.get(refKey(e));
        if (id === undefined) break;
        round.set(refKey(e), id);
        owners.set(i, id);
        break;
      }
      case 'step.finished': {
        const item = itemKey(e);
        const id = round.get(refKey(e));
        if (id !== undefined) {
          owners.set(i, id);
          if (item !== undefined && e.status === 'ok') followedBy.set(item, id);
          break;
        }
        const after = item === undefined ? undefined : followedBy.get(item);
        if (after !== undefined) owners.set(i, after);
        break;
      }
      default:
        break;
    }
  }
  return owners;
}

/** The approval whose story the event at `index` belongs to; undefined for any other event. */
export function storyOwner(entries: readonly TimelineEntry[], index: number): string | undefined {
  const type = entries[index]?.event.type;
  if (type === undefined || !STORY_EVENTS.has(type)) return undefined;
  return storyOwners(entries, index + 1).get(index);
}

const STORY_EVENTS: ReadonlySet<string> = new Set([
  'approval.decided',
  'approval.rejected',
  'approval.superseded',
  'approval.voted',
  'attempt.started',
  'attempt.verified',
  'step.finished',
]);

/** The story of approval `approvalId` so far (the request and its decision come from the stored approval). */
export function approvalStory(entries: readonly TimelineEntry[], approvalId: string): ApprovalStory {
  const owners = storyOwners(entries);
  let refused: ApprovalStory['refused'];
  let sent: ApprovalStory['sent'];
  let verified: ApprovalStory['verified'];
  let finished: ApprovalStory['finished'];
  let runEnded = false;
  let own: string | undefined;
  const then: FollowUp[] = [];
  const titles = new Map<string, string>();
  const polls = new Map<string, NonNullable<FollowUp['poll']>>();
  entries.forEach((entry, i) => {
    const e = entry.event;
    if (e.type === 'run.finished') runEnded = true;
    if (e.type === 'step.started') {
      titles.set(refKey(e), e.title);
      polls.delete(refKey(e));
    }
    if (e.type === 'poll.attempt') polls.set(refKey(e), { attempt: e.attempt, of: e.of, summary: e.summary });
    if ((e.type === 'approval.requested' || e.type === 'approval.decided') && e.approvalId === approvalId) {
      own = refKey(e);
    }
    if (owners.get(i) !== approvalId) return;
    if (e.type === 'approval.rejected') refused = { by: e.by, reason: e.reason, at: entry.at };
    else if (e.type === 'attempt.started') sent = { at: e.at };
    else if (e.type === 'attempt.verified') verified = { tookEffect: e.tookEffect, message: e.message };
    else if (e.type === 'step.finished' && own !== undefined && refKey(e) !== own) {
      const poll = polls.get(refKey(e));
      then.push({
        title: titles.get(refKey(e)) ?? e.stepId,
        status: e.status,
        durationMs: e.durationMs,
        ...(e.summary !== undefined ? { summary: e.summary } : {}),
        ...(e.message !== undefined ? { message: e.message } : {}),
        ...(poll !== undefined ? { poll } : {}),
      });
    } else if (e.type === 'step.finished') {
      finished = {
        status: e.status,
        exitCode: e.exitCode,
        signal: e.signal,
        durationMs: e.durationMs,
        ...(e.message !== undefined ? { message: e.message } : {}),
        ...(e.summary !== undefined ? { summary: e.summary } : {}),
      };
    }
  });
  return {
    ...(refused ? { refused } : {}),
    ...(sent ? { sent } : {}),
    ...(verified ? { verified } : {}),
    ...(finished ? { finished } : {}),
    then,
    runEnded,
  };
}
