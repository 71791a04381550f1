/**
 * What a run's Slack thread must show, as the one poster writes it: each event's post (threadPost: the
 * events that get a post of their own, not those an approval message tells) in timeline order, except where the thread fell behind an approval request: the request is posted ahead and
 * the posts waiting before it come after it as one catch-up post (catchUpMessage).
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
