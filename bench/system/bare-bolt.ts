/**
 * The floor for the ack: a Bolt app of the product's Bolt version with the product's receiver and client
 * options (HTTP, signing secret, the fake Slack as its API), whose /capi listener only acks.
 * Started as a process of its own, like `serve`, so both are timed from the same outside.
 */
import { App, LogLevel } from '@slack/bolt';

const [port, slackApiUrl] = process.argv.slice(2);
const app = new App({
  token: process.env.SLACK_BOT_TOKEN as string,
  signingSecret: process.env.SLACK_SIGNING_SECRET as string,
  logLevel: LogLevel.WARN,
  clientOptions: {
    slackApiUrl: slackApiUrl as string,
    retryConfig: { retries: 10 },
    rejectRateLimitedCalls: false,
  },
});
app.command('/capi', async ({ ack }) => {
  await ack();
});
await app.start(Number(port));
process.stdout.write('bare bolt ready\n');
process.once('SIGTERM', () => {
  void app.stop().finally(() => process.exit(0));
});
