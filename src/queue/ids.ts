import { randomBytes } from 'node:crypto';

/** Short enough to type in `/capi cancel`, unique enough for BullMQ job ids (never all digits, no ':'). */
export function newRunId(): string {
  return `r${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}
