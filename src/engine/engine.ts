import { setTimeout as sleep } from 'node:timers/promises';
import { magnumNamespace, type SiteProfile, siteEnv } from '../config/site.js';
import { asCodedError, ParamError } from '../errors.js';
import {
  type CompiledTemplate,
  evaluateBoolean,
  evaluateExpr,
  renderCompiledTemplate,
} from '../expr/index.js';
import { createLineRedactor, redactText } from '../redact.js';
import { leafSteps } from '../runbook/load.js';
import type {
  Command,
  EnvBinding,
  ForEachStep,
  LeafStep,
  PollStep,
  ReportStep,
  Runbook,
  RunStep,
  Scope,
} from '../runbook/model.js';
import { checkParamValue } from '../runbook/params.js';
import type { ExecResult, RemoteExecutor } from '../ssh/types.js';
import type { ApprovalPort, ApprovalRequest, EventSink, RunStatus, StepRef, StepStatus } from './events.js';
import { parseOutput } from './output.js';
import { displayCommand, withPreamble } from './script.js';

export interface RunOptions {
  readonly runId: string;
  readonly runbook: Runbook;
  /** Already validated with validateParams. */
  readonly params: Readonly<Record<string, string>>;
  readonly site: SiteProfile;
  readonly requestedBy: string;
  readonly executor: RemoteExecutor;
  readonly approvals: ApprovalPort;
  readonly emit: EventSink;
  readonly signal?: AbortSignal;
}

export interface RunOutcome {
  readonly status: RunStatus;
  readonly message: string;
  readonly failedStep?: string;
}

/** Ends the run early; thrown from deep inside a step and caught once at the top. */
class Stop extends Error {
  constructor(
    readonly status: Exclude<RunStatus, 'succeeded'> | 'finished',
    message: string,
    readonly stepId?: string,
  ) {
    super(message);
  }
}

type Vars = Record<string, unknown>;

interface Frame {
  readonly ref: StepRef;
  readonly vars: Vars;
  readonly env: Record<string, string>;
}

/**
 * Runs one runbook, top to bottom, on one executor. Every remote command gets its scope preamble,
 * its environment as quoted values, and a closed stdin; every destructive command is preceded by a
 * read-back guard, an approval, and the guard again immediately before it runs.
 */
export async function runRunbook(opts: RunOptions): Promise<RunOutcome> {
  const started = Date.now();
  const { runbook, site } = opts;
  const signal = opts.signal ?? new AbortController().signal;
  const total = runbook.steps.length;
  const vars: Vars = { site: publicSite(site), params: { ...opts.params } };

  const finish = async (status: RunStatus, message: string, failedStep?: string): Promise<RunOutcome> => {
    const safe = redactText(message);
    await opts.emit({
      type: 'run.finished',
      status,
      message: safe,
      durationMs: Date.now() - started,
      ...(failedStep ? { failedStep } : {}),
    });
    return { status, message: safe, ...(failedStep ? { failedStep } : {}) };
  };

  await opts.emit({
    type: 'run.started',
    runId: opts.runId,
    runbook: runbook.name,
    summary: runbook.summary,
    site: site.name,
    params: opts.params,
    requestedBy: opts.requestedBy,
    steps: runbook.steps.map((s) => ({
      id: s.id,
      title: renderOrSource(s.title, vars),
      destructive: leafSteps([s]).some(isDestructive),
    })),
  });

  try {
    const baseEnv = await preflight(opts, signal);
    for (const p of runbook.params) baseEnv[p.env] = opts.params[p.name] as string;

    let i = 0;
    while (i < runbook.steps.length) {
      checkCancelled(signal);
      const step = runbook.steps[i] as (typeof runbook.steps)[number];
      const ref: StepRef = { stepId: step.id, index: i + 1, total };
      const frame: Frame = { ref, vars, env: baseEnv };
      const jump =
        step.kind === 'for_each'
          ? await runLoop(opts, frame, step, signal)
          : step.kind === 'report'
            ? await runReport(opts, frame, step)
            : await runLeaf(opts, frame, step, signal);
      i = jump === undefined ? i + 1 : runbook.steps.findIndex((s) => s.id === jump);
    }
    return await finish('succeeded', `${runbook.name} finished: every step passed`);
  } catch (err) {
    if (err instanceof Stop) {
      if (err.status === 'finished') return await finish('succeeded', err.message);
      return await finish(err.status, err.message, err.stepId);
    }
    if (signal.aborted) return await finish('cancelled', 'cancelled by the operator');
    const coded = asCodedError(err);
    return await finish('failed', `${coded.message} [${coded.code}]`);
  }
}

