import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type Document, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { parseDuration } from '../config/units.js';
import { RunbookError } from '../errors.js';
import {
  type CompiledExpr,
  type CompiledTemplate,
  compileExpr,
  compileRegex,
  compileTemplate,
  freeVariables,
  templateFreeVariables,
} from '../expr/index.js';
import { formatPath } from '../validation.js';
import type {
  Command,
  Decision,
  EnvBinding,
  ForEachStep,
  GuardCheck,
  KnownError,
  LeafStep,
  PollStep,
  ReportStep,
  Runbook,
  RunStep,
  Scope,
  Step,
} from './model.js';
import type { ParamType } from './params.js';
import {
  ForEachStepSchema,
  PollStepSchema,
  ReportStepSchema,
  RunbookFileSchema,
  RunStepSchema,
  type RunStepYaml,
  ScopesFileSchema,
} from './schema.js';
import { JUMPHOST_TOOLS, toolsIn } from './tools.js';

export const SCOPES_FILE = 'scopes.yaml';
const DEFAULT_TIMEOUT_MS = 10 * 60_000;

/** Names every expression may read besides captures, loop variables and env bindings. */
const GLOBAL_NAMES = ['site', 'params'];
/** Names a step's own output adds for its capture/expect/decide expressions. */
const OUTPUT_NAMES = ['stdout', 'stderr', 'exit_code', 'out', 'known_error'];
/** A verify check also sees the attempt it verifies: attempt.started_at, attempt.command. */
const VERIFY_NAMES = [...OUTPUT_NAMES, 'attempt'];

export interface RunbookSet {
  readonly scopes: ReadonlyMap<string, Scope>;
  readonly knownErrors: readonly KnownError[];
  readonly runbooks: ReadonlyMap<string, Runbook>;
}

type Path = (string | number)[];

/** Collects every problem in one file so the operator fixes them in one pass. */
class FileProblems {
  readonly issues: string[] = [];
  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  add(path: Path, message: string): void {
    this.issues.push(`${this.where(path)}${path.length > 0 ? formatPath(path) : '(top level)'}: ${message}`);
  }

  addZod(base: Path, error: z.ZodError): void {
    for (const issue of error.issues) {
      this.add([...base, ...(issue.path as Path)], issue.message);
    }
  }

  private where(path: Path): string {
    // Walk up to the deepest node that exists: a missing key is reported at its parent's line.
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node?.range !== undefined) {
        return `line ${this.lines.linePos(node.range[0]).line}, `;
      }
    }
    return '';
  }

  throwIfAny(): void {
    if (this.issues.length > 0) throw new RunbookError(this.file, this.issues);
  }
}

function readYaml(file: string, text: string): { doc: Document; problems: FileProblems; data: unknown } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const problems = new FileProblems(file, doc, lines);
  for (const err of doc.errors) {
    const pos = err.linePos?.[0];
    problems.issues.push(`${pos ? `line ${pos.line}, ` : ''}YAML syntax: ${err.message.split('\n')[0]}`);
  }
  problems.throwIfAny();
  return { doc, problems, data: doc.toJS() };
}

function parseScopesFile(file: string, text: string) {
  const { problems, data } = readYaml(file, text);
  const parsed = ScopesFileSchema.safeParse(data);
  if (!parsed.success) {
    problems.addZod([], parsed.error);
    problems.throwIfAny();
  }
  return parsed.data as z.infer<typeof ScopesFileSchema>;
}

export function parseScopes(file: string, text: string): Map<string, Scope> {
  const scopes = new Map<string, Scope>();
  for (const [name, s] of Object.entries(parseScopesFile(file, text).scopes)) {
    scopes.set(name, { name, description: s.description, preamble: s.preamble });
  }
  return scopes;
}

/** The remote errors with a known cause (scopes.yaml `known_errors`), checked on every command. */
export function parseKnownErrors(file: string, text: string): KnownError[] {
  // The schema refused every pattern the guard refuses: compileKnownError gets the RegExp it compiled.
  return parseScopesFile(file, text).known_errors.map(compileKnownError);
}

/**
 * One known error from its file's fields, its pattern through the same regex guard as every expression
 * (also how a run's stored runbook copy gets its own back: a pattern the guard now refuses is refused).
 */
