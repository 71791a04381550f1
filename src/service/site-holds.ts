import { CapiError, ErrorCode } from '../errors.js';
import { RunJobSchema } from '../queue/job.js';
import { decisionReasonSchema } from '../runs/decision-reason.js';
import { type SiteHold, targetKey } from '../runs/lock.js';
import type { ServiceParts } from './parts.js';

/** A site name as typed (release, holds): the job payload's own rule, checked before any key is built. */
function siteName(site: string): string {
  const parsed = RunJobSchema.shape.site.safeParse(site);
  if (!parsed.success) {
    throw new CapiError(
      ErrorCode.ParamInvalid,
      `'${site.slice(0, 64)}' is not a site name (a site profile's name)`,
    );
  }
  return parsed.data;
}

/**
 * Why the site stays locked after its runs ended: each run that ended while a destructive command of it may
 * have landed (OUTCOME UNKNOWN), oldest first. Empty when nothing holds it.
 */
export function holds(parts: ServiceParts, site: string): Promise<SiteHold[]> {
  return parts.lock.holds(targetKey(siteName(site)));
}

/**
 * An operator has checked by hand what the held runs may have done, and frees the site for runs that can
 * change the cloud again, saying why (required: it is the record of the check). Audited with every hold it
 * released. Returns them; empty when the site was not held (nothing changed).
 */
export async function release(
  parts: ServiceParts,
  site: string,
  by: string,
  reason: string,
  via?: string,
): Promise<SiteHold[]> {
  const name = siteName(site);
  const parsed = decisionReasonSchema.safeParse(reason);
  if (!parsed.success || parsed.data === '') {
    const why = parsed.success
      ? 'say what was checked by hand (it is kept in the audit trail)'
      : parsed.error.issues.map((i) => i.message).join('; ');
    throw new CapiError(ErrorCode.ParamInvalid, `reason: ${why}`);
  }
  const released = await parts.lock.releaseHolds(targetKey(name));
  if (released.length > 0) {
    parts.audit.record({
      event: 'site.released',
      site: name,
      by,
      ...(via !== undefined ? { via } : {}),
      reason: parsed.data,
      holds: released.map((h) => ({ runId: h.runId, attemptId: h.attemptId, command: h.command })),
    });
  }
  return released;
}