function isDestructive(step: LeafStep): boolean {
  return step.kind === 'run' && step.destructive;
}

/** The site profile as expressions see it: the jumphost's connection details stay out. */
function publicSite(site: SiteProfile): Vars {
  const { jumphost: _omit, ...rest } = site;
  return { ...rest, magnum_ns: magnumNamespace(site) };
}

function checkCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new Stop('cancelled', 'cancelled by the operator');
}

/** Learns the jumphost's $HOME (site paths are written ~/...) and checks the CLIs the runbook needs. */
async function preflight(opts: RunOptions, signal: AbortSignal): Promise<Record<string, string>> {
  const text = leafSteps(opts.runbook.steps)
    .map((s) => `${s.scope?.preamble ?? ''}\n${s.command.script}`)
    .join('\n');
  const tools = ['openstack', 'kubectl', 'ssh'].filter((t) => new RegExp(`\\b${t}\\b`).test(text));
  const result = await opts.executor.exec({
    script:
      'printf "%s\\n" "$HOME"; for t in $CAPI_TOOLS; do command -v "$t" >/dev/null 2>&1 || echo "missing $t"; done',
    env: { CAPI_TOOLS: tools.join(' ') },
    timeoutMs: 30_000,
    signal,
  });
  if (result.cancelled) throw new Stop('cancelled', 'cancelled by the operator');
  const lines = result.stdout.split('\n').filter((l) => l !== '');
  const home = lines[0] ?? '';
  const missing = lines.slice(1).map((l) => l.replace(/^missing /, ''));
  if (result.code !== 0 || !home.startsWith('/')) {
    throw new Stop(
      'failed',
      `preflight on the jumphost failed (exit ${result.code}): ${redactText(result.stderr.trim())}`,
    );
  }
  if (missing.length > 0) {
    throw new Stop(
      'failed',
      `the jumphost lacks ${missing.join(', ')} on its PATH: install it or fix the login PATH`,
    );
  }
  await opts.emit({ type: 'preflight', home, tools });
  const env = siteEnv(opts.site);
  // Site paths are written ~/...; a quoted value would keep the ~ literally, so resolve it here.
  for (const [k, v] of Object.entries(env)) if (v.startsWith('~/')) env[k] = `${home}/${v.slice(2)}`;
  return env;
}

/** Titles may name values only a later step captures; until then the outline shows the template. */
function renderOrSource(t: CompiledTemplate, scope: Vars): string {
  try {
    return render(t, scope);
  } catch {
    return t.source;
  }
}

function render(t: CompiledTemplate, scope: Vars): string {
  return redactText(renderCompiledTemplate(t, scope));
}

/**
 * Values taken from CLI output are held to the same patterns as chat parameters before they reach a
 * command: a malformed UUID in `server list` output stops the step instead of reaching `server delete`.
 * A list becomes space-separated validated values.
 */
