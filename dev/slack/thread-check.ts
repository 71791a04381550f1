/**
 * What a run's Slack thread must show, as the thread poster (src/slack/poster.ts) is designed to write it, and
 * how a thread as Slack holds it compares. Used by tests and by bench:system, so that "every event posted"
 * means the same in both.
 *
 * The design: the root message (the live checklist) tells every step, and a step that only confirmed what was
 * expected has no post of its own; a post comes for each event threadPost() gives one (a step that found
 * something or did not pass, the run's end, a join), in timeline order; each approval request gets one message,
 * edited in place as its decision's story goes on (the events it tells get no post). Where the thread fell
 * behind an approval request, the request is posted ahead and the posts waiting before it follow as one
 * catch-up post (catchUpMessage).
 */
import type { TimelineEntry } from '../../src/runs/timeline.js';
import { catchUpMessage, threadPost } from '../../src/slack/blocks.js';

export interface ExpectedPost {
  /** Index of the event in the timeline (the first covered one, for a catch-up). */
  readonly index: number;
  readonly text: string;
  readonly catchUp: boolean;
}

/** Every event's own post, in timeline order (no approval messages: their text changes with the clock and the story). */
export function eventPosts(entries: readonly TimelineEntry[]): ExpectedPost[] {
  return entries.flatMap((_, i) => {
    const shown = threadPost(entries, i);
    return shown?.kind === 'post' ? [{ index: i, text: shown.message.text, catchUp: false }] : [];
  });
}

/**
 * The non-approval posts expected, given what the thread shows (`posted`, approval messages left out): where
 * it shows a catch-up post, the event posts before the next approval request are folded into that one post.
 */
export function expectedPosts(entries: readonly TimelineEntry[], posted: readonly string[]): ExpectedPost[] {
  const own = eventPosts(entries);
  const out: ExpectedPost[] = [];
  let i = 0;
  for (let k = 0; k < posted.length && i < own.length; k++) {
    const want = own[i] as ExpectedPost;
    if (!(posted[k] ?? '').startsWith('Catching up: ')) {
      out.push(want);
      i += 1;
      continue;
    }
    const ask = entries.findIndex((e, n) => n > want.index && e.event.type === 'approval.requested');
    const asked = entries[ask]?.event;
    const message = asked?.type === 'approval.requested' && catchUpMessage(entries, want.index, ask, asked);
    if (!message) break;
    out.push({ index: want.index, text: message.text, catchUp: true });
    while (i < own.length && (own[i] as ExpectedPost).index < ask) i += 1;
  }
  return [...out, ...own.slice(i)];
}

/** An approval message's notification text ends with its run (blocks.ts approvalMessage), no other post's does. */
export function isApprovalMessage(text: string, runId: string): boolean {
  return text.includes(`(run ${runId})`);
}

export interface ThreadCheck {
  /** Messages the design puts in this thread: the event posts (catch-ups as shown) and one per approval. */
  readonly expected: number;
  /** Expected posts (their notification text) that are not in the thread; approval requests as `approval x N`. */
  readonly missing: readonly string[];
  /** Thread messages that are there more often than expected (twice), or that no event explains. */
  readonly extra: readonly string[];
  /** The posts that are there are in timeline order. */
  readonly inOrder: boolean;
  /** Every expected message is there, once, in order. */
  readonly complete: boolean;
}

/** Counts of each text, for multiset differences. */
function counts(texts: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of texts) m.set(t, (m.get(t) ?? 0) + 1);
  return m;
}

/** What `a` holds more often than `b`, in `a`'s order. */
function beyond(a: readonly string[], b: readonly string[]): string[] {
  const left = counts(b);
  const out: string[] = [];
  for (const t of a) {
    const n = left.get(t) ?? 0;
    if (n > 0) left.set(t, n - 1);
    else out.push(t);
  }
  return out;
}

/**
 * The thread of run `runId` as Slack holds it (`thread`: its replies' notification texts, file shares left
 * out, oldest first) against what the design posts for the run's whole timeline `entries`.
 */
export function checkThread(
  runId: string,
  entries: readonly TimelineEntry[],
  thread: readonly string[],
): ThreadCheck {
  const approvals = new Set(
    entries.flatMap((e) => (e.event.type === 'approval.requested' ? [e.event.approvalId] : [])),
  );
  const shownApprovals = thread.filter((t) => isApprovalMessage(t, runId)).length;
  const posted = thread.filter((t) => !isApprovalMessage(t, runId));
  const expected = expectedPosts(entries, posted).map((p) => p.text);
  const missing = beyond(expected, posted);
  const extra = beyond(posted, expected);
  for (let n = shownApprovals; n < approvals.size; n++) missing.push('an approval request');
  for (let n = approvals.size; n < shownApprovals; n++) extra.push('an approval request');
  const inOrder = (() => {
    const common = beyond(posted, extra);
    const wanted = beyond(expected, missing);
    return common.length === wanted.length && common.every((t, i) => t === wanted[i]);
  })();
  return {
    expected: expected.length + approvals.size,
    missing,
    extra,
    inOrder,
    complete: missing.length === 0 && extra.length === 0 && inOrder,
  };
}
