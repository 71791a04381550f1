/**
 * Slack's limits on view objects (modals and the App Home tab), for the fake's views.open, views.update and
 * views.publish: the same block checks as messages (block-kit.ts) plus what a view adds (docs.slack.dev,
 * "View object" and the input elements' references). Strict: what Slack would refuse is refused here.
 */
import { checkBlock, checkText, type Report } from './block-kit.js';

export const VIEW_LIMITS = {
  /** Blocks in a modal or a Home tab. */
  blocks: 100,
  /** title, submit and close of a modal (plain_text). */
  modalText: 24,
  privateMetadata: 3000,
  callbackId: 255,
  externalId: 255,
  /**
   * The whole view as JSON. Slack answers `view_too_large` past a size it does not document exactly; 250 KB is
   * this fake's assumption, far above what the product sends (it stays within the block counts first).
   */
  jsonBytes: 250_000,
  inputHint: 2000,
  placeholder: 150,
  textInputLength: 3000,
  selectOptions: 100,
  optionText: 75,
  optionValue: 150,
} as const;

export type ViewKind = 'modal' | 'home';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every way `view` breaks Slack's rules for a view of `kind`, as `/view/...: what` strings; [] when none. */
export function findViewViolations(view: unknown, kind: ViewKind): string[] {
  const out: string[] = [];
  const invalid: Report = (path, what) => out.push(`${path}: ${what}`);
  if (!isObject(view)) return ['/view: must be a view object'];
  const size = Buffer.byteLength(JSON.stringify(view), 'utf8');
  if (size > VIEW_LIMITS.jsonBytes) invalid('/view', `is ${size} bytes, at most ${VIEW_LIMITS.jsonBytes}`);
  if (view.type !== kind) invalid('/view/type', `must be "${kind}" here (got ${JSON.stringify(view.type)})`);
  const modalText = { max: VIEW_LIMITS.modalText, plainOnly: true };
  if (kind === 'modal') {
    checkText(view.title, '/view/title', modalText, invalid);
    if (view.close !== undefined) checkText(view.close, '/view/close', modalText, invalid);
    if (view.submit !== undefined) checkText(view.submit, '/view/submit', modalText, invalid);
  } else {
    for (const key of ['title', 'close', 'submit']) {
      if (view[key] !== undefined) invalid(`/view/${key}`, 'a Home tab has no title, close or submit');
    }
  }
  for (const [key, max] of [
    ['private_metadata', VIEW_LIMITS.privateMetadata],
    ['callback_id', VIEW_LIMITS.callbackId],
    ['external_id', VIEW_LIMITS.externalId],
  ] as const) {
    const v = view[key];
    if (v === undefined) continue;
    if (typeof v !== 'string') invalid(`/view/${key}`, 'must be a string');
    else if (v.length > max) invalid(`/view/${key}`, `must be at most ${max} characters (got ${v.length})`);
  }
  const blocks = view.blocks;
  if (!Array.isArray(blocks)) {
    invalid('/view/blocks', 'must be an array');
    return out;
  }
  if (blocks.length > VIEW_LIMITS.blocks) {
    invalid('/view/blocks', `must hold at most ${VIEW_LIMITS.blocks} blocks (got ${blocks.length})`);
  }
  let inputs = 0;
  blocks.forEach((block, i) => {
    const path = `/view/blocks/${i}`;
    checkBlock(block, path, invalid);
    if (isObject(block) && block.type === 'input') {
      inputs += 1;
      if (kind === 'home') invalid(path, 'input blocks belong in modals, not in a Home tab');
      if (block.hint !== undefined)
        checkText(block.hint, `${path}/hint`, { max: VIEW_LIMITS.inputHint, plainOnly: true }, invalid);
      checkInputElement(block.element, `${path}/element`, invalid);
    }
  });
  // Slack refuses a modal with inputs and no submit button: nothing could send them.
  if (kind === 'modal' && inputs > 0 && view.submit === undefined) {
    invalid('/view/submit', 'is required when the view has input blocks');
  }
  return out;
}

function checkInputElement(element: unknown, path: string, invalid: Report): void {
  if (!isObject(element)) return; // checkBlock already said so
  if (typeof element.action_id !== 'string' || element.action_id === '') {
    invalid(`${path}/action_id`, 'must be a non-empty string');
  }
  if (element.placeholder !== undefined) {
    checkText(
      element.placeholder,
      `${path}/placeholder`,
      { max: VIEW_LIMITS.placeholder, plainOnly: true },
      invalid,
    );
  }
  switch (element.type) {
    case 'plain_text_input':
      for (const key of ['min_length', 'max_length'] as const) {
        const v = element[key];
        if (v === undefined) continue;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > VIEW_LIMITS.textInputLength) {
          invalid(`${path}/${key}`, `must be a whole number 0-${VIEW_LIMITS.textInputLength}`);
        }
      }
      return;
    case 'static_select': {
      const options = element.options;
      if (!Array.isArray(options) || options.length === 0 || options.length > VIEW_LIMITS.selectOptions) {
        invalid(`${path}/options`, `must hold 1-${VIEW_LIMITS.selectOptions} options`);
        return;
      }
      options.forEach((o, i) => {
        const at = `${path}/options/${i}`;
        if (!isObject(o)) {
          invalid(at, 'must be an option object');
          return;
        }
        checkText(o.text, `${at}/text`, { max: VIEW_LIMITS.optionText, plainOnly: true }, invalid);
        if (typeof o.value !== 'string' || o.value === '' || o.value.length > VIEW_LIMITS.optionValue) {
          invalid(`${at}/value`, `must be 1-${VIEW_LIMITS.optionValue} characters`);
        }
      });
      return;
    }
    default:
      invalid(
        `${path}/type`,
        `the fake knows plain_text_input and static_select (got ${String(element.type)})`,
      );
  }
}
