/**
 * Slack's Block Kit limits as one validator, shared by the message builders' tests and the fake Slack Web API,
 * so the limits the builders are tested against are exactly the ones the fake enforces. The limits
 * themselves are the product's (src/slack/limits.ts): the builders clip to them.
 */
import { BLOCK_KIT_LIMITS, textLength } from '../../src/slack/limits.js';

export const BLOCK_TYPES: readonly string[] = [
  'section',
  'header',
  'context',
  'actions',
  'divider',
  'rich_text',
  'image',
  'input',
];

export type BlockKitError = 'invalid_blocks' | 'msg_too_long' | 'msg_blocks_too_long';

export interface BlockKitViolation {
  /** The error Slack answers with. */
  readonly error: BlockKitError;
  /** What broke, starting with a JSON-pointer-like path (`/blocks/3/text/text`). */
  readonly detail: string;
}

/** Every way `message` breaks the limits, as readable strings: `[]` means Slack accepts it. */
export function checkBlockKit(message: { readonly text?: unknown; readonly blocks?: unknown }): string[] {
  return findBlockKitViolations(message).map((v) => `${v.error}: ${v.detail}`);
}

/**
 * The answer Slack would give for `message`, or undefined when it is within the limits. Block errors come
 * first: Slack validates the structure before it measures the whole.
 */
export function blockKitError(message: {
  readonly text?: unknown;
  readonly blocks?: unknown;
}): { error: BlockKitError; errors: string[] } | undefined {
  const violations = findBlockKitViolations(message);
  for (const error of ['invalid_blocks', 'msg_blocks_too_long', 'msg_too_long'] as const) {
    const hits = violations.filter((v) => v.error === error);
    if (hits.length > 0) return { error, errors: hits.map((v) => v.detail) };
  }
  return undefined;
}

export function findBlockKitViolations(message: {
  readonly text?: unknown;
  readonly blocks?: unknown;
}): BlockKitViolation[] {
  const out: BlockKitViolation[] = [];
  const invalid = (path: string, what: string) =>
    out.push({ error: 'invalid_blocks', detail: `${path}: ${what}` });

  if (typeof message.text === 'string' && message.text.length > BLOCK_KIT_LIMITS.messageText) {
    out.push({
      error: 'msg_too_long',
      detail: `/text: must be at most ${BLOCK_KIT_LIMITS.messageText} characters (got ${message.text.length})`,
    });
  }
  const blocks = message.blocks;
  if (blocks === undefined) return out;
  if (!Array.isArray(blocks)) {
    invalid('/blocks', 'must be an array');
    return out;
  }
  if (blocks.length > BLOCK_KIT_LIMITS.blocks) {
    invalid('/blocks', `must hold at most ${BLOCK_KIT_LIMITS.blocks} blocks (got ${blocks.length})`);
  }
  blocks.forEach((block, i) => {
    checkBlock(block, `/blocks/${i}`, invalid);
  });
  const total = textLength(blocks);
  if (total > BLOCK_KIT_LIMITS.blocksText) {
    out.push({
      error: 'msg_blocks_too_long',
      detail: `/blocks: the text in all blocks must be at most ${BLOCK_KIT_LIMITS.blocksText} characters (got ${total})`,
    });
  }
  return out;
}

export type Report = (path: string, what: string) => void;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function checkBlock(block: unknown, path: string, invalid: Report): void {
  if (!isObject(block)) {
    invalid(path, 'must be an object');
    return;
  }
  const type = block.type;
  if (typeof type !== 'string' || !BLOCK_TYPES.includes(type)) {
    invalid(`${path}/type`, `unknown block type ${JSON.stringify(type)}`);
    return;
  }
  if (block.block_id !== undefined)
    checkId(block.block_id, `${path}/block_id`, BLOCK_KIT_LIMITS.blockId, invalid);

  switch (type) {
    case 'section': {
      if (block.text === undefined && block.fields === undefined) {
        invalid(path, 'a section needs text or fields');
      }
      if (block.text !== undefined) {
        checkText(block.text, `${path}/text`, { max: BLOCK_KIT_LIMITS.sectionText }, invalid);
      }
      if (block.fields !== undefined) {
        if (!Array.isArray(block.fields)) {
          invalid(`${path}/fields`, 'must be an array');
        } else {
          if (block.fields.length > BLOCK_KIT_LIMITS.sectionFields) {
            invalid(
              `${path}/fields`,
              `must hold at most ${BLOCK_KIT_LIMITS.sectionFields} items (got ${block.fields.length})`,
            );
          }
          block.fields.forEach((f, i) => {
            checkText(f, `${path}/fields/${i}`, { max: BLOCK_KIT_LIMITS.sectionFieldText }, invalid);
          });
        }
      }
      if (block.accessory !== undefined) checkElement(block.accessory, `${path}/accessory`, invalid);
      return;
    }
    case 'header':
      checkText(block.text, `${path}/text`, { max: BLOCK_KIT_LIMITS.headerText, plainOnly: true }, invalid);
      return;
    case 'context': {
      const elements = block.elements;
      if (!Array.isArray(elements) || elements.length === 0) {
        invalid(`${path}/elements`, 'must be a non-empty array');
        return;
      }
      if (elements.length > BLOCK_KIT_LIMITS.contextElements) {
        invalid(
          `${path}/elements`,
          `must hold at most ${BLOCK_KIT_LIMITS.contextElements} items (got ${elements.length})`,
        );
      }
      elements.forEach((e, i) => {
        if (isObject(e) && e.type === 'image') return;
        checkText(e, `${path}/elements/${i}`, { max: BLOCK_KIT_LIMITS.sectionText }, invalid);
      });
      return;
    }
    case 'actions': {
      const elements = block.elements;
      if (!Array.isArray(elements) || elements.length === 0) {
        invalid(`${path}/elements`, 'must be a non-empty array');
        return;
      }
      if (elements.length > BLOCK_KIT_LIMITS.actionsElements) {
        invalid(
          `${path}/elements`,
          `must hold at most ${BLOCK_KIT_LIMITS.actionsElements} items (got ${elements.length})`,
        );
      }
      elements.forEach((e, i) => {
        checkElement(e, `${path}/elements/${i}`, invalid);
      });
      return;
    }
    case 'image':
      if (typeof block.image_url !== 'string' || block.image_url === '') {
        invalid(`${path}/image_url`, 'must be a non-empty string');
      }
      if (typeof block.alt_text !== 'string') invalid(`${path}/alt_text`, 'must be a string');
      return;
    case 'input':
      checkText(block.label, `${path}/label`, { max: 2000, plainOnly: true }, invalid);
      if (!isObject(block.element)) invalid(`${path}/element`, 'must be an object');
      return;
    case 'rich_text':
      if (!Array.isArray(block.elements)) invalid(`${path}/elements`, 'must be an array');
      return;
    default:
      // divider: nothing to check.
      return;
  }
}

