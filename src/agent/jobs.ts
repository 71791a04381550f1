/**
 * What a worker does with a job it takes: a doctor check, a pick (the choices a runbook parameter offers) or a
 * run. A job whose data does not parse is failed for good (UnrecoverableError): retrying it cannot help.
 */
import { type Job, UnrecoverableError } from 'bullmq';
import type { DoctorResult } from '../doctor/report.js';
import type { RunOutcome } from '../engine/outcome.js';
import {
  DOCTOR_JOB_NAME,
  DoctorJobSchema,
  PICK_JOB_NAME,
  PickJobSchema,
  type PickResult,
  RunJobSchema,
} from '../queue/job.js';
import { validationMessage } from '../validation.js';
import { runDoctorJob } from './doctor.js';
import { runPick } from './pick.js';
import { type RunJobDeps, runJob } from './run-job.js';

export type JobResult = RunOutcome | PickResult | DoctorResult | undefined;

/** The BullMQ processor of every queue this agent serves. */
export function jobProcessor(deps: RunJobDeps): (job: Job, token?: string) => Promise<JobResult> {
  const { opts } = deps;
  const { logger } = opts;
  return async (job, token) => {
    if (job.name === DOCTOR_JOB_NAME) {
      const doctor = DoctorJobSchema.safeParse(job.data);
      if (!doctor.success)
        throw new UnrecoverableError(`job ${job.id} is not a doctor job: ${validationMessage(doctor.error)}`);
      return runDoctorJob(
        {
          sites: opts.sites,
          runbooks: opts.runbooks,
          jumphostEnv: opts.jumphostEnv,
          redis: deps.stores.redis,
        },
        doctor.data,
      );
    }
    if (job.name === PICK_JOB_NAME) {
      const pick = PickJobSchema.safeParse(job.data);
      if (!pick.success)
        throw new UnrecoverableError(`job ${job.id} is not a pick: ${validationMessage(pick.error)}`);
      return runPick(
        {
          sites: opts.sites,
          runbooks: opts.runbooks,
          jumphostEnv: opts.jumphostEnv,
          logger,
          ...(opts.metrics ? { metrics: opts.metrics } : {}),
        },
        pick.data,
        String(job.id),
      );
    }
    const parsed = RunJobSchema.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(`job ${job.id} is not a run: ${validationMessage(parsed.error)}`);
    }
    const data = parsed.data;
    const log = logger.child({ runId: data.runId, runbook: data.runbook });
    return runJob(deps, job, data, token, log);
  };
}
