/**
 * The playground page: one Slack channel, drawn from the state the server streams (server-sent events).
 * Every string the bot wrote goes into the DOM through textContent or an attribute, never as HTML. A click
 * on a button with a confirm dialog opens the dialog first, as Slack does; the click itself, and every typed
 * command, go to the server, which sends them to the bot as Slack would.
 */
import type {
  BlockView,
  ButtonRef,
  ConfirmView,
  ElementView,
  Inline,
  InputView,
  MessageView,
  ModalView,
  PageState,
  RichText,
} from './view-types.js';

const USER_KEY = 'capi-playground-user';

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (className !== undefined) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

const ui = {
  people: byId<HTMLElement>('people'),
  asUser: byId<HTMLSelectElement>('as-user'),
  channelName: byId<HTMLElement>('channel-name'),
  channelTitle: byId<HTMLElement>('channel-title'),
  topic: byId<HTMLElement>('channel-topic'),
  messages: byId<HTMLElement>('messages'),
  composer: byId<HTMLFormElement>('composer'),
  box: byId<HTMLInputElement>('message-box'),
  composerError: byId<HTMLElement>('composer-error'),
  thread: byId<HTMLElement>('thread'),
  threadMessages: byId<HTMLElement>('thread-messages'),
  closeThread: byId<HTMLButtonElement>('close-thread'),
  backdrop: byId<HTMLElement>('dialog-backdrop'),
  dialogTitle: byId<HTMLElement>('dialog-title'),
  dialogText: byId<HTMLElement>('dialog-text'),
  dialogConfirm: byId<HTMLButtonElement>('dialog-confirm'),
  dialogDeny: byId<HTMLButtonElement>('dialog-deny'),
  modalBackdrop: byId<HTMLElement>('modal-backdrop'),
  modal: byId<HTMLFormElement>('modal'),
  modalTitle: byId<HTMLElement>('modal-title'),
  modalError: byId<HTMLElement>('modal-error'),
  modalBlocks: byId<HTMLElement>('modal-blocks'),
  modalClose: byId<HTMLButtonElement>('modal-close'),
  modalSubmit: byId<HTMLButtonElement>('modal-submit'),
  homeLink: byId<HTMLButtonElement>('home-link'),
  home: byId<HTMLElement>('home'),
  homeBlocks: byId<HTMLElement>('home-blocks'),
  closeHome: byId<HTMLButtonElement>('close-home'),
  connection: byId<HTMLElement>('connection'),
  toast: byId<HTMLElement>('toast'),
};

let state: PageState | undefined;
let me = localStorage.getItem(USER_KEY) ?? '';
let openThread: string | undefined;
let homeOpen = false;
/** The modal drawn, as JSON, so an unchanged one keeps its DOM (and what is being typed). */
let drawnModal: { readonly user: string; readonly sig: string; readonly id: string } | undefined;

// ----------------------------------------------------------------------------------------------------------
// Rich text

const SAFE_URL = /^(https?:|mailto:)/i;

function inline(n: Inline): Node {
  switch (n.k) {
    case 'text':
      return document.createTextNode(n.text);
    case 'b':
    case 'i':
    case 's': {
      const el = h(n.k === 'b' ? 'strong' : n.k === 'i' ? 'em' : 's');
      for (const c of n.children) el.append(inline(c));
      return el;
    }
    case 'code':
      return h('code', 'inline-code', n.text);
    case 'link': {
      if (!SAFE_URL.test(n.url)) {
        const span = h('span');
        for (const c of n.children) span.append(inline(c));
        return span;
      }
      const a = h('a');
      a.href = n.url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      for (const c of n.children) a.append(inline(c));
      return a;
    }
    case 'mention':
      return h('span', `mention mention-${n.kind}`, n.label);
    case 'date': {
      const t = h('time', 'date', n.text);
      t.title = n.fallback;
      return t;
    }
    case 'emoji': {
      // As Slack: the character, with its shortcode on hover and for screen readers.
      const span = h('span', 'emoji', n.char);
      span.title = `:${n.name}:`;
      span.setAttribute('role', 'img');
      span.setAttribute('aria-label', `:${n.name}:`);
      return span;
    }
    case 'br':
      return h('br');
  }
}

