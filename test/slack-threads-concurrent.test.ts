/**
 * Many runs at once (a region-wide incident), each in its own channel, mirrored by one ThreadPoster through the
 * strict fake Slack with Slack's limits (posts paced per channel, chat.update budgeted for the whole app, a
 * burst of 429s): every thread ends complete, as the thread is designed to show it (dev/slack/thread-check.ts):
 * every post in it, in order, none twice, each approval one message showing its decision, the root final.
 */
import { describe, expect, it } from 'vitest';
import { checkThread } from '../dev/slack/thread-check.js';
import { loadRunbooks, parseRunbook, type RunbookSet } from '../src/runbook/load.js';
import { APPROVE_ACTION_ID } from '../src/slack/blocks.js';
import { isType, startHarness, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { useSlackFronts } from './support/slack-front.js';
import { buttonClickBody } from './support/slack-requests.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;
const RUNS = 20;
const db = useTestRedis();
const startSlackFront = useSlackFronts(db);

/** Three steps: one that finds something (a post), one destructive behind an approval, one that only confirms. */
async function stormRunbooks(): Promise<RunbookSet> {
  const shipped = await loadRunbooks(COMMANDS);
  const rb = parseRunbook(
    '/test/storm.yaml',
    `name: storm
summary: a short fixture for many concurrent threads
source: test
params: []
steps:
  - id: look
    title: Look at the nodes
    run: echo "nodes=3"
    decide:
      - when: "true"
        say: "3 nodes, 1 NotReady"
  - id: fix
    title: Restart the kubelet
    destructive: true
    guard:
      - run: "true"
        skip_when: "false"
        say: never
    approval:
      summary: Restart the kubelet
      targets: ["node 2"]
    verify: { run: "true", took_effect: "true", say: restarted, check_by_hand: none }
    run: "true"
  - id: confirm
    title: Confirm the nodes are Ready
    run: echo Ready
`,
    shipped.scopes,
  );
  return { ...shipped, runbooks: new Map([...shipped.runbooks, ['storm', rb]]) };
}

describe('many concurrent runs, one thread poster', () => {
  it(`should complete all ${RUNS} threads through Slack's limits and a 429 burst: every post once, in order`, {
    timeout: 120_000,
  }, async () => {
    const channels = Array.from({ length: RUNS }, (_, i) => `C0STORM${String(i + 1).padStart(2, '0')}`);
    const harness = await startHarness({
      redis: db.redis,
      prefix: db.prefix,
      runbooks: await stormRunbooks(),
      scenarios: ['healthy'],
      sitesPerSim: RUNS,
    });
    let front: Awaited<ReturnType<typeof startSlackFront>> | undefined;
    try {
      front = await startSlackFront({
        harness,
        channels,
        users: ['U0APPROVER', 'U0LEAD0001'],
        agent: { concurrency: RUNS },
        siteChannels: channels.map((c) => [c]),
        // Slack's app-wide chat.update limit, on a short window: the approvals' edits and the roots' refreshes
        // of every run compete for it.
        fake: { methodLimitsPerMinute: { 'chat.update': 20 }, methodLimitWindowMs: 2000 },
        poster: { updateLimit: { count: 20, perMs: 2000 } },
      });
      const { fake, poster } = front;
      const { service } = harness;
      const send = front.send;
      const warnings: string[] = [];
      const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
      process.on('warning', onWarning);
      try {
        const runs = await Promise.all(
          channels.map((channel, i) =>
            service.submit({
              runbook: 'storm',
              args: [],
              site: `site-${i}`,
              channel,
              requestedBy: 'U0LEAD0001',
            }),
          ),
        );
        // What /capi does once a run is started.
        for (const r of runs) poster.watch(r.runId);
        // A burst of refusals while the threads fill.
        fake.failNext('chat.postMessage', { status: 429, retryAfterS: 1 }, 6);

        // A human clicks Approve on each approval message as it appears.
        const clicked = new Set<string>();
        const clicking = eventually(
          `an approval message with buttons in each of the ${RUNS} channels, each clicked`,
          async () => {
            for (const channel of channels) {
              for (const m of fake.messages(channel)) {
                const id = /"value":"(approval~[^"]+)"/.exec(JSON.stringify(m.blocks))?.[1];
                if (id === undefined || clicked.has(id)) continue;
                clicked.add(id);
                const body = buttonClickBody({
                  user: 'U0APPROVER',
                  channel,
                  actionId: APPROVE_ACTION_ID,
                  value: id,
                  messageTs: m.ts,
                });
                await send(body);
              }
            }
            return clicked.size >= RUNS ? true : undefined;
          },
          { timeoutMs: 60_000 },
        );
        await clicking;
        for (const r of runs) {
          expect((await waitForEvent(service, r.runId, isType('run.finished'), 60_000)).status).toBe(
            'succeeded',
          );
        }
        // Every thread done (run.finished posted, root final), as the poster's cursors say.
        const settled = new Set<string>();
        for (const r of runs) void poster.settled(r.runId).then(() => settled.add(r.runId));
        await eventually(`the ${RUNS} threads settled`, () => (settled.size === RUNS ? true : undefined), {
          timeoutMs: 60_000,
        });

        expect(fake.calls.filter((c) => c.status === 429).length).toBeGreaterThanOrEqual(6);
        for (const [i, r] of runs.entries()) {
          const channel = channels[i] as string;
          const messages = fake.messages(channel);
          const roots = messages.filter((m) => m.thread_ts === undefined);
          expect(roots, `one root in ${channel}`).toHaveLength(1);
          const root = roots[0];
          expect(root?.text, `the root in ${channel} shows the end`).toMatch(/: succeeded \(/);
          const thread = messages.filter((m) => m.thread_ts === root?.ts && m.files === undefined);
          const entries = await service.readTimeline(r.runId);
          const check = checkThread(
            r.runId,
            entries,
            thread.map((m) => m.text),
          );
          expect(
            { channel, missing: check.missing, extra: check.extra, inOrder: check.inOrder },
            `the thread of ${r.runId}`,
          ).toEqual({ channel, missing: [], extra: [], inOrder: true });
          // The finding is in the thread (its own post, or the catch-up after the approval posted ahead of it);
          // the step that only confirmed has no post: the root's checklist tells it.
          const said = JSON.stringify(thread.map((m) => m.blocks));
          expect(said).toContain('3 nodes, 1 NotReady');
          expect(said).not.toContain('Confirm the nodes');
          const approvals = thread.filter((m) => m.text.includes(`(run ${r.runId})`));
          expect(approvals.map((m) => m.text.split(':')[0])).toEqual(['Approved']);
          expect(JSON.stringify(approvals[0]?.blocks)).not.toContain(APPROVE_ACTION_ID);
        }
        expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
      } finally {
        process.off('warning', onWarning);
      }
    } finally {
      await front?.stop();
      await harness.stop();
    }
  });
});