function checkElement(element: unknown, path: string, invalid: Report): void {
  if (!isObject(element)) {
    invalid(path, 'must be an object');
    return;
  }
  if (typeof element.type !== 'string') {
    invalid(`${path}/type`, 'must be a string');
    return;
  }
  if (element.action_id !== undefined) {
    checkId(element.action_id, `${path}/action_id`, BLOCK_KIT_LIMITS.actionId, invalid);
  }
  if (element.type !== 'button') return;
  checkText(element.text, `${path}/text`, { max: BLOCK_KIT_LIMITS.buttonText, plainOnly: true }, invalid);
  if (element.value !== undefined) {
    if (typeof element.value !== 'string') invalid(`${path}/value`, 'must be a string');
    else if (element.value.length > BLOCK_KIT_LIMITS.buttonValue) {
      invalid(
        `${path}/value`,
        `must be at most ${BLOCK_KIT_LIMITS.buttonValue} characters (got ${element.value.length})`,
      );
    }
  }
  if (element.url !== undefined) {
    if (typeof element.url !== 'string') invalid(`${path}/url`, 'must be a string');
    else if (element.url.length > BLOCK_KIT_LIMITS.buttonUrl) {
      invalid(
        `${path}/url`,
        `must be at most ${BLOCK_KIT_LIMITS.buttonUrl} characters (got ${element.url.length})`,
      );
    }
  }
  checkStyle(element.style, `${path}/style`, invalid);
  if (element.confirm !== undefined) checkConfirm(element.confirm, `${path}/confirm`, invalid);
}

function checkStyle(style: unknown, path: string, invalid: Report): void {
  if (style !== undefined && style !== 'primary' && style !== 'danger') {
    invalid(path, `must be "primary" or "danger" (got ${JSON.stringify(style)})`);
  }
}

/** A confirmation dialog object: Slack shows it before it sends the click. */
function checkConfirm(confirm: unknown, path: string, invalid: Report): void {
  if (!isObject(confirm)) {
    invalid(path, 'must be a confirmation dialog object');
    return;
  }
  const plainOnly = { max: BLOCK_KIT_LIMITS.confirmButton, plainOnly: true };
  checkText(confirm.title, `${path}/title`, { max: BLOCK_KIT_LIMITS.confirmTitle, plainOnly: true }, invalid);
  checkText(confirm.text, `${path}/text`, { max: BLOCK_KIT_LIMITS.confirmText }, invalid);
  checkText(confirm.confirm, `${path}/confirm`, plainOnly, invalid);
  checkText(confirm.deny, `${path}/deny`, plainOnly, invalid);
  checkStyle(confirm.style, `${path}/style`, invalid);
}

function checkId(id: unknown, path: string, max: number, invalid: Report): void {
  if (typeof id !== 'string') invalid(path, 'must be a string');
  else if (id.length === 0 || id.length > max)
    invalid(path, `must be 1-${max} characters (got ${id.length})`);
}

export function checkText(
  obj: unknown,
  path: string,
  opts: { readonly max: number; readonly plainOnly?: boolean },
  invalid: Report,
): void {
  if (!isObject(obj)) {
    invalid(path, 'must be a text object with type and text');
    return;
  }
  if (obj.type !== 'plain_text' && (opts.plainOnly === true || obj.type !== 'mrkdwn')) {
    invalid(
      `${path}/type`,
      `must be ${opts.plainOnly === true ? '"plain_text"' : '"mrkdwn" or "plain_text"'} (got ${JSON.stringify(obj.type)})`,
    );
  }
  if (typeof obj.text !== 'string') {
    invalid(`${path}/text`, 'must be a string');
    return;
  }
  if (obj.text.length === 0) invalid(`${path}/text`, 'must not be empty');
  else if (obj.text.length > opts.max) {
    invalid(`${path}/text`, `must be at most ${opts.max} characters (got ${obj.text.length})`);
  }
}