function rich(text: RichText, className = 'mrkdwn'): HTMLElement {
  const box = h('div', className);
  for (const b of text) {
    if (b.k === 'pre') {
      box.append(h('pre', 'code-block', b.text));
      continue;
    }
    const el = h(b.k === 'quote' ? 'blockquote' : 'div', b.k === 'quote' ? 'quote' : 'line');
    for (const n of b.inlines) el.append(inline(n));
    box.append(el);
  }
  return box;
}

// ----------------------------------------------------------------------------------------------------------
// Block Kit

function element(e: ElementView): HTMLElement {
  if (e.kind !== 'button') return h('span', 'bk-unsupported', `[${e.type}]`);
  const button = h('button', `bk-button${e.style ? ` bk-${e.style}` : ''}`, e.text);
  button.type = 'button';
  button.addEventListener('click', () => void press(button, e.ref, e.confirm, e.url));
  return button;
}

function block(b: BlockView): HTMLElement {
  switch (b.type) {
    case 'header':
      return h('div', 'bk-header', b.text);
    case 'divider':
      return h('hr', 'bk-divider');
    case 'section': {
      const el = h('div', 'bk-section');
      const main = h('div', 'bk-section-main');
      if (b.text) main.append(rich(b.text));
      if (b.fields) {
        const fields = h('div', 'bk-fields');
        for (const f of b.fields) fields.append(rich(f, 'mrkdwn bk-field'));
        main.append(fields);
      }
      el.append(main);
      if (b.accessory) el.append(element(b.accessory));
      return el;
    }
    case 'context': {
      const el = h('div', 'bk-context');
      for (const e of b.elements) el.append(rich(e, 'mrkdwn bk-context-element'));
      return el;
    }
    case 'actions': {
      const el = h('div', 'bk-actions');
      for (const e of b.elements) el.append(element(e));
      return el;
    }
    case 'other': {
      const el = h('div', 'bk-unsupported');
      el.append(h('div', undefined, `a ${b.blockType} block (not drawn by the playground):`));
      el.append(h('pre', 'code-block', b.json));
      return el;
    }
  }
}

// ----------------------------------------------------------------------------------------------------------
// Messages

function personName(id: string | undefined): string {
  return state?.people.find((p) => p.id === id)?.name ?? id ?? '';
}

function refusalBox(title: string, r: { error: string; details: readonly string[] }): HTMLElement {
  const box = h('div', 'refusal');
  box.setAttribute('role', 'alert');
  box.append(h('div', 'refusal-title', `${title}: ${r.error}`));
  if (r.details.length > 0) {
    const list = h('ul');
    for (const d of r.details) list.append(h('li', undefined, d));
    box.append(list);
  }
  return box;
}

function message(m: MessageView, inThread: boolean): HTMLElement {
  const el = h('div', `message message-${m.kind}`);
  el.dataset.ts = m.ts;
  el.append(h('div', 'avatar', m.author === 'Slackbot' ? 'S' : 'C'));
  const body = h('div', 'message-body');
  const meta = h('div', 'meta');
  meta.append(h('span', 'author', m.author));
  if (m.author !== 'Slackbot') meta.append(h('span', 'app-badge', 'APP'));
  meta.append(h('span', 'time', m.time));
  if (m.edited) meta.append(h('span', 'edited', '(edited)'));
  body.append(meta);
  if (m.to !== undefined) body.append(h('div', 'only-you', `Only visible to you · ${personName(m.to)}`));
  if (m.refusal) {
    body.append(refusalBox(`Slack refused this ${m.refusal.method}`, m.refusal));
  }
  const content = h('div', m.refusal ? 'content refused-content' : 'content');
  if (m.blocks.length > 0) for (const b of m.blocks) content.append(block(b));
  else content.append(rich(m.text));
  body.append(content);
  for (const f of m.files) {
    const file = h('div', 'file');
    const a = h('a', 'file-title', f.title);
    a.href = f.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    file.append(h('span', 'file-icon', 'TXT'), a, h('span', 'file-meta', `${f.name} · ${f.bytes} bytes`));
    body.append(file);
  }
  for (const r of m.refusedEdits) body.append(refusalBox('Slack refused an edit of this message', r));
  if (!inThread && m.replies !== undefined && m.replies > 0) {
    const link = h('button', 'replies', `${m.replies} ${m.replies === 1 ? 'reply' : 'replies'}`);
    link.type = 'button';
    link.addEventListener('click', () => {
      openThread = m.ts;
      homeOpen = false;
      render();
    });
    body.append(link);
  }
  el.append(body);
  return el;
}

