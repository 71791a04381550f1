import type { App } from '@slack/bolt';
import type { WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import type { SiteProfile } from '../../../config/site.js';
import { validationMessage } from '../../../validation.js';
import {
  PICK_ACTION_ID,
  PICK_BLOCK_ID,
  PICK_CALLBACK_ID,
  pickMetadataSchema,
  pickSubmissionSchema,
} from '../../pick-modal.js';

export interface PickSubmitDeps {
  readonly siteFor: (channelId: string) => { site: SiteProfile } | { problem: string };
  readonly logger: Logger;
  /** The /capi path itself: the choice runs as `/capi <runbook> <value>` typed by the submitter. */
  readonly runCapi: (
    client: WebClient,
    userId: string,
    channelId: string,
    text: string,
    triggerId: string | undefined,
  ) => Promise<void>;
}

const refuse = (text: string) => ({ response_action: 'errors' as const, errors: { [PICK_BLOCK_ID]: text } });

/**
 * The picker's choice: checked (one word, the dialog's own metadata, the channel still on that site), the
 * dialog closes, and the run starts exactly as the typed command would: the operator check, the argument's
 * type check and the site lock all happen there, and their refusals reach the submitter the same way.
 */
export function registerPickSubmission(app: App, deps: PickSubmitDeps): void {
  app.view(PICK_CALLBACK_ID, async ({ ack, body, client }) => {
    const parsed = pickSubmissionSchema.safeParse(body);
    if (!parsed.success) {
      deps.logger.warn({ problem: validationMessage(parsed.error) }, 'malformed picker submission');
      await ack(refuse('Choose one from the list.'));
      return;
    }
    let metadata: unknown;
    try {
      metadata = JSON.parse(parsed.data.view.private_metadata);
    } catch {
      metadata = undefined;
    }
    const meta = pickMetadataSchema.safeParse(metadata);
    if (!meta.success) {
      await ack(refuse('This dialog does not name a runbook; nothing was started.'));
      return;
    }
    const where = deps.siteFor(meta.data.channel);
    if ('problem' in where || where.site.name !== meta.data.site) {
      await ack(refuse('The channel is no longer linked to this site; nothing was started.'));
      return;
    }
    await ack();
    const value = parsed.data.view.state.values[PICK_BLOCK_ID][PICK_ACTION_ID];
    await deps.runCapi(
      client,
      parsed.data.user.id,
      meta.data.channel,
      `${meta.data.runbook} ${value.selected_option.value}`,
      undefined,
    );
  });
}