export function compileKnownError(k: {
  readonly id: string;
  readonly source: string;
  readonly match: string;
  readonly message: string;
}): KnownError {
  const match = compileRegex(k.match);
  if (typeof match === 'string') throw new RunbookError('known_errors', [`${k.id}: ${match}`]);
  return { id: k.id, source: k.source, match, message: k.message };
}

/** Everything known while compiling one step: which names exist and where we are in the file. */
interface Ctx {
  readonly problems: FileProblems;
  readonly scopes: ReadonlyMap<string, Scope>;
  readonly knownErrors: readonly KnownError[];
  readonly known: Set<string>;
  readonly inLoop: boolean;
}

function expr(ctx: Ctx, path: Path, source: string, local: readonly string[] = []): CompiledExpr | undefined {
  try {
    const compiled = compileExpr(source);
    checkNames(ctx, path, freeVariables(compiled), local);
    return compiled;
  } catch (err) {
    ctx.problems.add(path, (err as Error).message);
    return undefined;
  }
}

function tpl(
  ctx: Ctx,
  path: Path,
  source: string,
  local: readonly string[] = [],
): CompiledTemplate | undefined {
  try {
    const compiled = compileTemplate(source);
    checkNames(ctx, path, templateFreeVariables(compiled), local);
    return compiled;
  } catch (err) {
    ctx.problems.add(path, (err as Error).message);
    return undefined;
  }
}

function checkNames(ctx: Ctx, path: Path, names: readonly string[], local: readonly string[]): void {
  for (const name of names) {
    if (!ctx.known.has(name) && !local.includes(name)) {
      const known = [...ctx.known, ...local].sort().join(', ');
      ctx.problems.add(path, `uses '${name}', which no earlier step captures (known here: ${known})`);
    }
  }
}

function command(
  ctx: Ctx,
  sensitive: boolean,
  raw: {
    run: string;
    parse: Command['parse'];
    allow_failure: boolean;
    ok_exit?: number[] | undefined;
    known_errors: Command['onKnownError'];
    timeout?: string | undefined;
  },
): Command {
  return {
    script: raw.run,
    parse: raw.parse,
    allowFailure: raw.allow_failure,
    okExit: raw.ok_exit ?? [0],
    onKnownError: raw.known_errors,
    knownErrors: ctx.knownErrors,
    timeoutMs: raw.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(raw.timeout),
    sensitive,
  };
}

/** A kubeconfig holds the cluster's admin credentials: a step that reads one must keep its output hidden. */
function checkSensitiveParse(ctx: Ctx, path: Path, parse: Command['parse'], sensitive: boolean): void {
  if (parse === 'kubeconfig' && !sensitive) {
    ctx.problems.add(
      path,
      'parse: kubeconfig reads credentials: the step must say sensitive: true, so its output is never stored or shown',
    );
  }
}

function envBindings(
  ctx: Ctx,
  path: Path,
  raw: Record<string, { value: string; type: string; optional: boolean }> | undefined,
): EnvBinding[] {
  const out: EnvBinding[] = [];
  for (const [name, b] of Object.entries(raw ?? {})) {
    const value = expr(ctx, [...path, name, 'value'], b.value);
    if (value) out.push({ name, value, type: b.type as ParamType, optional: b.optional });
  }
  return out;
}

function decisions(ctx: Ctx, path: Path, raw: RunStepYaml['decide']): Decision[] {
  return (raw ?? []).flatMap((d, i) => {
    const p = [...path, i];
    const when = expr(ctx, [...p, 'when'], d.when, OUTPUT_NAMES);
    const say = d.say === undefined ? undefined : tpl(ctx, [...p, 'say'], d.say, OUTPUT_NAMES);
    let outcome: Decision['outcome'];
    if (d.goto !== undefined) {
      if (ctx.inLoop)
        ctx.problems.add([...p, 'goto'], 'goto is not allowed inside for_each: use fail or finish');
      outcome = { kind: 'goto', target: d.goto };
    } else if (d.finish !== undefined || d.fail !== undefined) {
      const kind = d.finish !== undefined ? 'finish' : 'fail';
      const message = tpl(ctx, [...p, kind], (d.finish ?? d.fail) as string, OUTPUT_NAMES);
      if (message) outcome = { kind, message };
    }
    if (!when) return [];
    return [{ when, ...(say ? { say } : {}), ...(outcome ? { outcome } : {}) }];
  });
}

