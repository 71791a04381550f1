/**
 * Slack's modals and Home tabs in the playground. The fake Slack holds every view the bot opened, updated or
 * published; this module says which modal is open for whom (Slack closes one when its submission is answered
 * with nothing or `clear`, or when the person cancels), keeps the `response_action: errors` the bot answered
 * with, and turns a submission typed into the page into the signed `view_submission` Slack would send, with
 * `state.values` built from the stored view (so only its own inputs, and only its own select options).
 */
import type { FakeSlack, FakeView } from '../slack/fake-slack.js';
import { blocksView } from './blocks-view.js';
import type { Person } from './cast.js';
import { type MrkdwnContext, plainLine } from './mrkdwn.js';
import type { BlockView, DialogsState, InputView, ModalView } from './web/view-types.js';

/** What the page sends: per block_id, per action_id, the text typed or the option value chosen (null: none). */
export type TypedValues = Readonly<Record<string, Readonly<Record<string, string | null>>>>;

/** Slack's own words under a required input left empty (it never sends such a submission). */
export const REQUIRED_FIELD = 'Please complete this required field.';
/** Slack's words in a modal whose submission the app did not answer in time. */
export const NOT_ANSWERED = 'We had some trouble connecting. Try again?';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function plain(value: unknown): string {
  return isObject(value) && typeof value.text === 'string'
    ? plainLine(value.text, value.emoji !== false)
    : '';
}

function inputView(block: Record<string, unknown>): InputView {
  const e = isObject(block.element) ? block.element : {};
  const actionId = typeof e.action_id === 'string' ? e.action_id : '';
  const placeholder = plain(e.placeholder);
  const ph = placeholder !== '' ? { placeholder } : {};
  const hint = plain(block.hint);
  const base = {
    type: 'input' as const,
    blockId: typeof block.block_id === 'string' ? block.block_id : '',
    label: plain(block.label),
    optional: block.optional === true,
    ...(hint !== '' ? { hint } : {}),
  };
  if (e.type === 'plain_text_input') {
    return {
      ...base,
      element: {
        kind: 'text',
        actionId,
        multiline: e.multiline === true,
        ...ph,
        ...(typeof e.max_length === 'number' ? { maxLength: e.max_length } : {}),
        ...(typeof e.initial_value === 'string' ? { initial: e.initial_value } : {}),
      },
    };
  }
  if (e.type === 'static_select') {
    const options = (Array.isArray(e.options) ? e.options : []).filter(isObject).map((o) => ({
      text: plain(o.text),
      value: typeof o.value === 'string' ? o.value : '',
    }));
    const initial = isObject(e.initial_option) ? e.initial_option.value : undefined;
    return {
      ...base,
      element: {
        kind: 'select',
        actionId,
        ...ph,
        options,
        ...(typeof initial === 'string' ? { initial } : {}),
      },
    };
  }
  return { ...base, element: { kind: 'other', type: String(e.type) } };
}

export class Dialogs {
  private readonly closed = new Set<string>();
  /** `response_action: errors`, for the view's hash it was answered to (an update clears them). */
  private readonly errors = new Map<string, { hash: string; errors: Record<string, string> }>();

  constructor(private readonly fake: FakeSlack) {}

  /** The modal open for `user`: the newest one the bot opened for them that has not closed. */
  openFor(user: string): FakeView | undefined {
    return this.fake
      .modals()
      .filter((v) => v.user === user && !this.closed.has(v.id))
      .at(-1);
  }

  /** Closes every modal of `user` (Slack closes the whole stack on a submission answered with nothing). */
  close(user: string): void {
    for (const v of this.fake.modals()) if (v.user === user) this.closed.add(v.id);
  }

  showErrors(view: FakeView, errors: Record<string, string>): void {
    this.errors.set(view.id, { hash: view.hash, errors });
  }

  /**
   * `state.values` as Slack sends them for what was typed into `view`, or the errors Slack's own client shows
   * without sending anything (a required input left empty).
   */
  stateValues(
    view: FakeView,
    typed: TypedValues,
  ): { values: Record<string, Record<string, unknown>> } | { errors: Record<string, string> } {
    const values: Record<string, Record<string, unknown>> = {};
    const errors: Record<string, string> = {};
    const blocks = Array.isArray(view.view.blocks) ? view.view.blocks : [];
    for (const block of blocks) {
      if (!isObject(block) || block.type !== 'input') continue;
      const input = inputView(block);
      const el = input.element;
      if (el.kind === 'other') continue;
      const raw = typed[input.blockId]?.[el.actionId] ?? null;
      const given = raw === null || raw === '' ? null : raw;
      if (given === null && !input.optional) errors[input.blockId] = REQUIRED_FIELD;
      if (el.kind === 'text') {
        values[input.blockId] = { [el.actionId]: { type: 'plain_text_input', value: given } };
        continue;
      }
      const element = isObject(block.element) ? block.element : {};
      const option = (Array.isArray(element.options) ? element.options : []).find(
        (o) => isObject(o) && o.value === given,
      );
      if (given !== null && option === undefined) errors[input.blockId] = 'That option is not in the list.';
      values[input.blockId] = {
        [el.actionId]: { type: 'static_select', selected_option: option ?? null },
      };
    }
    return Object.keys(errors).length > 0 ? { errors } : { values };
  }

  /** What each person sees: their open modal and their Home tab. */
  state(people: readonly Person[], ctx: MrkdwnContext): DialogsState {
    const modals: Record<string, ModalView> = {};
    const homes: Record<string, BlockView[]> = {};
    for (const p of people) {
      const open = this.openFor(p.id);
      if (open) modals[p.id] = this.modalView(open, ctx);
      const home = this.fake.home(p.id);
      if (home) {
        const blocks = Array.isArray(home.view.blocks) ? home.view.blocks : [];
        homes[p.id] = blocksView(blocks, home.id, ctx);
      }
    }
    return { modals, homes };
  }

  private modalView(v: FakeView, ctx: MrkdwnContext): ModalView {
    const blocks = Array.isArray(v.view.blocks) ? v.view.blocks : [];
    const errors = this.errors.get(v.id);
    const submit = plain(v.view.submit);
    return {
      id: v.id,
      hash: v.hash,
      title: plain(v.view.title),
      ...(submit !== '' ? { submit } : {}),
      close: plain(v.view.close) || 'Cancel',
      blocks: blocks.map((b, i) =>
        isObject(b) && b.type === 'input'
          ? inputView(b)
          : (blocksView([b], `${v.id}-${i}`, ctx)[0] ?? { type: 'divider' }),
      ),
      errors: errors?.hash === v.hash ? errors.errors : {},
    };
  }
}
