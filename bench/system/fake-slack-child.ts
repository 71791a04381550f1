/**
 * The strict fake Slack Web API (dev/slack) in a process of its own, so that the work it does for the
 * product's posts does not sit in the event loop of the process that times the acks. The parent asks
 * over IPC for what it needs: calls per method (429s included), approvals with live buttons, channels.
 */
import { startFakeSlack } from '../../dev/slack/fake-slack.js';
import { APPROVE_ACTION_ID } from '../../src/slack/blocks.js';
import type { ChannelView, FakeSlackConfig, SlackRequest, SlackSnapshot } from './slack.js';

const config = JSON.parse(process.argv[2] ?? '{}') as FakeSlackConfig;
const fake = await startFakeSlack(config);

const FINAL = /\*(succeeded|FAILED|DENIED|CANCELLED)\*/;
const perMethod: SlackSnapshot['calls'] = {};
const postedAt = new Map<string, number>();
/** `channel|ts` -> approval ids on its Approve buttons (none once the message was edited without them). */
const buttons = new Map<string, string[]>();
let seen = 0;

function approveValues(blocks: unknown): string[] {
  if (!Array.isArray(blocks)) return [];
  const out: string[] = [];
  for (const block of blocks as { elements?: { action_id?: string; value?: string }[] }[]) {
    for (const el of block.elements ?? []) {
      if (el.action_id === APPROVE_ACTION_ID && typeof el.value === 'string') out.push(el.value);
    }
  }
  return out;
}

/** Folds the calls made since the last look into the counters; O(new calls). */
function catchUp(): void {
  for (; seen < fake.calls.length; seen++) {
    const call = fake.calls[seen];
    if (call === undefined) continue;
    const m = perMethod[call.method] ?? { ok: 0, limited: 0, other: 0 };
    perMethod[call.method] = m;
    if (call.status === 429) m.limited += 1;
    else if (call.status === 200 && (call.response as { ok?: boolean }).ok === true) m.ok += 1;
    else m.other += 1;
    if (call.status !== 200 || (call.response as { ok?: boolean }).ok !== true) continue;
    const channel = String(call.args.channel ?? '');
    if (call.method === 'chat.postMessage') {
      const ts = String((call.response as { ts?: string }).ts);
      postedAt.set(`${channel}|${ts}`, call.at);
      buttons.set(`${channel}|${ts}`, approveValues(call.args.blocks));
    } else if (call.method === 'chat.update' && call.args.blocks !== undefined) {
      buttons.set(`${channel}|${String(call.args.ts)}`, approveValues(call.args.blocks));
    }
  }
}

function channelView(channel: string): ChannelView {
  const messages = fake.messages(channel);
  const root = messages.find((m) => m.thread_ts === undefined);
  const thread = root === undefined ? [] : messages.filter((m) => m.thread_ts === root.ts);
  return {
    ...(root !== undefined
      ? {
          root: {
            ts: root.ts,
            at: postedAt.get(`${channel}|${root.ts}`) ?? Number.NaN,
            final: FINAL.test(JSON.stringify(root.blocks)),
            updates: root.updates,
          },
        }
      : {}),
    posts: thread.filter((m) => m.files === undefined).length,
    thread: thread.filter((m) => m.files === undefined).map((m) => m.text),
    liveButtons: messages.filter((m) => approveValues(m.blocks).length > 0).length,
    files: thread.filter((m) => m.files !== undefined).length,
  };
}

function answer(req: SlackRequest): unknown {
  catchUp();
  switch (req.op) {
    case 'calls':
      return perMethod;
    case 'approvals':
      return [...buttons].flatMap(([key, ids]) => {
        const [channel, ts] = key.split('|');
        return ids.map((id) => ({ channel, ts, id }));
      });
    case 'channels':
      return Object.fromEntries(req.channels.map((c) => [c, channelView(c)]));
    case 'responseUrls':
      return Array.from({ length: req.count }, () => fake.issueResponseUrl(req.user, req.channel));
  }
}

process.on('message', (msg: { id: number; req: SlackRequest }) => {
  process.send?.({ id: msg.id, result: answer(msg.req) });
});
process.on('disconnect', () => {
  void fake.close().finally(() => process.exit(0));
});
process.send?.({ ready: fake.url });