function bindEnv(
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

async function runLoop(
  opts: RunOptions,
  frame: Frame,
  step: ForEachStep,
  signal: AbortSignal,
): Promise<undefined> {
  const started = Date.now();
  const finished = (status: StepStatus, message?: string) =>
    opts.emit({
      ...frame.ref,
      type: 'step.finished',
      status,
      exitCode: null,
      signal: null,
      durationMs: Date.now() - started,
      ...(message !== undefined ? { message } : {}),
    });
  await opts.emit({
    ...frame.ref,
    type: 'step.started',
    kind: 'for_each',
    title: render(step.title, frame.vars),
    destructive: step.steps.some(isDestructive),
  });
  try {
    const items = evaluateExpr(step.items, frame.vars);
    if (!Array.isArray(items)) {
      throw new Stop('failed', `${step.id}: for_each \`${step.items.source}\` is not a list`, step.id);
    }
    if (items.length === 0 && step.empty) {
      await opts.emit({ ...frame.ref, type: 'decision', message: render(step.empty, frame.vars) });
    }
    for (const [n, item] of items.entries()) {
      checkCancelled(signal);
      const scope: Vars = { ...frame.vars, [step.as]: item };
      const env = { ...frame.env };
      bindEnv(step.env, scope, env, step.id);
      Object.assign(scope, pickEnv(env, step.env));
      const label = step.env.map((b) => env[b.name]).join(' ') || `#${n + 1}`;
      for (const inner of step.steps) {
        const ref: StepRef = {
          ...frame.ref,
          stepId: `${step.id}/${inner.id}`,
          iteration: { n: n + 1, of: items.length, label },
        };
        await runLeaf(opts, { ref, vars: scope, env }, inner, signal);
      }
      // Captures made inside an iteration stay visible to later top-level steps (the last one wins).
      for (const [k, v] of Object.entries(scope)) {
        if (k !== step.as && !step.env.some((b) => b.name === k)) frame.vars[k] = v;
      }
    }
  } catch (err) {
    if (err instanceof Stop && err.status === 'finished') {
      await finished('ok');
    } else {
      await finished(
        err instanceof Stop ? stepStatusOf(err) : 'failed',
        err instanceof Error ? redactText(err.message) : undefined,
      );
    }
    throw err;
  }
  await finished('ok');
  return undefined;
}

async function runReport(opts: RunOptions, frame: Frame, step: ReportStep): Promise<undefined> {
  const started = Date.now();
  await opts.emit({
    ...frame.ref,
    type: 'step.started',
    kind: 'report',
    title: render(step.title, frame.vars),
    destructive: false,
  });
  const found = step.findings.filter((f) => evaluateBoolean(f.when, frame.vars));
  for (const f of found)
    await opts.emit({ ...frame.ref, type: 'decision', message: render(f.say, frame.vars) });
  if (found.length === 0 && step.none)
    await opts.emit({ ...frame.ref, type: 'decision', message: render(step.none, frame.vars) });
  await opts.emit({
    ...frame.ref,
    type: 'step.finished',
    status: 'ok',
    exitCode: null,
    signal: null,
    durationMs: Date.now() - started,
    message: `${found.length} finding(s)`,
  });
  return undefined;
}

/** Runs a run/poll step; returns the id to jump to when a decision says goto. */
async function runLeaf(
  opts: RunOptions,
  frame: Frame,
  step: LeafStep,
  signal: AbortSignal,
): Promise<string | undefined> {
  const started = Date.now();
  const ref = frame.ref;
  const scope: Vars = { ...frame.vars };
  const env = { ...frame.env };
  const finished = async (status: StepStatus, result: ExecResult | undefined, message?: string) =>
    opts.emit({
      ...ref,
      type: 'step.finished',
      status,
      exitCode: result?.code ?? null,
      signal: result?.signal ?? null,
      durationMs: Date.now() - started,
      ...(message !== undefined ? { message: redactText(message) } : {}),
    });

  let title = step.title.source;
  let bindError: unknown;
  try {
    bindEnv(step.env, scope, env, ref.stepId);
    Object.assign(scope, pickEnv(env, step.env));
    title = render(step.title, scope);
  } catch (err) {
    bindError = err;
  }
  await opts.emit({ ...ref, type: 'step.started', kind: step.kind, title, destructive: isDestructive(step) });

  try {
    if (bindError !== undefined) throw bindError;
    let result: ExecResult;
    let outScope: Vars;
    if (step.kind === 'poll') {
      ({ result, outScope } = await poll(opts, ref, step, scope, env, signal));
    } else {
      if (step.destructive) {
        const skip = await guard(opts, ref, step, scope, env, signal);
        if (skip !== undefined) {
          await finished('skipped', undefined, skip);
          return undefined;
        }
        await approve(opts, ref, step, scope, env, signal);
        // Verify-then-act: state may have moved while a human was deciding.
        const skipNow = await guard(opts, ref, step, scope, env, signal);
        if (skipNow !== undefined) {
          await finished('skipped', undefined, skipNow);
          return undefined;
        }
      }
      result = await execChecked(opts, ref, step.command, step.scope, env, signal);
      outScope = outputScope(scope, step.command, result);
    }

    for (const [name, e] of step.capture) {
      const value = evaluateExpr(e, outScope);
      outScope[name] = value;
      frame.vars[name] = value;
    }
    if (step.expect && !evaluateBoolean(step.expect.that, outScope)) {
      const why = step.expect.message
        ? render(step.expect.message, outScope)
        : `expected ${step.expect.that.source}`;
      throw new Stop('failed', `${ref.stepId}: ${why}`, ref.stepId);
    }
    for (const d of step.decide) {
      if (!evaluateBoolean(d.when, outScope)) continue;
      if (d.say) await opts.emit({ ...ref, type: 'decision', message: render(d.say, outScope) });
      if (d.outcome?.kind === 'fail')
        throw new Stop('failed', render(d.outcome.message, outScope), ref.stepId);
      await finished('ok', result);
      if (d.outcome?.kind === 'goto') return d.outcome.target;
      if (d.outcome?.kind === 'finish') throw new Stop('finished', render(d.outcome.message, outScope));
      return undefined;
    }
    await finished('ok', result);
    return undefined;
  } catch (err) {
    if (err instanceof Stop) {
      if (err.status !== 'finished') await finished(stepStatusOf(err), undefined, err.message);
      throw err;
    }
    const message = `${ref.stepId}: ${asCodedError(err).message}`;
    await finished('failed', undefined, message);
    throw new Stop('failed', message, ref.stepId);
  }
}

function stepStatusOf(stop: Stop): StepStatus {
  if (stop.status === 'denied') return 'denied';
  if (stop.status === 'cancelled') return 'cancelled';
  return 'failed';
}

function pickEnv(env: Record<string, string>, bindings: readonly EnvBinding[]): Vars {
  return Object.fromEntries(bindings.map((b) => [b.name, env[b.name]]));
}

function outputScope(scope: Vars, command: Command, result: ExecResult): Vars {
  const failed = result.code !== 0;
  return {
    ...scope,
    stdout: result.stdout.replace(/\n+$/, ''),
    stderr: result.stderr.replace(/\n+$/, ''),
    exit_code: result.code,
    // A failed command's output is an error message, not data: expressions see null.
    out: failed ? null : parseOutput(command.parse, result.stdout),
  };
}

async function execChecked(
  opts: RunOptions,
  ref: StepRef,
  command: Command,
  scope: Scope | undefined,
  env: Record<string, string>,
  signal: AbortSignal,
): Promise<ExecResult> {
  const redact = { stdout: createLineRedactor(), stderr: createLineRedactor() };
  const pending: Promise<void>[] = [];
  const result = await opts.executor.exec({
    script: withPreamble(scope, command.script),
    env,
    timeoutMs: command.timeoutMs,
    signal,
    onLine: (stream, line) => {
      pending.push(
        Promise.resolve(opts.emit({ ...ref, type: 'step.output', stream, line: redact[stream](line) })),
      );
    },
  });
  await Promise.all(pending);
  if (result.cancelled)
    throw new Stop(
      'cancelled',
      `cancelled by the operator during ${ref.stepId}; its remote process was killed`,
    );
  if (result.timedOut) {
    throw new Stop(
      'failed',
      `${ref.stepId}: timed out after ${command.timeoutMs / 1000}s; the remote process group was killed`,
      ref.stepId,
    );
  }
  if (result.code !== 0 && !command.allowFailure) {
    const tail =
      result.stderr.trim().split('\n').slice(-3).join(' | ') ||
      result.stdout.trim().split('\n').slice(-3).join(' | ');
    throw new Stop(
      'failed',
      `${ref.stepId}: exited ${result.code ?? `by signal ${result.signal}`}: ${redactText(tail)}`,
      ref.stepId,
    );
  }
  return result;
}

async function poll(
  opts: RunOptions,
  ref: StepRef,
  step: PollStep,
  scope: Vars,
  env: Record<string, string>,
  signal: AbortSignal,
): Promise<{ result: ExecResult; outScope: Vars }> {
  const scale = opts.site.timing.scale;
  let last: Vars = scope;
  for (let attempt = 1; attempt <= step.attempts; attempt++) {
    const wait = attempt === 1 ? step.firstAfterMs : step.everyMs;
    if (wait > 0) await pause(wait * scale, signal);
    const result = await execChecked(opts, ref, step.command, step.scope, env, signal);
    const outScope = outputScope(scope, step.command, result);
    last = outScope;
    const summary = step.progress ? render(step.progress, outScope) : lastLine(result);
    await opts.emit({ ...ref, type: 'poll.attempt', attempt, of: step.attempts, summary });
    if (step.failWhen && evaluateBoolean(step.failWhen.that, outScope)) {
      const why = step.failWhen.message
        ? render(step.failWhen.message, outScope)
        : `stopped: ${step.failWhen.that.source}`;
      throw new Stop('failed', `${ref.stepId}: ${why}`, ref.stepId);
    }
    if (evaluateBoolean(step.until, outScope)) return { result, outScope };
  }
  throw new Stop('failed', `${ref.stepId}: ${render(step.exhausted, last)}`, ref.stepId);
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    throw new Stop('cancelled', 'cancelled by the operator');
  }
}

