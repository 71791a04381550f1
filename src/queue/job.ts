import { z } from 'zod';
import { RUN_ID_PATTERN } from '../run-id.js';

/**
 * The payload of a run job. Validated by the producer before it is written and again by the agent
 * when it is read: anything that crossed Redis is untrusted. No secrets: BullMQ stores it in plain text.
 */
export const RunJobSchema = z.strictObject({
  runId: z.string().regex(RUN_ID_PATTERN, { error: 'runId must be letters, digits, "_" and "-"' }),
  runbook: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, { error: 'runbook must be a runbook name' }),
  args: z.array(z.string().max(256)).max(8),
  site: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { error: 'site must be a site profile name' }),
  requestedBy: z.string().min(1).max(128),
  channel: z.string().max(64).optional(),
});
export type RunJob = z.infer<typeof RunJobSchema>;

export const RUN_JOB_NAME = 'run';
