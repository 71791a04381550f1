import { createHash } from 'node:crypto';
import { CapiError, ErrorCode } from '../errors.js';
import { RUN_JOB_NAME, type RunJob, RunJobSchema } from '../queue/job.js';
import { readOnlyQueue } from '../queue/queues.js';
import { newRunId } from '../run-id.js';
import { copyOfRunbook } from '../runbook/copy.js';
import type { Runbook } from '../runbook/model.js';
import { validateParams } from '../runbook/params.js';
import { heldSiteMessage, targetKey } from '../runs/lock.js';
import { type Claim, inWords, type LimitHit } from '../runs/readonly-runs.js';
import { isFinalStatus, type RunRecord } from '../runs/registry.js';
import type { ServiceParts } from './parts.js';
import { holds } from './site-holds.js';
import {
  type AutomatedAsk,
  DEFAULT_JOB_RETENTION,
  lockTtlMs,
  type RunRequest,
  type RunStart,
} from './types.js';

/** A claim this young whose run record is not written yet is a run being created by another front. */
const CLAIM_GRACE_MS = 10_000;

/**
 * Validates everything a human typed before anything is stored. A run that can change the cloud takes the
 * site's lock (one run per target); a read-only one joins the identical run already queued or running, or
 * starts within the per-person and per-site limits. Then the run is recorded and enqueued. Refused requests
 * leave nothing behind. `automation`: an alert asked, not a person (no person's limit applies).
 */
export async function start(
  parts: ServiceParts,
  request: RunRequest,
  automation?: AutomatedAsk,
): Promise<RunStart> {
  const runbook = parts.opts.runbooks.runbooks.get(request.runbook);
  if (!runbook) {
    throw new CapiError(
      ErrorCode.RunbookNotFound,
      `no runbook named '${request.runbook}'; available: ${[...parts.opts.runbooks.runbooks.keys()].join(', ')}`,
    );
  }
  const params = validateParams(runbook, request.args);
  parts.site(request.site);
  if (runbook.exclusive) return { kind: 'started', record: await enqueue(parts, runbook, params, request) };
  return startOrJoin(parts, runbook, params, request, automation);
}

/**
 * A read-only run: joins the identical one queued or running; else, within the limits, claims the ask (so a
 * second front asking at the same moment joins this one) and starts it.
 */
async function startOrJoin(
  parts: ServiceParts,
  runbook: Runbook,
  params: Readonly<Record<string, string>>,
  request: RunRequest,
  automation: AutomatedAsk | undefined,
): Promise<RunStart> {
  const key = parts.readOnly.sameKey(request.site, runbook.name, request.args);
  const ttlMs = lockTtlMs(parts.opts.approvalTimeoutMs);
  for (let tries = 0; tries < 5; tries++) {
    const current = await parts.readOnly.claimed(key);
    const going = current === undefined ? undefined : await runOfClaim(parts, key, current);
    if (going === 'changed') continue;
    if (going !== undefined) return join(parts, going, request, automation, ttlMs);
    const runId = newRunId();
    // Claimed before the limits are counted: whoever asks meanwhile joins this run, and no limit refuses them.
    const claim = await parts.readOnly.claim(key, current, runId, ttlMs);
    if (claim === undefined) continue; // another front claimed it since: join that run on the next turn
    const person = automation === undefined ? request.requestedBy : undefined;
    const hit = await parts.readOnly.take(person, request.site, runId);
    if (hit !== undefined) {
      await parts.readOnly.unclaim(key, claim);
      throw limitRefusal(parts, hit, runbook.name, request);
    }
    try {
      return { kind: 'started', record: await enqueue(parts, runbook, params, request, runId) };
    } catch (err) {
      await parts.readOnly.unclaim(key, claim);
      await parts.readOnly.untake(person, request.site, runId);
      throw err;
    }
  }
  throw new CapiError(
    ErrorCode.TargetBusy,
    `the same ${runbook.name} kept being started meanwhile; ask again`,
  );
}

