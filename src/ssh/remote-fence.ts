/**
 * The fence on the jumphost itself. Redis fencing stops a stale agent's writes, but an agent paused
 * between its last fence check and its send would still reach the jumphost when it wakes. So every
 * command of a fenced run first raises (never lowers) the run's token in a file on the jumphost, under
 * flock, and refuses to run when the file already holds a newer token: the agent that took the run over
 * raised it with its first command, so the stale agent's send never runs.
 *
 * Layout, under the jumphost user's home: `~/.capi-chatops/fence/<run>` (the newest token), `<run>.lock`
 * (flock) and, for a moment, `<run>.new`. A run's files go once its token file is older than the retention
 * (RUN_RETENTION): the token file is rewritten by every new owner's first command, so it is that old only
 * when nobody has taken the run for that long, which a run still alive never is (its keys in Redis live as
 * long). They are removed by the next new owner's first command of another run, never by the run's own.
 */
import { JumphostFencedError } from '../errors.js';
import { shellQuote } from './quote.js';
import { retentionMinutes } from './retention.js';

export interface RemoteFence {
  /** The run id: one token file per run under ~/.capi-chatops/fence/ on the jumphost. */
  readonly scope: string;
  readonly token: number;
}

/** Exit code of a command refused by the fence (EX_TEMPFAIL); nothing of the step ran. */
export const FENCE_REFUSED_EXIT = 75;
const REFUSED_MARK = 'capi-chatops: fenced:';
const SCOPE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

/**
 * Removes one batch of `find` hits: a token file with its lock and temporary file; a lock or temporary file
 * only when its run's token file is gone (a lock older than its token file belongs to a live run).
 */
const PRUNE = shellQuote(
  `for f; do case \${f##*/} in *.*) [ -e "\${f%.*}" ] || rm -f -- "$f";; *) rm -f -- "$f" "$f.lock" "$f.new";; esac; done`,
);

export function withRemoteFence(script: string, fence: RemoteFence, retentionMs: number): string {
  if (!SCOPE.test(fence.scope) || !Number.isSafeInteger(fence.token) || fence.token < 1) {
    throw new RangeError('a remote fence needs a run id scope and a token >= 1');
  }
  const minutes = retentionMinutes(retentionMs);
  const f = `"$HOME/.capi-chatops/fence/"${shellQuote(fence.scope)}`;
  return [
    // Fast path, every command after the owner's first: its own token is on record, nothing to raise, so
    // no lock and no extra process (the locked path below costs ~5 ms a step: a subshell, flock, cat). A
    // read without the lock decides the same: tokens only grow, the file is replaced by rename (a reader
    // sees the old token or the new one, whole), and any other value takes the locked path.
    'capi_now=',
    `{ read -r capi_now <${f}; } 2>/dev/null`,
    `if [ "$capi_now" != ${fence.token} ]; then`,
    '  command -v flock >/dev/null || { echo "capi-chatops: flock (util-linux) is missing on the jumphost; install util-linux" >&2; exit 74; }',
    '  (umask 077; mkdir -p "$HOME/.capi-chatops/fence") || exit 74',
    // Other runs' fence files past the retention go; this run's own never do here.
    `  find "$HOME/.capi-chatops/fence" -mindepth 1 -maxdepth 1 -type f ! -name ${shellQuote(fence.scope)} ! -name ${shellQuote(`${fence.scope}.*`)} -mmin +${minutes} -exec sh -c ${PRUNE} sh {} + 2>/dev/null`,
    `  exec 9>>${f}.lock && flock -w 30 9 || { echo "capi-chatops: cannot lock the run's fence file" >&2; exit 74; }`,
    `  capi_now=$(cat ${f} 2>/dev/null); capi_now=\${capi_now:-0}`,
    // A file that holds anything but a token would make both comparisons below error out (false), and the
    // step would run unfenced: refuse instead, naming the file, so nobody's run goes on past it.
    `  case $capi_now in *[!0-9]*) echo "capi-chatops: the run's fence file ~/.capi-chatops/fence/${fence.scope} on the jumphost holds no token; nothing was run: check who wrote it, then remove it" >&2; exit 74;; esac`,
    `  if [ "$capi_now" -gt ${fence.token} ]; then echo "${REFUSED_MARK} token ${fence.token} < $capi_now" >&2; exit ${FENCE_REFUSED_EXIT}; fi`,
    `  if [ "$capi_now" -lt ${fence.token} ]; then echo ${fence.token} > ${f}.new && mv -f ${f}.new ${f} || exit 74; fi`,
    '  exec 9>&-',
    'fi',
    'unset capi_now',
    script,
  ].join('\n');
}

/** Throws when the jumphost refused the command because a newer owner's token is on record there. */
export function throwIfFenced(fence: RemoteFence, code: number | null, stderr: string): void {
  if (code !== FENCE_REFUSED_EXIT) return;
  const line = stderr.split('\n').find((l) => l.startsWith(REFUSED_MARK));
  const seen = line === undefined ? undefined : /< (\d+)$/.exec(line.trim())?.[1];
  if (seen !== undefined) throw new JumphostFencedError(fence.scope, fence.token, Number(seen));
}
