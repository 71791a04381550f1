/**
 * The command lines the executor sends: a step wrapped so that its remote process group is known and its
 * values travel as single-quoted NAME=value words the wrapper exports, and the kill of that group. Pure text; the channels that
 * carry them are executor.ts.
 */
import { ErrorCode, SshError } from '../errors.js';
import { shellQuote } from './quote.js';

const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
/**
 * Names that change how the remote shell itself behaves (BASH_ENV is sourced by every `bash -c`, PATH
 * picks which `openstack` runs): a value reaching them would be code, not data.
 */
const RESERVED_ENV = new Set([
  'PATH',
  'HOME',
  'BASH_ENV',
  'ENV',
  'SHELLOPTS',
  'BASHOPTS',
  'IFS',
  'PS4',
  'GLOBIGNORE',
]);
/** Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN), and sshd passes the command as one. */
const MAX_COMMAND_BYTES = 120 * 1024;
/**
 * How the executor learns the remote process group without the caller seeing it: the wrapper below is the
 * first thing that runs in the session, and it prints `<MARKER><pid>` as its first stdout line before
 * running the step in that same process. The executor strips every stdout line up to and including the marker (anything before
 * it came from the login shell's dotfiles, not from the step).
 *
 * Why the pid is the process group: sshd setsid()s every session child, so the login shell is a session
 * and group leader, and `exec bash` keeps that pid (the step runs in that shell). Where that does not hold (a
 * non-OpenSSH server), the wrapper re-execs itself under setsid, which without forking makes the same
 * pid a new group leader. Every process the step starts stays in that group unless it calls setsid itself,
 * so `kill -- -PGID` reaches the whole step. Printing from the wrapper rather than from a parent that
 * forks the step means the marker is always written before any step output.
 */
const MARKER = '@@capi-chatops-pgid=';
export const MARKER_LINE = /@@capi-chatops-pgid=(\d+)$/;
const BASH = 'bash --norc --noprofile';
const WRAPPER = [
  'read -r _ _ _ _ g _ 2>/dev/null </proc/$$/stat',
  `if [ -n "$g" ] && [ "$g" != "$$" ] && command -v setsid >/dev/null; then exec setsid ${BASH} -c "$BASH_EXECUTION_STRING" "$0" "$@"; fi`,
  `printf '%s%s\\n' '${MARKER}' "$$"`,
  // The step runs in this same shell rather than a second bash (one start-up less, ~1 ms a step): its values
  // are exported from the NAME=value words after the script, the wrapper's own variables are gone and there
  // are no positional parameters, as under `bash -c SCRIPT`; eval parses and runs it command by command as
  // bash -c does, and its status is the shell's.
  'capi_script=$1; shift; [ $# -eq 0 ] || export -- "$@" || exit 125; set --; unset g',
  'eval "unset capi_script; $capi_script"',
].join('\n');
const STEP_NAME = 'capi-step';

/**
 * The full remote command for one step. The login shell of the jumphost user parses only this line:
 * every env value and the script itself are single-quoted words, so nothing in them is expanded there.
 */
export function buildRemoteCommand(script: string, env: Readonly<Record<string, string>>): string {
  if (script.includes('\0')) throw new SshError(ErrorCode.SshExec, 'the step script contains a NUL byte');
  const assignments: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) {
      throw new SshError(
        ErrorCode.SshExec,
        `env name ${JSON.stringify(name)} is not allowed: names must match ^[A-Z_][A-Z0-9_]*$`,
      );
    }
    if (RESERVED_ENV.has(name) || name.startsWith('LD_')) {
      throw new SshError(
        ErrorCode.SshExec,
        `env name ${name} is reserved: it changes how the remote shell runs; pick another name in the runbook`,
      );
    }
    if (value.includes('\0')) {
      throw new SshError(
        ErrorCode.SshExec,
        `env ${name} contains a NUL byte, which cannot be passed to a process`,
      );
    }
    assignments.push(shellQuote(`${name}=${value}`));
  }
  // The values travel as plain quoted words that the wrapper exports, not as `NAME=v exec ...` (whether
  // those are exported differs between login shells) nor through env(1) (one more exec a step).
  const command = `exec ${BASH} -c ${shellQuote(WRAPPER)} ${STEP_NAME} ${shellQuote(script)}${assignments.map((a) => ` ${a}`).join('')}`;
  if (Buffer.byteLength(command) > MAX_COMMAND_BYTES) {
    throw new SshError(
      ErrorCode.SshExec,
      `the step script and its env are ${Buffer.byteLength(command)} bytes; the limit is ${MAX_COMMAND_BYTES}. Put large data in a file on the jumphost instead.`,
    );
  }
  return command;
}

/**
 * TERM the group, poll until it is gone, KILL it once the grace is over. Runs on its own channel.
 * `kill -0` alone is not enough to tell "gone": a member orphaned when its parent died is a zombie until
 * init reaps it, and some container inits (this machine's, for one) never do. So members are counted from
 * /proc, zombies excluded; without /proc, kill -0 is the fallback.
 */
export function killCommand(pgid: number, graceMs: number): string {
  const polls = Math.max(1, Math.ceil(graceMs / 50));
  const script = [
    'alive() {',
    `  kill -0 -- -${pgid} 2>/dev/null || return 1`,
    '  [ -r /proc/self/stat ] || return 0',
    '  for f in /proc/[0-9]*/stat; do',
    '    read -r l 2>/dev/null <"$f" || continue',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: bash parameter expansion, not a JS template
    '    set -- ${l##*) }',
    `    [ "$3" = ${pgid} ] && [ "$1" != Z ] && return 0`,
    '  done',
    '  return 1',
    '}',
    `kill -TERM -- -${pgid} 2>/dev/null || exit 0`,
    'i=0',
    'while alive; do',
    `  if [ "$i" -ge ${polls} ]; then kill -KILL -- -${pgid} 2>/dev/null; exit 0; fi`,
    '  sleep 0.05; i=$((i+1))',
    'done',
  ].join('\n');
  return `exec ${BASH} -c ${shellQuote(script)}`;
}