function scopeOf(ctx: Ctx, path: Path, name: string | undefined): Scope | undefined {
  if (name === undefined) return undefined;
  const scope = ctx.scopes.get(name);
  if (!scope)
    ctx.problems.add(
      path,
      `unknown scope '${name}' (defined in ${SCOPES_FILE}: ${[...ctx.scopes.keys()].join(', ')})`,
    );
  return scope;
}

const STEP_KINDS = ['run', 'poll', 'for_each', 'report'];

function stepKind(raw: unknown): string {
  if (raw === null || typeof raw !== 'object') return 'not a mapping';
  const keys = STEP_KINDS.filter((k) => k in raw);
  if (keys.length === 1) return keys[0] as string;
  return keys.length === 0 ? 'none of them' : `several: ${keys.join(', ')}`;
}

function leafStep(ctx: Ctx, path: Path, raw: unknown): LeafStep | undefined {
  const kind = stepKind(raw);
  if (kind === 'for_each' && ctx.inLoop) {
    ctx.problems.add(
      path,
      'for_each cannot be nested: failovers and deletions stay strictly sequential and flat',
    );
    return undefined;
  }
  if (kind === 'run') return runStep(ctx, path, raw);
  if (kind === 'poll') return pollStep(ctx, path, raw);
  ctx.problems.add(path, `a step needs exactly one of ${STEP_KINDS.join(', ')} (found ${kind})`);
  return undefined;
}

function reportStep(ctx: Ctx, path: Path, raw: unknown): ReportStep | undefined {
  const parsed = ReportStepSchema.safeParse(raw);
  if (!parsed.success) {
    ctx.problems.addZod(path, parsed.error);
    return undefined;
  }
  const s = parsed.data;
  const title = tpl(ctx, [...path, 'title'], s.title);
  const findings = s.report.flatMap((f, i) => {
    const when = expr(ctx, [...path, 'report', i, 'when'], f.when);
    const say = tpl(ctx, [...path, 'report', i, 'say'], f.say);
    return when && say ? [{ when, say, issue: f.issue ?? issueOf(f.say) }] : [];
  });
  const none = s.none === undefined ? undefined : tpl(ctx, [...path, 'none'], s.none);
  if (!title) return undefined;
  return {
    kind: 'report',
    id: s.id,
    title,
    ...(s.note !== undefined ? { note: s.note } : {}),
    findings,
    ...(none ? { none } : {}),
  };
}

/** A finding without `issue:` is named by the start of what it says, up to its first colon. */
function issueOf(say: string): string {
  const head =
    say
      .replace(/\{[^}]*\}/g, '…')
      .split(/: /)[0]
      ?.trim() ?? say;
  return head.length > 60 ? `${head.slice(0, 59)}…` : head;
}

function common(ctx: Ctx, path: Path, s: RunStepYaml | z.infer<typeof PollStepSchema>) {
  const env = envBindings(ctx, [...path, 'env'], s.env);
  for (const b of env) ctx.known.add(b.name);
  const title = tpl(ctx, [...path, 'title'], s.title);
  const scope = scopeOf(ctx, [...path, 'scope'], s.scope);
  return { env, title, scope };
}

function finishCommon(ctx: Ctx, path: Path, s: RunStepYaml | z.infer<typeof PollStepSchema>) {
  const capture: [string, CompiledExpr][] = [];
  // Each capture is visible to the captures after it, this step's expect/decide and every later step.
  for (const [name, source] of Object.entries(s.capture ?? {})) {
    const e = expr(ctx, [...path, 'capture', name], source, OUTPUT_NAMES);
    if (e) capture.push([name, e]);
    ctx.known.add(name);
  }
  const expectThat =
    s.expect === undefined ? undefined : expr(ctx, [...path, 'expect'], s.expect, OUTPUT_NAMES);
  const expectMessage =
    s.expect_message === undefined
      ? undefined
      : tpl(ctx, [...path, 'expect_message'], s.expect_message, OUTPUT_NAMES);
  const decide = decisions(ctx, [...path, 'decide'], s.decide);
  const summary =
    s.summary === undefined ? undefined : tpl(ctx, [...path, 'summary'], s.summary, OUTPUT_NAMES);
  return {
    capture,
    ...(summary ? { summary } : {}),
    ...(expectThat
      ? { expect: { that: expectThat, ...(expectMessage ? { message: expectMessage } : {}) } }
      : {}),
    decide,
  };
}

