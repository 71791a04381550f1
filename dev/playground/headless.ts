/**
 * `npm run demo -- --yes`: the playground's path without a browser, for CI and terminals. The operator types
 * `/capi <runbook>`, the approver clicks Approve on every approval message the bot posts (the same signed
 * block_actions a click in the page sends; the confirm dialog is the page's, so it is not shown here), and
 * when the run's root message and thread say it finished, the channel is printed as text.
 */

import type { FakeMessage, FakeSlack } from '../slack/fake-slack.js';
import { APPROVER, OPERATOR } from './cast.js';
import type { ChannelView } from './channel.js';
import type { Playground } from './playground.js';
import { channelTranscript } from './transcript.js';
import type { ButtonRef, ChannelState, MessageView } from './web/view-types.js';

export const APPROVE_ACTION_TEXT = 'Approve';
const FINAL = /: (succeeded|FAILED|DENIED|CANCELLED) \(/;
const FINISHED_POST = /^Run (succeeded|failed|denied|cancelled) after/;

export interface HeadlessOutcome {
  /** The run's final status as its root message says it; undefined when no run started. */
  readonly status?: string;
  /** Why it ended without a finished run. */
  readonly problem?: string;
  readonly transcript: string;
}

/** The approve buttons of the channel's messages, with the message they sit on. */
export function approveButtons(state: ChannelState): { message: MessageView; ref: ButtonRef }[] {
  return state.messages.flatMap((message) =>
    message.kind !== 'bot'
      ? []
      : message.blocks.flatMap((b) =>
          b.type === 'actions'
            ? b.elements.flatMap((e) =>
                e.kind === 'button' && e.text === APPROVE_ACTION_TEXT ? [{ message, ref: e.ref }] : [],
              )
            : [],
        ),
  );
}

/**
 * The run's final status (lower case), once its root message says it ended and its thread's closing post is
 * there; undefined while it runs.
 */
export function finishedStatus(messages: readonly FakeMessage[]): string | undefined {
  const root = messages.find((m) => m.thread_ts === undefined);
  if (!root) return undefined;
  const final = FINAL.exec(root.text)?.[1];
  const closed = messages.some((m) => m.thread_ts === root.ts && FINISHED_POST.test(m.text));
  return final !== undefined && closed ? final.toLowerCase() : undefined;
}

export async function runHeadless(opts: {
  readonly playground: Playground;
  readonly view: ChannelView;
  readonly fake: FakeSlack;
  readonly channelId: string;
  /** What the operator types, e.g. `/capi recover`. */
  readonly command: string;
  readonly timeoutMs: number;
  readonly log: (line: string) => void;
}): Promise<HeadlessOutcome> {
  const { view, playground, log } = opts;
  const clicked = new Set<string>();
  let running = false;
  let again = false;
  let settle: (o: { status?: string; problem?: string }) => void = () => undefined;
  const done = new Promise<{ status?: string; problem?: string }>((resolve) => {
    settle = resolve;
  });

  const step = async () => {
    const messages = opts.fake.messages(opts.channelId);
    const state = view.state();
    if (!messages.some((m) => m.thread_ts === undefined)) {
      const said = state.messages.find((m) => m.to === OPERATOR.id);
      if (said) settle({ problem: 'the bot answered instead of starting a run (see the transcript)' });
      return;
    }
    const status = finishedStatus(messages);
    if (status !== undefined) {
      settle({ status });
      return;
    }
    for (const { message, ref } of approveButtons(state)) {
      if (clicked.has(message.ts)) continue;
      clicked.add(message.ts);
      const header = message.blocks.find((b) => b.type === 'header');
      log(`${APPROVER.name} approves: ${header?.type === 'header' ? header.text : message.ts}`);
      const outcome = await playground.click(APPROVER.id, ref);
      if (!outcome.ok) log(`  the click was not sent: ${outcome.problem}`);
    }
  };
  /** One check at a time; a change during a check runs another one after it, so none is missed. */
  const check = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await step();
      } while (again);
    } finally {
      running = false;
    }
  };
  const unsubscribe = view.onChange(() => void check());
  let timer: NodeJS.Timeout | undefined;
  try {
    log(`${OPERATOR.name} types ${opts.command}`);
    const sent = await playground.command(OPERATOR.id, opts.command);
    if (!sent.ok) return { problem: sent.problem, transcript: channelTranscript(view.state(), OPERATOR.id) };
    await check();
    const outcome = await Promise.race([
      done,
      new Promise<{ problem: string }>((resolve) => {
        timer = setTimeout(
          () => resolve({ problem: `the run did not finish within ${opts.timeoutMs / 1000} s` }),
          opts.timeoutMs,
        );
      }),
    ]);
    return { ...outcome, transcript: channelTranscript(view.state(), OPERATOR.id) };
  } finally {
    clearTimeout(timer);
    unsubscribe();
  }
}
