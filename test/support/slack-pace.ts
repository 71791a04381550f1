/**
 * Slack's pace, short for tests that are not about the pace. Real Slack takes about one post a second per
 * channel, and the product's poster and the fake Slack keep to that by default: a 50-post thread is then a
 * minute of waiting that checks nothing more. These keep the two consistent at a faster pace (the poster's
 * interval stays under the fake's limit, so no 429 comes from pacing alone) and leave every rule in place:
 * the fake still refuses a post over its limit, the poster still paces, coalesces root edits and budgets them.
 * Tests about pacing itself (slack-poster, slack-thread-readable) set their own.
 */

/** startFakeSlack: 50 posts a second per channel after a burst of 3. */
export const FAST_FAKE_SLACK = { postRatePerChannelPerS: 50 } as const;

/** ThreadPoster: a post every 30 ms per channel, the root refreshed at most every 150 ms. */
export const FAST_POSTER = {
  minPostIntervalMs: 30,
  rootUpdateIntervalMs: 150,
  // The fake has no chat.update limit unless a test sets one: no budget to wait for either.
  updateLimit: { count: 1000, perMs: 1000 },
} as const;