function runStep(ctx: Ctx, path: Path, raw: unknown): RunStep | undefined {
  const parsed = RunStepSchema.safeParse(raw);
  if (!parsed.success) {
    ctx.problems.addZod(path, parsed.error);
    return undefined;
  }
  const s = parsed.data;
  checkSensitiveParse(ctx, [...path, 'parse'], s.parse, s.sensitive);
  for (const [i, g] of (s.guard ?? []).entries()) {
    checkSensitiveParse(ctx, [...path, 'guard', i, 'parse'], g.parse, s.sensitive);
  }
  if (s.verify) checkSensitiveParse(ctx, [...path, 'verify', 'parse'], s.verify.parse, s.sensitive);
  const { env, title, scope } = common(ctx, path, s);
  const guard: GuardCheck[] = (s.guard ?? []).flatMap((g, i) => {
    const p = [...path, 'guard', i];
    const skipWhen = expr(ctx, [...p, 'skip_when'], g.skip_when, OUTPUT_NAMES);
    const say = tpl(ctx, [...p, 'say'], g.say, OUTPUT_NAMES);
    return skipWhen && say ? [{ command: command(ctx, s.sensitive, g), skipWhen, say }] : [];
  });
  const approval = s.approval && {
    summary: tpl(ctx, [...path, 'approval', 'summary'], s.approval.summary),
    targets: s.approval.targets.map((t, i) => tpl(ctx, [...path, 'approval', 'targets', i], t)),
    evidence: s.approval.evidence.map((t, i) => tpl(ctx, [...path, 'approval', 'evidence', i], t)),
  };
  const verify = s.verify && {
    command: command(ctx, s.sensitive, s.verify),
    tookEffect: expr(ctx, [...path, 'verify', 'took_effect'], s.verify.took_effect, VERIFY_NAMES),
    say: tpl(ctx, [...path, 'verify', 'say'], s.verify.say, VERIFY_NAMES),
    checkByHand: tpl(ctx, [...path, 'verify', 'check_by_hand'], s.verify.check_by_hand, VERIFY_NAMES),
  };
  const rest = finishCommon(ctx, path, s);
  if (!title) return undefined;
  return {
    kind: 'run',
    id: s.id,
    title,
    ...(s.note !== undefined ? { note: s.note } : {}),
    ...(scope ? { scope } : {}),
    env,
    command: command(ctx, s.sensitive, s),
    destructive: s.destructive,
    ...(approval?.summary
      ? {
          approval: {
            summary: approval.summary,
            targets: approval.targets.filter((t): t is CompiledTemplate => t !== undefined),
            evidence: approval.evidence.filter((t): t is CompiledTemplate => t !== undefined),
            quorum: s.approval?.quorum ?? 1,
          },
        }
      : {}),
    guard,
    tools: toolsIn(
      scope?.preamble ?? '',
      s.run,
      ...(s.guard ?? []).map((g) => g.run),
      ...(s.verify ? [s.verify.run] : []),
    ),
    ...(verify?.tookEffect && verify.say && verify.checkByHand
      ? {
          verify: {
            command: verify.command,
            tookEffect: verify.tookEffect,
            say: verify.say,
            checkByHand: verify.checkByHand,
            afterSend: !s.destructive || s.verify?.after_send === true,
          },
        }
      : {}),
    ...rest,
  };
}

