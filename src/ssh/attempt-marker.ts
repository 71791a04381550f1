/**
 * The jumphost's own journal of destructive attempts. The attempt record in Redis is the fast path, but
 * Redis can lose it (a crash inside the fsync second, a failover onto a lagging replica, a restore from a
 * backup): the run would then find the step unattempted and send it again. So the remote command that
 * sends a destructive step first claims a marker for the step on the jumphost itself, atomically
 * (mkdir), and refuses to send when the marker is already there: whatever Redis forgot, the jumphost
 * remembers that the step was sent, and when.
 *
 * Layout, under the jumphost user's home: `~/.capi-chatops/attempts/<run>/<slot key>/<action digest>`,
 * a file holding the time it was sent (first line, UTC), the slot and the command as people saw it (masked
 * and redacted: never an env value). The claim is the slot's directory, whatever the digest: a step that
 * was sent once is never sent again, even as a different action (a value read back from a cloud that moved
 * since gives another digest), exactly as the Redis journal keys attempts by slot alone.
 *
 * Run directories older than the retention are removed by the next marker made for another run (`find
 * -mmin`): the marker lives as long as the run's own keys would in Redis.
 */
import { createHash } from 'node:crypto';
import { AttemptOnRecordError } from '../errors.js';
import { RUN_ID_PATTERN } from '../run-id.js';
import { shellQuote } from './quote.js';
import { retentionMinutes } from './retention.js';

export interface AttemptMarker {
  /** The run id: one directory per run. */
  readonly runId: string;
  /** The attempt journal's slot for the step (see approvalSlot): one marker per slot. */
  readonly slot: string;
  /** The approved action's digest: the marker file's name. */
  readonly digest: string;
  /** The command as the approver saw it, secrets masked: kept in the marker for whoever reads the jumphost. */
  readonly shown: string;
}

/** Exit code of a send refused because its marker exists (EX_NOPERM); nothing of the step ran. */
export const ON_RECORD_EXIT = 77;
const ON_RECORD_MARK = 'capi-chatops: attempt on record:';
const DIGEST = /^[A-Za-z0-9_-]{1,128}$/;
const MAX_SHOWN_BYTES = 16 * 1024;

/** The marker directory's name for a slot: readable, safe as one path component, unique per slot. */
export function slotKey(slot: string): string {
  const readable = slot.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 80);
  const hash = createHash('sha256').update(slot).digest('hex').slice(0, 16);
  return `${readable}-${hash}`;
}

/** Where the marker of this attempt lives, relative to the jumphost user's home. */
export function markerPath(marker: AttemptMarker): string {
  return `.capi-chatops/attempts/${marker.runId}/${slotKey(marker.slot)}/${marker.digest}`;
}

/**
 * Prefixes `script` with the claim: prune other runs' markers past the retention, create the run's
 * directory, then mkdir the slot's directory (atomic: of two sends only one creates it) and write what is
 * sent. A slot already claimed exits ON_RECORD_EXIT with one ON_RECORD_MARK line naming when the first send
 * was made; anything else that stops the claim exits 74 and sends nothing.
 */
export function withAttemptMarker(script: string, marker: AttemptMarker, retentionMs: number): string {
  if (!RUN_ID_PATTERN.test(marker.runId)) throw new RangeError('an attempt marker needs a run id');
  if (!DIGEST.test(marker.digest)) throw new RangeError('an attempt marker needs a hex action digest');
  if (marker.slot === '') throw new RangeError('an attempt marker needs a slot');
  const minutes = retentionMinutes(retentionMs);
  const runDir = `"$HOME/.capi-chatops/attempts/"${shellQuote(marker.runId)}`;
  const claim = `${runDir}/${shellQuote(slotKey(marker.slot))}`;
  const file = `${claim}/${shellQuote(marker.digest)}`;
  const shown = Buffer.from(marker.shown).subarray(0, MAX_SHOWN_BYTES).toString('utf8');
  return [
    `(umask 077; mkdir -p ${runDir}) || { echo "capi-chatops: cannot create the attempt marker directory ~/.capi-chatops/attempts on the jumphost" >&2; exit 74; }`,
    // Other runs' markers past the retention go; a run's own never goes while it sends.
    `find "$HOME/.capi-chatops/attempts" -mindepth 1 -maxdepth 1 -type d ! -name ${shellQuote(marker.runId)} -mmin +${minutes} -exec rm -rf -- {} + 2>/dev/null`,
    `if ! mkdir ${claim} 2>/dev/null; then`,
    `  if [ -d ${claim} ]; then`,
    '    capi_at=; capi_was=',
    // The first send's time and digest; a marker whose file was never written (the first send died right
    // after its claim) still refuses: its time is then unknown.
    `    for capi_f in ${claim}/*; do [ -f "$capi_f" ] && { read -r capi_at <"$capi_f"; capi_was=\${capi_f##*/}; }; break; done`,
    `    echo "${ON_RECORD_MARK} sent_at=\${capi_at:-unknown} digest=\${capi_was:-unknown} marker=~/${markerPath(marker).replace(/\/[^/]*$/, '')}" >&2`,
    `    exit ${ON_RECORD_EXIT}`,
    '  fi',
    '  echo "capi-chatops: cannot create the attempt marker under ~/.capi-chatops/attempts on the jumphost" >&2',
    '  exit 74',
    'fi',
    `{ date -u +%Y-%m-%dT%H:%M:%SZ; printf '%s\\n' ${shellQuote(`slot ${marker.slot}`)} ${shellQuote(shown)}; } >${file} || { echo "capi-chatops: cannot write the attempt marker" >&2; exit 74; }`,
    'unset capi_at capi_was capi_f',
    script,
  ].join('\n');
}

/** Throws AttemptOnRecordError when the jumphost refused the send because the step's marker exists. */
export function throwIfOnRecord(marker: AttemptMarker, code: number | null, stderr: string): void {
  if (code !== ON_RECORD_EXIT) return;
  const line = stderr.split('\n').find((l) => l.startsWith(ON_RECORD_MARK));
  if (line === undefined) return;
  const field = (name: string) => new RegExp(`\\b${name}=(\\S+)`).exec(line)?.[1];
  const sentAt = field('sent_at');
  const digest = field('digest');
  throw new AttemptOnRecordError({
    runId: marker.runId,
    slot: marker.slot,
    marker: field('marker') ?? `~/${markerPath(marker)}`,
    ...(sentAt !== undefined && sentAt !== 'unknown' ? { sentAt } : {}),
    ...(digest !== undefined && digest !== 'unknown' ? { digest } : {}),
  });
}
