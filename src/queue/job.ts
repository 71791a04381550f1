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

/**
 * A picker's listing: the read-only command a runbook parameter names under `pick`, run by an agent on the
 * site's read-only queue (Slack never reaches SSH). It takes no lock and starts no run.
 */
export const PickJobSchema = z.strictObject({
  runbook: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, { error: 'runbook must be a runbook name' }),
  param: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'param must be a parameter name' }),
  site: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { error: 'site must be a site profile name' }),
});
export type PickJob = z.infer<typeof PickJobSchema>;

export const PICK_JOB_NAME = 'pick';

/** At most this many candidates are offered (Slack: 100 options in a static select). */
export const PICK_MAX_ITEMS = 100;

/** What a pick job returns; read back from Redis, so parsed again by whoever reads it. */
export const PickResultSchema = z.union([
  z.strictObject({
    items: z
      .array(z.strictObject({ value: z.string().min(1).max(256), label: z.string().max(150) }))
      .max(PICK_MAX_ITEMS),
    /** Lines left out: not a valid value of the parameter's type, or past PICK_MAX_ITEMS. */
    skipped: z.number().int().nonnegative(),
  }),
  z.strictObject({ error: z.string().min(1).max(500) }),
]);
export type PickResult = z.infer<typeof PickResultSchema>;

/**
 * A site's doctor checks on the jumphost and Redis (src/doctor), run by an agent on the site's read-only queue:
 * the Slack front never reaches SSH. It takes no lock, starts no run and changes nothing.
 */
export const DoctorJobSchema = z.strictObject({
  site: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { error: 'site must be a site profile name' }),
});
export type DoctorJob = z.infer<typeof DoctorJobSchema>;

export const DOCTOR_JOB_NAME = 'doctor';