function lastLine(result: ExecResult): string {
  const lines = `${result.stdout}\n${result.stderr}`.split('\n').filter((l) => l.trim() !== '');
  return redactText(lines.at(-1) ?? `exit ${result.code}`);
}

/** Runs the read-back checks; returns why the step is to be skipped, or undefined to go on. */
async function guard(
  opts: RunOptions,
  ref: StepRef,
  step: RunStep,
  scope: Vars,
  env: Record<string, string>,
  signal: AbortSignal,
): Promise<string | undefined> {
  for (const check of step.guard) {
    const result = await execChecked(opts, ref, check.command, step.scope, env, signal);
    const outScope = outputScope(scope, check.command, result);
    if (evaluateBoolean(check.skipWhen, outScope)) {
      const message = render(check.say, outScope);
      await opts.emit({ ...ref, type: 'guard.skipped', message });
      return message;
    }
  }
  return undefined;
}

async function approve(
  opts: RunOptions,
  ref: StepRef,
  step: RunStep,
  scope: Vars,
  env: Record<string, string>,
  signal: AbortSignal,
): Promise<void> {
  const a = step.approval as NonNullable<RunStep['approval']>;
  const request: ApprovalRequest = {
    runId: opts.runId,
    runbook: opts.runbook.name,
    step: ref,
    title: render(step.title, scope),
    summary: render(a.summary, scope),
    commands: [displayCommand(step.scope, step.command.script, env)],
    targets: a.targets.map((t) => render(t, scope)),
    evidence: a.evidence.map((t) => render(t, scope)),
    requestedBy: opts.requestedBy,
  };
  await opts.emit({ ...ref, type: 'approval.requested', request });
  const decision = await opts.approvals.request(request, signal);
  await opts.emit({ ...ref, type: 'approval.decided', decision });
  checkCancelled(signal);
  if (!decision.approved) {
    const why =
      decision.reason === 'expired'
        ? 'the approval expired (counts as a denial)'
        : `denied by ${decision.by}${decision.note ? ` (${decision.note})` : ''}`;
    throw new Stop('denied', `${ref.stepId}: ${why}; nothing destructive was run`, ref.stepId);
  }
}

export function validateParams(runbook: Runbook, args: readonly string[]): Record<string, string> {
  if (args.length !== runbook.params.length) {
    const usage = [runbook.name, ...runbook.params.map((p) => p.name.toUpperCase())].join(' ');
    throw new ParamError(
      runbook.params[args.length]?.name ?? 'arguments',
      `${runbook.name} takes ${runbook.params.length} argument(s), got ${args.length}. Usage: ${usage}. Nothing was run.`,
    );
  }
  const out: Record<string, string> = {};
  runbook.params.forEach((p, i) => {
    out[p.name] = checkParamValue(p.name, p.type, args[i]);
  });
  return out;
}
