/**
 * The fence on the jumphost itself. Redis fencing stops a stale agent's writes, but an agent paused
 * between its last fence check and its send would still reach the jumphost when it wakes. So every
 * command of a fenced run first raises (never lowers) the run's token in a file on the jumphost, under
 * flock, and refuses to run when the file already holds a newer token: the agent that took the run over
 * raised it with its first command, so the stale agent's send never runs.
 */
import { RunFencedError } from '../errors.js';
import { shellQuote } from './quote.js';

export interface RemoteFence {
  /** The run id: one token file per run under ~/.capi-chatops/fence/ on the jumphost. */
  readonly scope: string;
  readonly token: number;
}

/** Exit code of a command refused by the fence (EX_TEMPFAIL); nothing of the step ran. */
const REFUSED_EXIT = 75;
const REFUSED_MARK = 'capi-chatops: fenced:';
const SCOPE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/;

export function withRemoteFence(script: string, fence: RemoteFence): string {
  if (!SCOPE.test(fence.scope) || !Number.isSafeInteger(fence.token) || fence.token < 1) {
    throw new RangeError('a remote fence needs a run id scope and a token >= 1');
  }
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
    `  exec 9>>${f}.lock && flock -w 30 9 || { echo "capi-chatops: cannot lock the run's fence file" >&2; exit 74; }`,
    `  capi_now=$(cat ${f} 2>/dev/null); capi_now=\${capi_now:-0}`,
    `  if [ "$capi_now" -gt ${fence.token} ]; then echo "${REFUSED_MARK} token ${fence.token} < $capi_now" >&2; exit ${REFUSED_EXIT}; fi`,
    `  if [ "$capi_now" -lt ${fence.token} ]; then echo ${fence.token} > ${f}.new && mv -f ${f}.new ${f} || exit 74; fi`,
    '  exec 9>&-',
    'fi',
    'unset capi_now',
    script,
  ].join('\n');
}

/** Throws when the jumphost refused the command because a newer owner's token is on record there. */
export function throwIfFenced(fence: RemoteFence, code: number | null, stderr: string): void {
  if (code !== REFUSED_EXIT) return;
  const line = stderr.split('\n').find((l) => l.startsWith(REFUSED_MARK));
  if (line !== undefined) {
    throw new RunFencedError(
      fence.scope,
      `the jumphost refused the command: ${line.slice(REFUSED_MARK.length).trim()}`,
    );
  }
}
