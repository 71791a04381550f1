import { randomBytes } from 'node:crypto';

/**
 * What a run id may be: run ids end up inside Redis keys (`p:run:<id>:timeline`) and BullMQ job ids, so a
 * `:` could make one run's record collide with another run's timeline key, and BullMQ refuses `:` in job ids.
 */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

/** Short enough to type in `/capi cancel`, unique enough for BullMQ job ids (never all digits, no ':'). */
export function newRunId(): string {
  return `r${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}
