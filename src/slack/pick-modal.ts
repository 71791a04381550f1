/**
 * The picker dialog: `/capi failover` without an id lists the site's load balancers in ERROR (the runbook
 * parameter's `pick` listing, read by an agent) to choose from. Opened at once with "reading…" (the
 * trigger_id lasts 3 s), then updated with the list. Pure builders and parsers.
 */
import { z } from 'zod';
import type { PickResult } from '../service/run-service.js';
import { escapeSlack } from './blocks.js';

export const PICK_CALLBACK_ID = 'capi_pick';
export const PICK_BLOCK_ID = 'capi_pick';
export const PICK_ACTION_ID = 'value';

export const pickMetadataSchema = z.strictObject({
  v: z.literal(1),
  runbook: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/),
  site: z.string().min(1).max(63),
  channel: z.string().regex(/^[CDG][A-Z0-9]{2,30}$/),
});
export type PickMetadata = z.infer<typeof pickMetadataSchema>;

const plain = (text: string) => ({ type: 'plain_text', text, emoji: true }) as const;
const section = (text: string) => ({ type: 'section', text: { type: 'mrkdwn', text } });

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function base(meta: PickMetadata): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: PICK_CALLBACK_ID,
    // Slack: at most 24 characters.
    title: plain(clip(`/capi ${meta.runbook}`, 24)),
    close: plain('Cancel'),
    private_metadata: JSON.stringify(meta),
  };
}

/** What the dialog shows while the agent reads the list. */
export function pickLoadingView(meta: PickMetadata, title: string): Record<string, unknown> {
  return {
    ...base(meta),
    blocks: [
      section(
        `:hourglass_flowing_sand: Reading ${escapeSlack(title.toLowerCase())} on site *${escapeSlack(meta.site)}*…`,
      ),
    ],
  };
}

/** The list to choose from, or why there is none. */
export function pickListView(meta: PickMetadata, title: string, result: PickResult): Record<string, unknown> {
  if ('error' in result) {
    return {
      ...base(meta),
      blocks: [
        section(`:warning: ${escapeSlack(result.error)}`),
        section(`Type the argument instead: \`/capi ${meta.runbook} …\``),
      ],
    };
  }
  // Slack: option text at most 75 characters, value at most 150.
  const options = result.items
    .filter((i) => i.value.length <= 150)
    .map((i) => ({
      text: plain(clip(i.label === '' ? i.value : `${i.label} (${i.value})`, 75)),
      value: i.value,
    }));
  if (options.length === 0) {
    return {
      ...base(meta),
      blocks: [
        section(
          `:white_check_mark: No ${escapeSlack(title.toLowerCase())} on site *${escapeSlack(meta.site)}*: nothing to pick.`,
        ),
      ],
    };
  }
  return {
    ...base(meta),
    submit: plain('Start'),
    blocks: [
      {
        type: 'input',
        block_id: PICK_BLOCK_ID,
        label: plain(clip(`${title} on ${meta.site}`, 200)),
        element: {
          type: 'static_select',
          action_id: PICK_ACTION_ID,
          placeholder: plain('Choose one'),
          options,
        },
      },
      {
        type: 'context',
        elements: [
          {
            type: 'mrkdwn',
            text: `Starts \`/capi ${meta.runbook}\` with your choice, exactly as if you had typed it.${
              result.skipped > 0
                ? ` ${result.skipped} line(s) of the listing were not valid values and are not offered.`
                : ''
            }`,
          },
        ],
      },
    ],
  };
}

export const pickSubmissionSchema = z.object({
  user: z.object({ id: z.string().min(1) }),
  view: z.object({
    callback_id: z.literal(PICK_CALLBACK_ID),
    private_metadata: z.string().max(3000),
    state: z.object({
      values: z.object({
        [PICK_BLOCK_ID]: z.object({
          [PICK_ACTION_ID]: z.looseObject({
            // One word: it becomes the command's one argument, checked by the runbook's type as if typed.
            selected_option: z.looseObject({ value: z.string().regex(/^\S{1,150}$/) }),
          }),
        }),
      }),
    }),
  }),
});