function pollStep(ctx: Ctx, path: Path, raw: unknown): PollStep | undefined {
  const parsed = PollStepSchema.safeParse(raw);
  if (!parsed.success) {
    ctx.problems.addZod(path, parsed.error);
    return undefined;
  }
  const s = parsed.data;
  const p = s.poll;
  checkSensitiveParse(ctx, [...path, 'poll', 'parse'], p.parse, s.sensitive);
  const { env, title, scope } = common(ctx, path, s);
  const pp = [...path, 'poll'];
  const until = expr(ctx, [...pp, 'until'], p.until, OUTPUT_NAMES);
  const failWhen =
    p.fail_when === undefined ? undefined : expr(ctx, [...pp, 'fail_when'], p.fail_when, OUTPUT_NAMES);
  const failMessage =
    p.fail_message === undefined
      ? undefined
      : tpl(ctx, [...pp, 'fail_message'], p.fail_message, OUTPUT_NAMES);
  const progress =
    p.progress === undefined ? undefined : tpl(ctx, [...pp, 'progress'], p.progress, OUTPUT_NAMES);
  const exhausted = tpl(ctx, [...pp, 'exhausted'], p.exhausted, OUTPUT_NAMES);
  const rest = finishCommon(ctx, path, s);
  if (!title || !until || !exhausted) return undefined;
  return {
    kind: 'poll',
    id: s.id,
    title,
    ...(s.note !== undefined ? { note: s.note } : {}),
    ...(scope ? { scope } : {}),
    env,
    command: command(ctx, s.sensitive, p),
    tools: toolsIn(scope?.preamble ?? '', p.run),
    attempts: p.attempts,
    everyMs: parseDuration(p.every),
    firstAfterMs: p.first_after === undefined ? 0 : parseDuration(p.first_after),
    until,
    ...(failWhen ? { failWhen: { that: failWhen, ...(failMessage ? { message: failMessage } : {}) } } : {}),
    ...(progress ? { progress } : {}),
    exhausted,
    ...rest,
  };
}

function forEachStep(ctx: Ctx, path: Path, raw: unknown): ForEachStep | undefined {
  const parsed = ForEachStepSchema.safeParse(raw);
  if (!parsed.success) {
    ctx.problems.addZod(path, parsed.error);
    return undefined;
  }
  const s = parsed.data;
  const items = expr(ctx, [...path, 'for_each'], s.for_each);
  const title = tpl(ctx, [...path, 'title'], s.title);
  const empty = s.empty === undefined ? undefined : tpl(ctx, [...path, 'empty'], s.empty);
  // The loop variable and loop env exist only inside the loop.
  const inner: Ctx = { ...ctx, known: new Set([...ctx.known, s.as]), inLoop: true };
  const env = envBindings(inner, [...path, 'env'], s.env);
  for (const b of env) inner.known.add(b.name);
  const label = s.label === undefined ? undefined : tpl(inner, [...path, 'label'], s.label);
  const steps = s.steps.flatMap((rawStep, i) => {
    const step = leafStep(inner, [...path, 'steps', i], rawStep);
    return step ? [step] : [];
  });
  if (!items || !title) return undefined;
  return {
    kind: 'for_each',
    id: s.id,
    title,
    ...(s.note !== undefined ? { note: s.note } : {}),
    items,
    as: s.as,
    ...(label ? { label } : {}),
    ...(empty ? { empty } : {}),
    env,
    steps,
  };
}

function allIds(steps: readonly Step[]): string[] {
  return steps.flatMap((s) => (s.kind === 'for_each' ? [s.id, ...s.steps.map((n) => n.id)] : [s.id]));
}

/** Every step that runs a remote command, loops flattened. */
export function leafSteps(steps: readonly Step[]): LeafStep[] {
  return steps.flatMap((s) => (s.kind === 'for_each' ? s.steps : s.kind === 'report' ? [] : [s]));
}

