/**
 * The reason a person gives with a decision (Deny's dialog, "Approve with reason"): untrusted text typed in
 * Slack or a terminal. Checked once, at the door (RunService), so every front stores the same shape: trimmed,
 * at most REASON_MAX_CHARS, no control characters but line breaks and tabs. Shown escaped wherever it is shown.
 */
import { z } from 'zod';

export const REASON_MAX_CHARS = 500;

export const decisionReasonSchema = z
  .string()
  .trim()
  .max(REASON_MAX_CHARS, { error: `a reason is at most ${REASON_MAX_CHARS} characters: shorten it` })
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to refuse control characters.
  .refine((s) => !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(s), {
    error: 'a reason may hold text and line breaks only (no control characters)',
  });
