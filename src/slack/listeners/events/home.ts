import type { App } from '@slack/bolt';
import type { Logger } from 'pino';
import { z } from 'zod';
import { validationMessage } from '../../../validation.js';
import type { HomeTab } from '../../home.js';

const HomeOpened = z.object({ user: z.string().min(1), tab: z.string() });

/** app_home_opened on the Home tab publishes it for that person (Bolt acks events itself). */
export function registerHomeOpened(app: App, home: HomeTab, logger: Logger): void {
  app.event('app_home_opened', async ({ event }) => {
    const parsed = HomeOpened.safeParse(event);
    if (!parsed.success) {
      logger.warn({ problem: validationMessage(parsed.error) }, 'malformed app_home_opened');
      return;
    }
    // The Messages tab opens this event too; only the Home tab shows the runs.
    if (parsed.data.tab !== 'home') return;
    await home.opened(parsed.data.user);
  });
}
