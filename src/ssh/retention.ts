/**
 * How long the jumphost keeps a run's state (attempt markers, fence files) after its last write there:
 * RUN_RETENTION, the time a finished run's keys live in Redis, in whole minutes for `find -mmin`.
 */
export function retentionMinutes(retentionMs: number): number {
  if (!Number.isFinite(retentionMs) || retentionMs < 60_000) {
    throw new RangeError("a run's state on the jumphost is kept for at least a minute");
  }
  return Math.ceil(retentionMs / 60_000);
}
