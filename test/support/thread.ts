/** What a run's Slack thread must show: dev/slack/thread-check.ts (bench:system uses the same check). */
export {
  checkThread,
  type ExpectedPost,
  eventPosts,
  expectedPosts,
  isApprovalMessage,
  type ThreadCheck,
} from '../../dev/slack/thread-check.js';