/**
 * The run a claim names while it is queued or running; undefined when it ended or never started; `changed`
 * when the claim was given up or taken over meanwhile (look again).
 */
async function runOfClaim(
  parts: ServiceParts,
  key: string,
  claim: Claim,
): Promise<RunRecord | 'changed' | undefined> {
  // A claim just made is a run another front is creating now: its record follows within moments.
  const deadline = Math.min(claim.at + CLAIM_GRACE_MS, Date.now() + CLAIM_GRACE_MS);
  for (;;) {
    const record = await parts.registry.get(claim.runId);
    if (record !== null) return isFinalStatus(record.status) ? undefined : record;
    if (Date.now() >= deadline) return undefined;
    if ((await parts.readOnly.claimed(key))?.raw !== claim.raw) return 'changed';
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Joins `record`: audited; the run's thread (its timeline) shows each asker once. */
async function join(
  parts: ServiceParts,
  record: RunRecord,
  request: RunRequest,
  automation: AutomatedAsk | undefined,
  ttlMs: number,
): Promise<RunStart> {
  const who = JSON.stringify([request.requestedBy, request.via ?? '', automation?.note ?? '']);
  const firstJoin = await parts.readOnly.joined(record.runId, who, ttlMs);
  if (firstJoin) {
    await parts.timeline.append(record.runId, {
      type: 'run.joined',
      by: request.requestedBy,
      ...(request.via !== undefined ? { via: request.via } : {}),
      ...(automation !== undefined ? { note: automation.note } : {}),
    });
  }
  parts.audit.record({
    event: 'run.joined',
    runId: record.runId,
    runbook: record.runbook,
    site: record.site,
    requestedBy: request.requestedBy,
    ...(request.via !== undefined ? { via: request.via } : {}),
    ...(automation !== undefined ? { note: automation.note } : {}),
  });
  return { kind: 'joined', record, firstJoin };
}

/** The refusal of a read-only run past a limit: which limit, and when to ask again. */
function limitRefusal(parts: ServiceParts, hit: LimitHit, runbook: string, request: RunRequest): CapiError {
  const window = inWords(hit.windowMs);
  const why =
    hit.limit === 'person'
      ? `you started ${hit.count} read-only runs in the last ${window} (the CAPI_READONLY_PER_PERSON limit)`
      : `site ${request.site} had ${hit.count} read-only runs started in the last ${window} (the CAPI_READONLY_PER_SITE limit)`;
  parts.audit.record({
    event: 'run.refused',
    runbook,
    site: request.site,
    requestedBy: request.requestedBy,
    reason: `read-only limit per ${hit.limit}: ${hit.count} per ${window}`,
  });
  return new CapiError(
    ErrorCode.LimitReached,
    `${why}. Try again in ${inWords(hit.retryInMs)}; \`status\` shows the runs going.`,
  );
}

/** Takes the site's lock when the run can change the cloud, records the run and enqueues it. */
async function enqueue(
  parts: ServiceParts,
  runbook: Runbook,
  params: Readonly<Record<string, string>>,
  request: RunRequest,
  runId: string = newRunId(),
): Promise<RunRecord> {
  const job: RunJob = RunJobSchema.parse({
    runId,
    runbook: runbook.name,
    args: [...request.args],
    site: request.site,
    requestedBy: request.requestedBy,
    ...(request.channel !== undefined ? { channel: request.channel } : {}),
  });
  const target = targetKey(job.site);
  // A run that can change the cloud takes the site's exclusive lock; a read-only one (diagnose) takes
  // none and runs on its own queue, so a loop of them can neither refuse nor delay a recovery.
  const lock = runbook.exclusive
    ? await parts.lock.acquire(target, job.runId, lockTtlMs(parts.opts.approvalTimeoutMs))
    : ({ acquired: true } as const);
  if (!lock.acquired) {
    parts.audit.record({
      event: 'run.refused',
      runbook: job.runbook,
      site: job.site,
      requestedBy: job.requestedBy,
      reason: lock.hold
        ? `site held for run ${lock.heldBy}'s unresolved attempt`
        : `site busy with run ${lock.heldBy}`,
    });
    if (lock.hold)
      throw new CapiError(ErrorCode.TargetBusy, heldSiteMessage(job.site, await holds(parts, job.site)));
    const running = await parts.registry.get(lock.heldBy);
    throw new CapiError(
      ErrorCode.TargetBusy,
      `site ${job.site} already has a run in progress: run id: ${lock.heldBy}` +
        `${running ? ` (${running.runbook}, ${running.status}, requested by ${running.requestedBy})` : ''}. ` +
        `Follow it with status ${lock.heldBy}, or cancel it first.`,
    );
  }
  try {
    const record = await parts.registry.create(
      {
        runId: job.runId,
        runbook: job.runbook,
        params,
        site: job.site,
        queue: runbook.exclusive ? parts.site(job.site).queue : readOnlyQueue(parts.site(job.site).queue),
        requestedBy: job.requestedBy,
        ...(request.via !== undefined ? { requestedVia: request.via } : {}),
        ...(job.channel !== undefined ? { channel: job.channel } : {}),
      },
      // Every resume runs this copy, whatever is deployed by then.
      { runbook: copyOfRunbook(parts.opts.runbooks, runbook) },
    );
    const keep = parts.opts.jobRetention ?? DEFAULT_JOB_RETENTION;
    const retention = { age: keep.ageSeconds, count: keep.count };
    await parts.queue(record.queue).add(RUN_JOB_NAME, job, {
      jobId: job.runId,
      attempts: 1,
      removeOnComplete: retention,
      removeOnFail: retention,
    });
    parts.audit.record({
      event: 'run.requested',
      runId: job.runId,
      runbook: job.runbook,
      args: job.args,
      site: job.site,
      requestedBy: job.requestedBy,
      ...(request.via !== undefined ? { via: request.via } : {}),
      ...(job.channel !== undefined ? { channel: job.channel } : {}),
    });
    return record;
  } catch (err) {
    if (runbook.exclusive) await parts.lock.release(target, job.runId);
    throw err;
  }
}

/**
 * Starts a read-only run once per `key` until `forgetOnce(key)` or `ttlMs` passes (an alert group firing
 * again and again gets one diagnosis), or joins the identical run already going (many alert groups for one
 * site: one diagnosis, each group shown in its thread). Refuses a runbook that can change anything:
 * automation never starts a destructive run. Resolves with the run started or joined, or the id of the run
 * already started for the key.
 */
export async function submitOnce(
  parts: ServiceParts,
  key: string,
  ttlMs: number,
  request: RunRequest,
  automation: AutomatedAsk,
): Promise<RunStart | { readonly kind: 'duplicate'; readonly runId: string }> {
  const runbook = parts.opts.runbooks.runbooks.get(request.runbook);
  if (!runbook?.readOnly || runbook.exclusive) {
    throw new CapiError(
      ErrorCode.NotAllowed,
      `only a read-only runbook can be started automatically; '${request.runbook}' is not one`,
    );
  }
  const dedup = onceKey(parts, key);
  // Claimed first, atomically: two deliveries of one alert group at once start one run.
  const claimed = await parts.opts.redis.set(dedup, 'starting', 'PX', ttlMs, 'NX');
  if (claimed === null) {
    return { kind: 'duplicate', runId: (await parts.opts.redis.get(dedup)) ?? 'starting' };
  }
  try {
    const result = await start(parts, request, automation);
    await parts.opts.redis.set(dedup, result.record.runId, 'PX', ttlMs, 'XX');
    return result;
  } catch (err) {
    await parts.opts.redis.del(dedup);
    throw err;
  }
}

/** The next submitOnce(key) starts a run again (the alert resolved). */
export async function forgetOnce(parts: ServiceParts, key: string): Promise<void> {
  await parts.opts.redis.del(onceKey(parts, key));
}

function onceKey(parts: ServiceParts, key: string): string {
  return `${parts.opts.prefix}:once:${createHash('sha256').update(key).digest('hex')}`;
}
