/**
 * Slack's Block Kit limits the message builders stay within. The validator that checks whole messages
 * against them (for the builders' tests and the fake Slack) is development code: dev/slack/block-kit.ts.
 *
 * Lengths are counted in UTF-16 code units (JavaScript's `length`). Slack counts characters, which is never
 * more, so a message that passes here passes there.
 */

export const BLOCK_KIT_LIMITS = {
  blocks: 50,
  sectionText: 3000,
  sectionFields: 10,
  sectionFieldText: 2000,
  headerText: 150,
  contextElements: 10,
  actionsElements: 25,
  buttonText: 75,
  buttonValue: 2000,
  buttonUrl: 3000,
  actionId: 255,
  /** A button's confirm dialog: title, text (plain or mrkdwn), and its two buttons' labels. */
  confirmTitle: 100,
  confirmText: 300,
  confirmButton: 30,
  blockId: 255,
  /** Past this Slack answers msg_too_long. */
  messageText: 40_000,
  /** Every `text` inside the blocks together; past this Slack answers msg_blocks_too_long. */
  blocksText: 12_000,
} as const;

/** Every string `text` property at any depth: what Slack measures for msg_blocks_too_long. */
export function textLength(value: unknown): number {
  if (Array.isArray(value)) return value.reduce<number>((sum, v) => sum + textLength(v), 0);
  if (typeof value !== 'object' || value === null) return 0;
  let sum = 0;
  for (const [key, v] of Object.entries(value)) {
    if (key === 'text' && typeof v === 'string') sum += v.length;
    else sum += textLength(v);
  }
  return sum;
}
