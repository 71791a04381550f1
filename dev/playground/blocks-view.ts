/**
 * Block Kit JSON as the page draws it (web/view-types.ts): header, section (text, fields, a button
 * accessory), context, divider, actions with buttons and their confirm dialogs. The JSON is whatever the bot
 * sent; nothing is trusted to have the right shape, and an unknown block shows as its JSON text.
 */
import { type MrkdwnContext, parseMrkdwn, parsePlain, plainLine } from './mrkdwn.js';
import type { BlockView, ConfirmView, ElementView, RichText } from './web/view-types.js';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** A text object (plain_text or mrkdwn) as rich text; anything else as empty. */
export function textObject(value: unknown, ctx: MrkdwnContext): RichText {
  if (!isObject(value)) return [];
  const text = str(value.text);
  return value.type === 'mrkdwn' ? parseMrkdwn(text, ctx) : parsePlain(text, value.emoji !== false);
}

/** A plain_text object's text (headers, button labels, dialog titles): entities decoded, emoji unless `emoji: false`. */
function plainText(value: unknown): string {
  return isObject(value) ? plainLine(str(value.text), value.emoji !== false) : '';
}

function style(value: unknown): 'primary' | 'danger' | undefined {
  return value === 'primary' || value === 'danger' ? value : undefined;
}

function confirmView(value: unknown, ctx: MrkdwnContext): ConfirmView | undefined {
  if (!isObject(value)) return undefined;
  const s = style(value.style);
  return {
    title: plainText(value.title) || 'Are you sure?',
    text: textObject(value.text, ctx),
    confirm: plainText(value.confirm) || 'Yes',
    deny: plainText(value.deny) || 'Cancel',
    ...(s !== undefined ? { style: s } : {}),
  };
}

function elementView(
  value: unknown,
  ref: { messageTs: string; blockIndex: number; elementIndex: number },
  ctx: MrkdwnContext,
): ElementView {
  if (!isObject(value) || value.type !== 'button') {
    return { kind: 'other', type: isObject(value) ? str(value.type) || 'unknown' : 'unknown' };
  }
  const s = style(value.style);
  const confirm = confirmView(value.confirm, ctx);
  const url = str(value.url);
  return {
    kind: 'button',
    text: plainText(value.text),
    ref,
    ...(s !== undefined ? { style: s } : {}),
    ...(confirm !== undefined ? { confirm } : {}),
    ...(/^https?:\/\//i.test(url) ? { url } : {}),
  };
}

export function blocksView(blocks: readonly unknown[], messageTs: string, ctx: MrkdwnContext): BlockView[] {
  return blocks.map((block, blockIndex): BlockView => {
    if (!isObject(block)) return { type: 'other', blockType: typeof block, json: JSON.stringify(block) };
    switch (block.type) {
      case 'header':
        return { type: 'header', text: plainText(block.text) };
      case 'divider':
        return { type: 'divider' };
      case 'section': {
        const fields = Array.isArray(block.fields) ? block.fields.map((f) => textObject(f, ctx)) : undefined;
        return {
          type: 'section',
          ...(block.text !== undefined ? { text: textObject(block.text, ctx) } : {}),
          ...(fields !== undefined ? { fields } : {}),
          ...(block.accessory !== undefined
            ? { accessory: elementView(block.accessory, { messageTs, blockIndex, elementIndex: -1 }, ctx) }
            : {}),
        };
      }
      case 'context': {
        const elements = Array.isArray(block.elements) ? block.elements : [];
        return {
          type: 'context',
          elements: elements.map((e) =>
            isObject(e) && e.type === 'image'
              ? parsePlain(`[image: ${str(e.alt_text)}]`, false)
              : textObject(e, ctx),
          ),
        };
      }
      case 'actions': {
        const elements = Array.isArray(block.elements) ? block.elements : [];
        return {
          type: 'actions',
          elements: elements.map((e, elementIndex) =>
            elementView(e, { messageTs, blockIndex, elementIndex }, ctx),
          ),
        };
      }
      default:
        return {
          type: 'other',
          blockType: str(block.type) || 'unknown',
          json: JSON.stringify(block, null, 2),
        };
    }
  });
}

/** The button a ButtonRef names in these blocks, or undefined. */
export function buttonAt(
  blocks: readonly unknown[],
  blockIndex: number,
  elementIndex: number,
): { block: Record<string, unknown>; button: Record<string, unknown> } | undefined {
  const block = blocks[blockIndex];
  if (!isObject(block)) return undefined;
  const element =
    elementIndex === -1
      ? block.accessory
      : Array.isArray(block.elements)
        ? (block.elements as unknown[])[elementIndex]
        : undefined;
  return isObject(element) && element.type === 'button' ? { block, button: element } : undefined;
}