export function parseRunbook(
  file: string,
  text: string,
  scopes: ReadonlyMap<string, Scope>,
  knownErrors: readonly KnownError[] = [],
): Runbook {
  const { problems, data } = readYaml(file, text);
  const parsed = RunbookFileSchema.safeParse(data);
  if (!parsed.success) {
    problems.addZod([], parsed.error);
    problems.throwIfAny();
  }
  const rb = parsed.data as z.infer<typeof RunbookFileSchema>;
  const expected = basename(file).replace(/\.ya?ml$/, '');
  if (rb.name !== expected)
    problems.add(['name'], `is '${rb.name}' but the file is ${basename(file)}: they must match`);

  const ctx: Ctx = {
    problems,
    scopes,
    knownErrors,
    known: new Set(GLOBAL_NAMES),
    inLoop: false,
  };
  const steps: Step[] = rb.steps.flatMap((raw, i) => {
    const path: Path = ['steps', i];
    const kind = stepKind(raw);
    const step =
      kind === 'for_each'
        ? forEachStep(ctx, path, raw)
        : kind === 'report'
          ? reportStep(ctx, path, raw)
          : leafStep(ctx, path, raw);
    return step ? [step] : [];
  });

  const ids = allIds(steps);
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) problems.add(['steps'], `step id '${id}' is used twice: ids must be unique`);
    seen.add(id);
  }
  // Only forward jumps: a runbook can never loop back and re-run a destructive step.
  steps.forEach((step, i) => {
    if (step.kind === 'for_each' || step.kind === 'report') return;
    step.decide.forEach((d, j) => {
      if (d.outcome?.kind !== 'goto') return;
      const target = d.outcome.target;
      const at = steps.findIndex((s) => s.id === target);
      if (at === -1) problems.add(['steps', i, 'decide', j, 'goto'], `no top-level step has id '${target}'`);
      else if (at <= i)
        problems.add(
          ['steps', i, 'decide', j, 'goto'],
          `'${target}' is not after this step: only forward jumps are allowed`,
        );
    });
  });
  if (rb.read_only) {
    for (const s of leafSteps(steps)) {
      if (s.kind === 'run' && s.destructive)
        problems.add(['read_only'], `is true but step '${s.id}' is destructive`);
    }
  }
  const params = rb.params.map((p, i) => {
    const scope = p.pick && scopeOf(ctx, ['params', i, 'pick', 'scope'], p.pick.scope);
    return {
      name: p.name,
      type: p.type as ParamType,
      env: p.env,
      description: p.description,
      ...(p.pick !== undefined
        ? {
            pick: {
              title: p.pick.title,
              ...(scope !== undefined ? { scope } : {}),
              script: p.pick.run,
              timeoutMs: p.pick.timeout * 1000,
            },
          }
        : {}),
    };
  });

  const leaves = leafSteps(steps);
  const tools = JUMPHOST_TOOLS.filter((t) => leaves.some((s) => s.tools.includes(t)));
  const destructive = leaves.find((s) => s.kind === 'run' && s.destructive);
  const unlisted = tools.filter((t) => !rb.requires.includes(t));
  // A runbook that can change the cloud must not start, then stop half-way at a step whose tool is missing.
  if (destructive !== undefined && unlisted.length > 0) {
    problems.add(
      ['requires'],
      `must list ${unlisted.join(', ')}: step '${destructive.id}' is destructive, so the runbook refuses to start without every tool its steps call rather than stop half-way (write requires: [${JUMPHOST_TOOLS.filter((t) => tools.includes(t) || rb.requires.includes(t)).join(', ')}])`,
    );
  }
  problems.throwIfAny();
  const digest = createHash('sha256').update(text);
  for (const name of [...new Set(leaves.flatMap((s) => (s.scope ? [s.scope.name] : [])))].sort()) {
    digest.update(`\0scope ${name}\0${scopes.get(name)?.preamble ?? ''}`);
  }
  return {
    name: rb.name,
    summary: rb.summary,
    source: rb.source,
    readOnly: rb.read_only,
    exclusive: leaves.some((s) => s.kind === 'run' && s.destructive),
    file,
    text,
    digest: digest.digest('hex'),
    params,
    steps,
    requires: JUMPHOST_TOOLS.filter((t) => rb.requires.includes(t)),
    tools,
  };
}

/** Loads and validates every runbook in `dir` at start-up: one bad file refuses them all. */
export async function loadRunbooks(dir: string): Promise<RunbookSet> {
  const scopesPath = join(dir, SCOPES_FILE);
  const scopesText = await readFile(scopesPath, 'utf8');
  const scopes = parseScopes(scopesPath, scopesText);
  const knownErrors = parseKnownErrors(scopesPath, scopesText);
  const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f) && f !== SCOPES_FILE).sort();
  const runbooks = new Map<string, Runbook>();
  const errors: RunbookError[] = [];
  for (const f of files) {
    const path = join(dir, f);
    try {
      const rb = parseRunbook(path, await readFile(path, 'utf8'), scopes, knownErrors);
      runbooks.set(rb.name, rb);
    } catch (err) {
      if (err instanceof RunbookError) errors.push(err);
      else throw err;
    }
  }
  const [first, ...more] = errors;
  if (first) {
    if (more.length === 0) throw first;
    throw new RunbookError(
      dir,
      errors.flatMap((e) => [`${e.file}:`, ...e.issues.map((i) => `  ${i}`)]),
    );
  }
  return { scopes, knownErrors, runbooks };
}