/** Keeps a message's node while its data is unchanged, so a live update does not disturb the rest. */
const drawn = new Map<HTMLElement, Map<string, { sig: string; el: HTMLElement }>>();

function fill(pane: HTMLElement, list: readonly MessageView[], inThread: boolean): void {
  const before = drawn.get(pane) ?? new Map<string, { sig: string; el: HTMLElement }>();
  const after = new Map<string, { sig: string; el: HTMLElement }>();
  const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
  const els = list.map((m) => {
    const sig = JSON.stringify(m);
    const old = before.get(m.key);
    const entry = old && old.sig === sig ? old : { sig, el: message(m, inThread) };
    after.set(m.key, entry);
    return entry.el;
  });
  pane.replaceChildren(...els);
  drawn.set(pane, after);
  if (atBottom) pane.scrollTop = pane.scrollHeight;
}

function visible(m: MessageView): boolean {
  return m.to === undefined || m.to === me;
}

function render(): void {
  if (!state) return;
  const s = state;
  if (!s.people.some((p) => p.id === me)) me = s.people[0]?.id ?? '';
  if (ui.asUser.options.length !== s.people.length) {
    ui.asUser.replaceChildren(
      ...s.people.map((p) => {
        const o = h('option', undefined, p.name);
        o.value = p.id;
        return o;
      }),
    );
    ui.people.replaceChildren(
      ...s.people.map((p) => {
        const row = h('div', 'person');
        row.append(h('div', 'person-name', p.name), h('div', 'person-role', p.role));
        return row;
      }),
    );
  }
  ui.asUser.value = me;
  ui.channelName.textContent = s.channel.name;
  ui.channelTitle.textContent = s.channel.name;
  ui.topic.textContent = `site ${s.site} · scenario ${s.scenario}: ${s.scenarioDescription}`;

  fill(
    ui.messages,
    s.messages.filter((m) => m.threadTs === undefined && visible(m)),
    false,
  );
  const root =
    openThread === undefined
      ? undefined
      : s.messages.find((m) => m.ts === openThread && m.threadTs === undefined);
  // One side pane, as in Slack: Home covers the open thread, which is back when Home closes.
  ui.thread.hidden = root === undefined || homeOpen;
  if (root && !homeOpen) {
    fill(ui.threadMessages, [root, ...s.messages.filter((m) => m.threadTs === root.ts && visible(m))], true);
  }
  ui.home.hidden = !homeOpen;
  if (homeOpen) {
    const home = s.dialogs.homes[me];
    ui.homeBlocks.replaceChildren(
      ...(home === undefined
        ? [h('div', 'bk-context', 'Waiting for capi-chatops to publish your Home tab…')]
        : home.map(block)),
    );
  }
  renderModal(s.dialogs.modals[me]);
}

// ----------------------------------------------------------------------------------------------------------
// Modals: what the bot opened with views.open (and changed with views.update) for the person sending

