/**
 * What expressions and commands see: the scope of a step (site, parameters, captures, a command's output),
 * values bound into a command's environment (each held to its declared type), and how a command's result
 * reads to a person.
 */
import { magnumNamespace, type SiteProfile } from '../config/site.js';
import { ParamError } from '../errors.js';
import { type CompiledTemplate, evaluateExpr, renderCompiledTemplate, toStr } from '../expr/index.js';
import { redactText } from '../redact.js';
import type { Command, EnvBinding, LeafStep } from '../runbook/model.js';
import { checkParamValue } from '../runbook/params.js';
import type { ExecResult } from '../ssh/types.js';
import { Stop } from './control.js';
import type { AttemptRecord } from './events.js';
import { parseOutput } from './output.js';
import { exitAccepted, knownErrorId } from './traps.js';

export type Vars = Record<string, unknown>;

/** What a verify check sees of the attempt it reads back. */
export function attemptVars(attempt: AttemptRecord): Vars {
  return { started_at: attempt.startedAt, command: attempt.command, id: attempt.attemptId };
}

/** Why a command's result fails its step (a timeout, an exit code it does not allow), or undefined. */
export function commandFailure(command: Command, result: ExecResult): string | undefined {
  // A sensitive step's output stays out of its failure too.
  const tail = command.sensitive ? '(output not shown: the step is sensitive)' : tailOf(result);
  if (result.timedOut) {
    return `timed out after ${command.timeoutMs / 1000}s; the remote process group was killed${tail ? `: ${tail}` : ''}`;
  }
  if (!exitAccepted(command, result.code) && !command.allowFailure) {
    return `exited ${result.code ?? `by signal ${result.signal}`}: ${tail}`;
  }
  return undefined;
}

export function tailOf(result: ExecResult): string {
  const tail =
    result.stderr.trim().split('\n').slice(-3).join(' | ') ||
    result.stdout.trim().split('\n').slice(-3).join(' | ');
  return redactText(tail);
}

export function isDestructive(step: LeafStep): boolean {
  return step.kind === 'run' && step.destructive;
}

/** The site profile as expressions see it: the jumphost's connection details stay out. */
export function publicSite(site: SiteProfile): Vars {
  const { jumphost: _omit, ...rest } = site;
  return { ...rest, magnum_ns: magnumNamespace(site) };
}

/** Titles may name values only a later step captures; until then the outline shows the template. */
export function renderOrSource(t: CompiledTemplate, scope: Vars): string {
  try {
    return render(t, scope);
  } catch {
    return t.source;
  }
}

export function render(t: CompiledTemplate, scope: Vars): string {
  return redactText(renderCompiledTemplate(t, scope));
}

/**
 * For an approval's summary and evidence, whose values are names the cloud chose (a server, an LB, a host):
 * each value becomes a code span, so a name such as `https://evil/sso` or `*prod*` reads as a name in every
 * front, and Slack makes no link, mention or formatting of it. The runbook's own words stay text.
 */
export function renderNames(t: CompiledTemplate, scope: Vars): string {
  return redactText(
    t.parts
      // Redacted before it is put on one line: what redaction recognises (a PEM block, `export X=`) spans lines.
      .map((part) =>
        typeof part === 'string' ? part : codeSpan(redactText(toStr(evaluateExpr(part, scope)))),
      )
      .join(''),
  );
}

/** One line between backticks; a backtick inside is shown by its code point so it cannot close the span. */
function codeSpan(value: string): string {
  const text = value.replace(/\s+/g, ' ').trim().replace(/`/g, '[U+0060]');
  return text === '' ? '' : `\`${text}\``;
}

/**
 * Values taken from CLI output are held to the same patterns as chat parameters before they reach a
 * command: a malformed UUID in `server list` output stops the step instead of reaching `server delete`.
 * A list becomes space-separated validated values.
 */
export function bindEnv(
  bindings: readonly EnvBinding[],
  scope: Vars,
  env: Record<string, string>,
  where: string,
): void {
  for (const b of bindings) {
    const value = evaluateExpr(b.value, scope);
    const values = Array.isArray(value) ? value : value === null || value === undefined ? [] : [value];
    try {
      if (values.length === 0 && !b.optional) {
        throw new ParamError(b.name, `${b.name} is empty (null or an empty list) and not marked optional`);
      }
      env[b.name] = values
        .map((v) => checkParamValue(b.name, b.type, typeof v === 'number' ? String(v) : v))
        .join(' ');
    } catch (err) {
      if (err instanceof ParamError) {
        throw new Stop(
          'failed',
          `${where}: ${b.name} from \`${b.value.source}\` is not safe to use: ${err.message}`,
          where,
        );
      }
      throw err;
    }
  }
}

export function pickEnv(env: Record<string, string>, bindings: readonly EnvBinding[]): Vars {
  return Object.fromEntries(bindings.map((b) => [b.name, env[b.name]]));
}

export function outputScope(scope: Vars, command: Command, result: ExecResult): Vars {
  const failed = !exitAccepted(command, result.code);
  return {
    ...scope,
    stdout: result.stdout.replace(/\n+$/, ''),
    stderr: result.stderr.replace(/\n+$/, ''),
    exit_code: result.code,
    known_error: knownErrorId(command, result),
    // A failed command's output is an error message, not data: expressions see null.
    out: failed ? null : parseOutput(command.parse, result.stdout),
  };
}

export function lastLine(command: Command, result: ExecResult): string {
  if (command.sensitive) return `exit ${result.code} (output not shown: the step is sensitive)`;
  const lines = `${result.stdout}\n${result.stderr}`.split('\n').filter((l) => l.trim() !== '');
  return redactText(lines.at(-1) ?? `exit ${result.code}`);
}
