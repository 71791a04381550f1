/**
 * What the playground's page is sent: one incident channel as plain data. The server turns Slack's messages
 * (mrkdwn, Block Kit) into these shapes and the page builds DOM nodes from them with textContent only, so
 * nothing the bot wrote is ever parsed as HTML. Types only: the browser bundle and the server both use them.
 */

/** Inline pieces of a mrkdwn line. */
export type Inline =
  | { readonly k: 'text'; readonly text: string }
  | { readonly k: 'b' | 'i' | 's'; readonly children: readonly Inline[] }
  | { readonly k: 'code'; readonly text: string }
  /** `url` is http(s) or mailto only: anything else is shown as text. */
  | { readonly k: 'link'; readonly url: string; readonly children: readonly Inline[] }
  | { readonly k: 'mention'; readonly kind: 'user' | 'group' | 'channel' | 'special'; readonly label: string }
  /** `<!date^…>` formatted for the reader; `fallback` is what Slack clients without it show. */
  | { readonly k: 'date'; readonly text: string; readonly fallback: string }
  /** A shortcode Slack knows, e.g. `white_check_mark`, and the character it shows (✅); unknown ones are text. */
  | { readonly k: 'emoji'; readonly name: string; readonly char: string }
  | { readonly k: 'br' };

export type RichBlock =
  | { readonly k: 'p'; readonly inlines: readonly Inline[] }
  | { readonly k: 'quote'; readonly inlines: readonly Inline[] }
  | { readonly k: 'pre'; readonly text: string };

export type RichText = readonly RichBlock[];

/** Which button of which message: the server reads the button itself from the message it holds. */
export interface ButtonRef {
  readonly messageTs: string;
  readonly blockIndex: number;
  /** The element's index in an actions block; -1 for a section's accessory. */
  readonly elementIndex: number;
}

export interface ConfirmView {
  readonly title: string;
  readonly text: RichText;
  readonly confirm: string;
  readonly deny: string;
  readonly style?: 'primary' | 'danger';
}

export type ElementView =
  | {
      readonly kind: 'button';
      readonly text: string;
      readonly style?: 'primary' | 'danger';
      readonly ref: ButtonRef;
      readonly confirm?: ConfirmView;
      /** A link button opens this (http/https only). */
      readonly url?: string;
    }
  | { readonly kind: 'other'; readonly type: string };

export type BlockView =
  | { readonly type: 'header'; readonly text: string }
  | {
      readonly type: 'section';
      readonly text?: RichText;
      readonly fields?: readonly RichText[];
      readonly accessory?: ElementView;
    }
  | { readonly type: 'context'; readonly elements: readonly RichText[] }
  | { readonly type: 'divider' }
  | { readonly type: 'actions'; readonly elements: readonly ElementView[] }
  /** A block type the playground does not draw (rich_text, image, input): its JSON, as text. */
  | { readonly type: 'other'; readonly blockType: string; readonly json: string };

export interface FileView {
  readonly id: string;
  readonly name: string;
  readonly title: string;
  readonly bytes: number;
  /** Where the page fetches the content (the playground serves it as text/plain). */
  readonly href: string;
}

/** Slack's answer to a call that it refused, shown in red. */
export interface RefusalView {
  readonly method: string;
  readonly error: string;
  readonly details: readonly string[];
}

export interface MessageView {
  /** Stable across updates: the page keeps a message's DOM node while its content is unchanged. */
  readonly key: string;
  /**
   * `bot`: in the channel for everyone; `ephemeral`: only `to` sees it; `refused`: a post Slack refused
   * (its attempted content, in red); `notice`: Slackbot telling `to` something (an unknown command).
   */
  readonly kind: 'bot' | 'ephemeral' | 'refused' | 'notice';
  readonly ts: string;
  readonly threadTs?: string;
  readonly author: string;
  /** When the playground first saw it, HH:MM:SS on this machine. */
  readonly time: string;
  readonly to?: string;
  readonly edited: boolean;
  /** The message's text: what Slack shows when there are no blocks. */
  readonly text: RichText;
  readonly blocks: readonly BlockView[];
  readonly files: readonly FileView[];
  readonly refusal?: RefusalView;
  /** chat.update calls on this message that Slack refused, newest last. */
  readonly refusedEdits: readonly RefusalView[];
  /** On a root message: its thread's size. */
  readonly replies?: number;
}

export interface PersonView {
  readonly id: string;
  readonly name: string;
  /** What this person may do, in words. */
  readonly role: string;
}

export interface ChannelState {
  readonly channel: { readonly id: string; readonly name: string };
  readonly site: string;
  readonly scenario: string;
  readonly scenarioDescription: string;
  readonly people: readonly PersonView[];
  /** Oldest first; thread replies carry threadTs. */
  readonly messages: readonly MessageView[];
}

/** An input block of a modal: a text box or a static select, named as the submission names it. */
export interface InputView {
  readonly type: 'input';
  readonly blockId: string;
  readonly label: string;
  readonly optional: boolean;
  readonly hint?: string;
  readonly element:
    | {
        readonly kind: 'text';
        readonly actionId: string;
        readonly multiline: boolean;
        readonly placeholder?: string;
        readonly maxLength?: number;
        readonly initial?: string;
      }
    | {
        readonly kind: 'select';
        readonly actionId: string;
        readonly placeholder?: string;
        readonly options: readonly { readonly text: string; readonly value: string }[];
        readonly initial?: string;
      }
    | { readonly kind: 'other'; readonly type: string };
}

/** The modal Slack shows a person (the one the fake holds open for them), as the page draws it. */
export interface ModalView {
  readonly id: string;
  /** Changes with every views.update: the page redraws the dialog (keeping what was typed) when it does. */
  readonly hash: string;
  readonly title: string;
  readonly submit?: string;
  readonly close: string;
  readonly blocks: readonly (BlockView | InputView)[];
  /** `response_action: errors` from the app, by block_id; shown under the input. */
  readonly errors: Readonly<Record<string, string>>;
}

export interface DialogsState {
  /** Per person id: the modal open for them. */
  readonly modals: Readonly<Record<string, ModalView>>;
  /** Per person id: the Home tab last published for them. */
  readonly homes: Readonly<Record<string, readonly BlockView[]>>;
}

/** What the server streams: the channel and what each person sees outside it. */
export interface PageState extends ChannelState {
  readonly dialogs: DialogsState;
}
