import { z } from 'zod';

/**
 * A stored hash field that holds JSON text: parses it, or fails with "is not JSON".
 * Pipe the result into the schema of what the field holds, e.g. `jsonText.pipe(approvalRequestSchema)`.
 */
export const jsonText = z.string().transform((text, ctx) => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not JSON' });
    return z.NEVER;
  }
});