function inputField(b: InputView, typed: Map<string, string>, error: string | undefined): HTMLElement {
  const box = h('div', 'modal-input');
  const id = `input-${b.blockId}`;
  const label = h('label', undefined, b.label);
  label.htmlFor = id;
  box.append(label);
  const e = b.element;
  if (e.kind === 'other') {
    box.append(h('span', 'bk-unsupported', `[${e.type}]`));
    return box;
  }
  const key = `${b.blockId}/${e.actionId}`;
  let field: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;
  if (e.kind === 'text') {
    field = e.multiline ? h('textarea') : h('input');
    if (e.placeholder !== undefined) field.placeholder = e.placeholder;
    if (e.maxLength !== undefined) field.maxLength = e.maxLength;
    field.value = typed.get(key) ?? e.initial ?? '';
  } else {
    const select = h('select');
    const none = h('option', undefined, e.placeholder ?? 'Choose…');
    none.value = '';
    select.append(
      none,
      ...e.options.map((o) => {
        const opt = h('option', undefined, o.text);
        opt.value = o.value;
        return opt;
      }),
    );
    const want = typed.get(key) ?? e.initial ?? '';
    select.value = e.options.some((o) => o.value === want) ? want : '';
    field = select;
  }
  field.id = id;
  field.dataset.block = b.blockId;
  field.dataset.action = e.actionId;
  if (error !== undefined) field.setAttribute('aria-invalid', 'true');
  box.append(field);
  if (b.hint !== undefined) box.append(h('div', 'modal-hint', b.hint));
  if (error !== undefined) {
    const err = h('div', 'modal-input-error', error);
    err.setAttribute('role', 'alert');
    box.append(err);
  }
  return box;
}

/** What is typed into the modal now, by `block/action`. */
function typedValues(): Map<string, string> {
  const out = new Map<string, string>();
  for (const el of ui.modalBlocks.querySelectorAll<
    HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement
  >('[data-block][data-action]')) {
    out.set(`${el.dataset.block}/${el.dataset.action}`, el.value);
  }
  return out;
}

function renderModal(m: ModalView | undefined): void {
  if (m === undefined) {
    ui.modalBackdrop.hidden = true;
    drawnModal = undefined;
    return;
  }
  const sig = JSON.stringify(m);
  if (drawnModal?.sig === sig && drawnModal.user === me) return;
  // An update of the same dialog (the picker's list arriving, errors) keeps what was typed.
  const typed = drawnModal?.id === m.id && drawnModal.user === me ? typedValues() : new Map<string, string>();
  drawnModal = { user: me, sig, id: m.id };
  ui.modalTitle.textContent = m.title;
  ui.modalError.textContent = m.errors[''] ?? '';
  ui.modalBlocks.replaceChildren(
    ...m.blocks.map((b) => (b.type === 'input' ? inputField(b, typed, m.errors[b.blockId]) : block(b))),
  );
  ui.modalClose.textContent = m.close;
  ui.modalSubmit.hidden = m.submit === undefined;
  ui.modalSubmit.textContent = m.submit ?? '';
  const wasHidden = ui.modalBackdrop.hidden;
  ui.modalBackdrop.hidden = false;
  if (wasHidden) ui.modalBlocks.querySelector<HTMLElement>('[data-block]')?.focus();
}

async function submitModal(): Promise<void> {
  const id = drawnModal?.id;
  if (id === undefined) return;
  const values: Record<string, Record<string, string | null>> = {};
  for (const [key, value] of typedValues()) {
    const [blockId = '', actionId = ''] = key.split('/');
    values[blockId] = { ...(values[blockId] ?? {}), [actionId]: value === '' ? null : value };
  }
  ui.modalSubmit.disabled = true;
  const answer = await post('/api/submit', { user: me, viewId: id, values });
  ui.modalSubmit.disabled = false;
  if (!answer.ok) toast(`The dialog was not submitted: ${answer.problem ?? 'unknown error'}`);
}

