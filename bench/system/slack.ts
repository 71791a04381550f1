/** The parent's side of the fake Slack process (fake-slack-child.ts): start it, ask it, stop it. */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeSlackOptions } from '../../dev/slack/fake-slack.js';
import type { Children } from './processes.js';

export type FakeSlackConfig = Omit<FakeSlackOptions, 'clock'>;

export interface ChannelView {
  readonly root?: {
    readonly ts: string;
    /** Epoch ms at which the fake accepted the root post. */
    readonly at: number;
    /** The root shows the run's final status. */
    readonly final: boolean;
    readonly updates: number;
  };
  /** Thread replies that are messages (file shares apart). */
  readonly posts: number;
  /** Their notification texts, oldest first (dev/slack/thread-check.ts compares them with the timeline). */
  readonly thread: readonly string[];
  /** Messages in the channel that still show Approve buttons (none once every decision is in its message). */
  readonly liveButtons: number;
  readonly files: number;
}

export interface SlackSnapshot {
  readonly calls: Record<string, { ok: number; limited: number; other: number }>;
}

export type SlackRequest =
  | { readonly op: 'calls' }
  | { readonly op: 'approvals' }
  | { readonly op: 'channels'; readonly channels: readonly string[] }
  | { readonly op: 'responseUrls'; readonly user: string; readonly channel: string; readonly count: number };

export interface FakeSlackProcess {
  readonly url: string;
  readonly pid: number;
  calls(): Promise<SlackSnapshot['calls']>;
  /** Approval ids that have an Approve button in Slack right now (or had, until the message is edited). */
  approvals(): Promise<{ channel: string; ts: string; id: string }[]>;
  channels(channels: readonly string[]): Promise<Record<string, ChannelView>>;
  /** `count` fresh response_urls, as Slack puts one in each slash command by `user` in `channel`. */
  responseUrls(user: string, channel: string, count: number): Promise<string[]>;
  stop(): Promise<void>;
}

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fake-slack-child.js');

export async function startFakeSlackProcess(
  config: FakeSlackConfig,
  children: Children,
): Promise<FakeSlackProcess> {
  const child: ChildProcess = children.spawn(process.execPath, [CHILD, JSON.stringify(config)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pending = new Map<number, (result: unknown) => void>();
  let nextId = 1;
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the fake Slack process exited (code ${code})`)));
    child.on('message', (msg: { ready?: string; id?: number; result?: unknown }) => {
      if (msg.ready !== undefined) resolve(msg.ready);
      else if (msg.id !== undefined) {
        pending.get(msg.id)?.(msg.result);
        pending.delete(msg.id);
      }
    });
  });
  const ask = <T>(req: SlackRequest): Promise<T> =>
    new Promise((resolve) => {
      const id = nextId++;
      pending.set(id, (r) => resolve(r as T));
      child.send({ id, req });
    });
  return {
    url,
    pid: child.pid as number,
    calls: () => ask({ op: 'calls' }),
    approvals: () => ask({ op: 'approvals' }),
    channels: (channels) => ask({ op: 'channels', channels }),
    responseUrls: (user, channel, count) => ask({ op: 'responseUrls', user, channel, count }),
    stop: () => children.stop(child, 3000),
  };
}
