import { resolveJumphost } from '../config/jumphost.js';
import type { SiteProfile } from '../config/site.js';
import { jumphostChecks } from '../doctor/jumphost.js';
import { redisChecks } from '../doctor/redis.js';
import type { DoctorResult } from '../doctor/report.js';
import { asCodedError } from '../errors.js';
import type { DoctorJob } from '../queue/job.js';
import type { RedisClient } from '../redis/connection.js';
import type { RunbookSet } from '../runbook/load.js';
import type { JumphostTarget } from '../ssh/types.js';

export interface DoctorDeps {
  readonly sites: ReadonlyMap<string, SiteProfile>;
  readonly runbooks: RunbookSet;
  readonly jumphostEnv: Partial<JumphostTarget>;
  /** The agent's own Redis: the one the deployment's runs live in. */
  readonly redis: RedisClient;
}

/** A doctor job: the site's jumphost checks and the Redis checks, as lines for the front to show. */
export async function runDoctorJob(deps: DoctorDeps, job: DoctorJob): Promise<DoctorResult> {
  const site = deps.sites.get(job.site);
  if (!site) return { error: `this agent has no site profile named ${job.site}` };
  let target: JumphostTarget;
  try {
    target = resolveJumphost(site, deps.jumphostEnv);
  } catch (err) {
    return { error: asCodedError(err).message.slice(0, 500) };
  }
  const jumphost = await jumphostChecks({ site, target, runbooks: deps.runbooks });
  return { lines: [...jumphost, ...(await redisChecks(deps.redis))] };
}