async function cancelModal(): Promise<void> {
  const id = drawnModal?.id;
  if (id === undefined) return;
  const answer = await post('/api/cancel', { user: me, viewId: id });
  if (!answer.ok) toast(`The dialog did not close: ${answer.problem ?? 'unknown error'}`);
}

ui.modal.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void submitModal();
});
ui.modalClose.addEventListener('click', () => void cancelModal());
ui.modalBackdrop.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape') void cancelModal();
});

ui.homeLink.addEventListener('click', () => {
  homeOpen = true;
  render();
  void post('/api/home', { user: me }).then((answer) => {
    if (!answer.ok) toast(`The Home tab did not open: ${answer.problem ?? 'unknown error'}`);
  });
});
ui.closeHome.addEventListener('click', () => {
  homeOpen = false;
  render();
});

// ----------------------------------------------------------------------------------------------------------
// Actions

function toast(text: string): void {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  window.setTimeout(() => {
    ui.toast.hidden = true;
  }, 6000);
}

async function post(path: string, body: unknown): Promise<{ ok: boolean; problem?: string }> {
  try {
    const res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const answer = (await res.json()) as { ok?: boolean; problem?: string; error?: string };
    return res.ok
      ? { ok: true }
      : { ok: false, problem: answer.problem ?? answer.error ?? `HTTP ${res.status}` };
  } catch (err) {
    return { ok: false, problem: `the playground is not answering (${String(err)})` };
  }
}

/** Slack's confirm dialog: resolves true on its confirm button, false on deny, Escape or the backdrop. */
function confirmDialog(c: ConfirmView): Promise<boolean> {
  ui.dialogTitle.textContent = c.title;
  ui.dialogText.replaceChildren(rich(c.text));
  ui.dialogConfirm.textContent = c.confirm;
  ui.dialogConfirm.className = `bk-button ${c.style === 'danger' ? 'bk-danger' : 'bk-primary'}`;
  ui.dialogDeny.textContent = c.deny;
  ui.backdrop.hidden = false;
  ui.dialogConfirm.focus();
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      ui.backdrop.hidden = true;
      ui.dialogConfirm.onclick = null;
      ui.dialogDeny.onclick = null;
      ui.backdrop.onkeydown = null;
      resolve(answer);
    };
    ui.dialogConfirm.onclick = () => done(true);
    ui.dialogDeny.onclick = () => done(false);
    ui.backdrop.onkeydown = (ev) => {
      if (ev.key === 'Escape') done(false);
    };
  });
}

async function press(
  button: HTMLButtonElement,
  ref: ButtonRef,
  confirm?: ConfirmView,
  url?: string,
): Promise<void> {
  if (url !== undefined && SAFE_URL.test(url)) window.open(url, '_blank', 'noopener,noreferrer');
  if (confirm && !(await confirmDialog(confirm))) return;
  button.disabled = true;
  const answer = await post('/api/click', { user: me, ref });
  button.disabled = false;
  if (!answer.ok) toast(`The click was not sent: ${answer.problem ?? 'unknown error'}`);
}

ui.asUser.addEventListener('change', () => {
  me = ui.asUser.value;
  localStorage.setItem(USER_KEY, me);
  render();
  // The Home tab is each person's own: the new person opens theirs.
  if (homeOpen) void post('/api/home', { user: me });
});

ui.composer.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = ui.box.value.trim();
  if (text === '') return;
  ui.composerError.textContent = '';
  void post('/api/command', { user: me, text }).then((answer) => {
    if (answer.ok) ui.box.value = '';
    else ui.composerError.textContent = answer.problem ?? 'not sent';
  });
});

ui.closeThread.addEventListener('click', () => {
  openThread = undefined;
  render();
});

const events = new EventSource('/events');
events.addEventListener('state', (ev) => {
  state = JSON.parse((ev as MessageEvent<string>).data) as PageState;
  ui.connection.textContent = '';
  render();
});
events.addEventListener('error', () => {
  ui.connection.textContent = 'Connection to the playground lost; reconnecting…';
});
