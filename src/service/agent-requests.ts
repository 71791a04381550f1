import { Job, type Queue } from 'bullmq';
import { type DoctorResult, DoctorResultSchema } from '../doctor/report.js';
import {
  DOCTOR_JOB_NAME,
  DoctorJobSchema,
  PICK_JOB_NAME,
  PickJobSchema,
  type PickResult,
  PickResultSchema,
} from '../queue/job.js';
import { readOnlyQueue } from '../queue/queues.js';
import type { ServiceParts } from './parts.js';

const NO_AGENT = 'no agent answered in time (is an agent serving this site running?)';

/**
 * The values a runbook offers to pick from for its parameter (its `pick` listing), read on the site's
 * jumphost by an agent through the site's read-only queue: a front never reaches SSH. Resolves with the
 * candidates, or `{ error }` when the listing failed or no agent answered within the listing's timeout.
 */
export async function pick(
  parts: ServiceParts,
  runbookName: string,
  site: string,
  opts: { readonly pollMs?: number } = {},
): Promise<PickResult> {
  const runbook = parts.opts.runbooks.runbooks.get(runbookName);
  const param = runbook?.params.find((p) => p.pick !== undefined);
  if (!runbook || !param?.pick) return { error: `${runbookName} offers nothing to pick from` };
  const data = PickJobSchema.parse({ runbook: runbook.name, param: param.name, site });
  const queue = parts.queue(readOnlyQueue(parts.site(site).queue));
  const job = await queue.add(PICK_JOB_NAME, data, {
    attempts: 1,
    removeOnComplete: { age: 3600, count: 100 },
    removeOnFail: { age: 3600, count: 100 },
  });
  // The agent's own timeout bounds the listing.
  const done = await jobResult(queue, job, param.pick.timeoutMs + 15_000, opts.pollMs);
  if ('failed' in done) return { error: `the listing failed: ${done.failed}` };
  if ('timedOut' in done) return { error: NO_AGENT };
  const parsed = PickResultSchema.safeParse(done.value);
  return parsed.success ? parsed.data : { error: 'the listing returned something unreadable' };
}

/**
 * A site's doctor checks on its jumphost and Redis, run by an agent through the site's read-only queue (a
 * front never reaches SSH): the lines, or `{ error }` when no agent answered in time.
 */
export async function doctor(
  parts: ServiceParts,
  site: string,
  opts: { readonly pollMs?: number } = {},
): Promise<DoctorResult> {
  const data = DoctorJobSchema.parse({ site });
  const queue = parts.queue(readOnlyQueue(parts.site(site).queue));
  const job = await queue.add(DOCTOR_JOB_NAME, data, {
    attempts: 1,
    removeOnComplete: { age: 3600, count: 100 },
    removeOnFail: { age: 3600, count: 100 },
  });
  const done = await jobResult(queue, job, parts.opts.doctorTimeoutMs ?? 5 * 60_000, opts.pollMs);
  if ('failed' in done) return { error: `the checks failed: ${done.failed}`.slice(0, 500) };
  if ('timedOut' in done) return { error: NO_AGENT };
  const parsed = DoctorResultSchema.safeParse(done.value);
  return parsed.success ? parsed.data : { error: 'the checks returned something unreadable' };
}

/** Waits on Redis (the job's state), never on Slack: the job's return value, or why there is none. */
async function jobResult(
  queue: Queue,
  job: Job,
  timeoutMs: number,
  pollMs = 200,
): Promise<{ value: unknown } | { failed: string } | { timedOut: true }> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') {
      const done = await Job.fromId(queue, job.id as string);
      if (state === 'failed' || !done) return { failed: done?.failedReason ?? 'no result' };
      return { value: done.returnvalue };
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  return { timedOut: true };
}
