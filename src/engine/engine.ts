import { setTimeout as sleep } from 'node:timers/promises';
import { approvalQuorum } from '../config/site.js';
import { AttemptOnRecordError, asCodedError, ErrorCode, JumphostAheadError } from '../errors.js';
import { ExprEvalError, evaluateBoolean, evaluateExpr } from '../expr/index.js';
import { createLineRedactor, REDACTED, redactText } from '../redact.js';
import { leafSteps } from '../runbook/load.js';
import type {
  Command,
  ForEachStep,
  LeafStep,
  PollStep,
  ReportStep,
  RunStep,
  Scope,
} from '../runbook/model.js';
import type { AttemptMarker, ExecResult } from '../ssh/types.js';
import { CapturedSecrets, holdsMarker } from './captured-secrets.js';
import { cancelMessage, fencedBy, Pause, Stop, Suspend, stepStatusOf } from './control.js';
import { actionDigest } from './digest.js';
import {
  ApprovalPending,
  type ApprovalPort,
  ApprovalRejected,
  type ApprovalRequest,
  type AttemptRecord,
  type EventSink,
  type RunStatus,
  type StepRef,
  type StepStatus,
} from './events.js';
import {
  NOTHING_UNOBSERVED,
  readsUnobserved,
  type Unobserved,
  undecidedBy,
  undecidedFindings,
  unobservable,
} from './observability.js';
import {
  type Checkpoint,
  type FinishedRun,
  RunInterrupted,
  type RunOptions,
  type RunOutcome,
} from './outcome.js';
import { preflight } from './preflight.js';
import {
  attemptVars,
  bindEnv,
  commandFailure,
  isDestructive,
  lastLine,
  outputScope,
  pickEnv,
  publicSite,
  render,
  renderNames,
  renderOrSource,
  type Vars,
} from './scope.js';
import { displayCommand, withPreamble } from './script.js';
import { itemKey } from './slot.js';
import { exitAccepted, stopOnKnownError } from './traps.js';
import { checkByHandUnread, sentPhrase, unknownOutcome } from './unknown-outcome.js';

/**
 * Runs one runbook, top to bottom, on one executor. Every remote command gets its scope preamble,
 * its environment as quoted values, and a closed stdin; every destructive command is preceded by a
 * read-back guard, an approval, and the guard again immediately before it runs.
 */
export function runRunbook(opts: RunOptions): Promise<RunOutcome> {
  return new Interpreter(opts).run();
}

/** For callers whose approval port always answers in-process (terminal, tests): no suspension. */
export async function runToEnd(opts: RunOptions): Promise<FinishedRun> {
  const outcome = await runRunbook(opts);
  if (outcome.status === 'suspended' || outcome.status === 'interrupted' || outcome.status === 'fenced') {
    throw new Error(`run ${opts.runId} stopped (${outcome.status}), but this caller cannot resume it`);
  }
  return outcome;
}

/**
 * Why a step failed, for the thread. A sensitive step's output must not leak through its failure: an
 * expression's error quotes the values it met, a parse error the text's first lines, so those say only what
 * failed. Errors the product words itself (a refused kubeconfig, an SSH failure) carry no output and stay.
 */
function failureOf(step: LeafStep, err: unknown): string {
  const coded = asCodedError(err);
  if (!step.command.sensitive) return coded.message;
  if (err instanceof ExprEvalError) {
    return `\`${err.source}\` could not be evaluated on the output (not shown: the step is sensitive)`;
  }
  if (coded.code === ErrorCode.OutputParse) {
    return `the command's output is not valid ${step.command.parse} (not shown: the step is sensitive)`;
  }
  return coded.message;
}

function lostSecretStop(stepId: string, what: string, lost: readonly string[]): Stop {
  return new Stop(
    'failed',
    `${stepId}: ${what} would carry a secret captured before this run moved to another agent (${lost.join(', ')}); captured secrets are never stored in Redis, so it is lost: start the run again`,
    stepId,
  );
}

class Interpreter {
  private readonly signal: AbortSignal;
  private readonly total: number;
  private readonly captured: Vars;
  /** Secrets among the captured values: masked in every event, never stored (see captured-secrets.ts). */
  private readonly secrets = new CapturedSecrets();
  /** Captures restored from a checkpoint that held a secret, which was stored as a marker. */
  private readonly lostSecrets: string[];
  private top: number;
  private loop: Checkpoint['loop'];
  private env: Record<string, string> = {};
  /** What this jumphost cannot show: steps calling a missing tool, and what they would have captured. */
  private unobserved: Unobserved = NOTHING_UNOBSERVED;
  /** When the run was asked for: its duration counts from here, across resumes. */
  private readonly started: number;
  /** Time this call spent waiting for approval decisions (the in-process ports decide while the run waits). */
  private waited = 0;

  constructor(private readonly opts: RunOptions) {
    this.signal = opts.signal ?? new AbortController().signal;
    this.total = opts.runbook.steps.length;
    const cp = opts.resume?.checkpoint;
    this.top = cp?.top ?? 0;
    this.loop = cp?.loop;
    this.captured = { ...(cp?.captured ?? {}) };
    this.lostSecrets = Object.entries(this.captured)
      .filter(([, v]) => holdsMarker(v))
      .map(([k]) => k);
    const requested = opts.requestedAt === undefined ? Number.NaN : Date.parse(opts.requestedAt);
    this.started = Number.isNaN(requested) ? Date.now() : requested;
  }

  /** Every event leaves with the captured secrets masked: they can reach no message, timeline or log. */
  private get emit(): EventSink {
    return (e) => this.opts.emit(this.secrets.maskDeep(e));
  }

  /**
   * A command (or an approval for one) would receive a value that held a secret before a take-over: it was
   * never stored, so the command would get the placeholder. Refused, saying how to go on.
   */
  private refuseLostSecret(ref: StepRef, env: Readonly<Record<string, string>>): void {
    if (this.lostSecrets.length === 0) return;
    const hit = Object.entries(env).find(([, v]) => v.includes(REDACTED));
    if (hit !== undefined) throw lostSecretStop(ref.stepId, hit[0], this.lostSecrets);
  }

  /** What every expression sees: the site, the parameters and everything captured so far. */
  private scope(): Vars {
    return { site: publicSite(this.opts.site), params: { ...this.opts.params }, ...this.captured };
  }

  private async saveCheckpoint(): Promise<void> {
    await this.opts.onCheckpoint?.(this.checkpoint());
    if (this.opts.pauseRequested?.() === true) throw new Pause();
  }

  private checkpoint(): Checkpoint {
    return {
      top: this.top,
      ...(this.loop ? { loop: this.loop } : {}),
      // Secrets never reach Redis: a captured value is stored with them masked and redacted.
      captured: Object.fromEntries(
        Object.entries(this.captured).map(([k, v]) => [k, this.secrets.storable(k, v)]),
      ),
    };
  }

  async run(): Promise<RunOutcome> {
    try {
      return await this.runSteps();
    } catch (err) {
      // A fenced write can fail anywhere, the final run.finished included: stop, write nothing more.
      const fenced = fencedBy(err, this.signal);
      if (fenced) return { status: 'fenced', why: fenced.why };
      throw err;
    }
  }

  private async runSteps(): Promise<RunOutcome> {
    const { runbook } = this.opts;
    if (this.opts.resume) {
      const at = runbook.steps[this.top]?.id ?? 'the end';
      await this.emit({ type: 'run.resumed', reason: this.opts.resume.reason, atStep: at });
    } else {
      await this.emit({
        type: 'run.started',
        runId: this.opts.runId,
        runbook: runbook.name,
        summary: runbook.summary,
        site: this.opts.site.name,
        params: this.opts.params,
        requestedBy: this.opts.requestedBy,
        requestedAt: new Date(this.started).toISOString(),
        steps: runbook.steps.map((s) => ({
          id: s.id,
          title: renderOrSource(s.title, this.scope()),
          destructive: leafSteps([s]).some(isDestructive),
        })),
      });
    }

    try {
      this.env = await this.preflight();
      for (const p of runbook.params) this.env[p.env] = this.opts.params[p.name] as string;
      while (this.top < runbook.steps.length) {
        this.checkCancelled();
        const step = runbook.steps[this.top] as (typeof runbook.steps)[number];
        const ref: StepRef = { stepId: step.id, index: this.top + 1, total: this.total };
        let jump: string | undefined;
        const notObservable = this.unobserved.steps.get(step.id);
        if (notObservable !== undefined && step.kind !== 'report') {
          await this.saveCheckpoint();
          await this.runUnobservable(ref, step, notObservable);
        } else if (step.kind === 'for_each') {
          jump = await this.runLoop(ref, step);
        } else {
          await this.saveCheckpoint();
          jump =
            step.kind === 'report'
              ? await this.runReport(ref, step)
              : await this.runLeaf(ref, step, {}, this.env);
        }
        this.top = jump === undefined ? this.top + 1 : runbook.steps.findIndex((s) => s.id === jump);
      }
      return await this.finish('succeeded', `${runbook.name} finished: every step passed`);
    } catch (err) {
      if (fencedBy(err, this.signal)) throw err;
      if (err instanceof Suspend) {
        return {
          status: 'suspended',
          approvalId: err.approvalId,
          expiresAt: err.expiresAt,
          checkpoint: this.checkpoint(),
        };
      }
      if (err instanceof Pause || this.signal.reason instanceof RunInterrupted) {
        return { status: 'interrupted', checkpoint: this.checkpoint() };
      }
      if (err instanceof Stop) {
        if (err.status === 'finished') return await this.finish('succeeded', err.message);
        return await this.finish(err.status, err.message, err.stepId);
      }
      if (this.signal.aborted) return await this.finish('cancelled', cancelMessage(this.signal));
      const coded = asCodedError(err);
      return await this.finish('failed', `${coded.message} [${coded.code}]`);
    }
  }

  private async finish(status: RunStatus, message: string, failedStep?: string): Promise<FinishedRun> {
    const safe = redactText(message);
    // Unreadable (the store is down): the waits this call saw are still true, if not the whole story.
    const waitingMs = this.opts.waitingMs
      ? await this.opts.waitingMs().catch(() => this.waited)
      : this.waited;
    await this.emit({
      type: 'run.finished',
      status,
      message: safe,
      durationMs: Math.max(0, Date.now() - this.started),
      waitingMs,
      ...(failedStep ? { failedStep } : {}),
    });
    return { status, message: safe, ...(failedStep ? { failedStep } : {}) };
  }

  /** The one step.finished: status, exit code and signal when a command ran, time since `started`. */
  private stepFinished(
    ref: StepRef,
    started: number,
    status: StepStatus,
    result: ExecResult | undefined,
    message: string | undefined,
    summary?: string,
  ): Promise<void> {
    return Promise.resolve(
      this.emit({
        ...ref,
        type: 'step.finished',
        status,
        exitCode: result?.code ?? null,
        signal: result?.signal ?? null,
        durationMs: Date.now() - started,
        ...(message !== undefined ? { message: redactText(message) } : {}),
        ...(summary !== undefined ? { summary } : {}),
      }),
    );
  }

  /**
   * The step's `summary:` for people. A summary that cannot be rendered (a value the output lacked) must not
   * fail a step that passed: it says so instead, for the runbook's author to see.
   */
  private summaryOf(step: LeafStep, scope: Vars): string | undefined {
    if (step.summary === undefined) return undefined;
    try {
      return render(step.summary, scope);
    } catch (err) {
      return redactText(`(summary not shown: ${failureOf(step, err)})`);
    }
  }

  private checkCancelled(): void {
    if (this.signal.aborted) throw new Stop('cancelled', cancelMessage(this.signal));
  }

  private async preflight(): Promise<Record<string, string>> {
    const { home, tools, missing, env } = await preflight(this.opts, this.signal);
    this.unobserved = unobservable(this.opts.runbook, missing);
    await this.emit({ type: 'preflight', home, tools, ...(missing.length > 0 ? { missing } : {}) });
    return env;
  }

  /**
   * A step this jumphost cannot observe (it calls a tool missing from the PATH, or reads only what such a
   * step would have found): shown as such, with the known issues it leaves undecided; its captures are null.
   */
  private async runUnobservable(ref: StepRef, step: LeafStep | ForEachStep, why: string): Promise<void> {
    const started = Date.now();
    await this.emit({
      ...ref,
      type: 'step.started',
      kind: step.kind,
      title: renderOrSource(step.title, this.scope()),
      destructive: false,
    });
    const leaves = step.kind === 'for_each' ? step.steps : [step];
    for (const leaf of leaves) for (const [name] of leaf.capture) this.captured[name] = null;
    const undecided = undecidedBy(this.opts.runbook, this.unobserved, step.id);
    await this.stepFinished(
      ref,
      started,
      'unobservable',
      undefined,
      `not observable: ${why}${undecided.length > 0 ? `; leaves undecided: ${undecided.join(', ')}` : ''}`,
    );
  }

  private async runLoop(ref: StepRef, step: ForEachStep): Promise<undefined> {
    const started = Date.now();
    const finished = (status: StepStatus, message?: string) =>
      this.stepFinished(ref, started, status, undefined, message);
    // A resumed loop keeps the item list it froze when it started: the cloud may have changed since,
    // and the items already handled must not be looked at again.
    const resumed = this.loop;
    if (!resumed) {
      await this.emit({
        ...ref,
        type: 'step.started',
        kind: 'for_each',
        title: render(step.title, this.scope()),
        destructive: step.steps.some(isDestructive),
      });
    }
    try {
      const items = resumed?.items ?? evaluateExpr(step.items, this.scope());
      if (!Array.isArray(items)) {
        throw new Stop('failed', `${step.id}: for_each \`${step.items.source}\` is not a list`, step.id);
      }
      if (items.length === 0 && step.empty) {
        await this.emit({ ...ref, type: 'decision', message: render(step.empty, this.scope()) });
      }
      for (let n = resumed?.n ?? 0; n < items.length; n++) {
        this.checkCancelled();
        const item: unknown = items[n];
        const loopVars: Vars = { [step.as]: item };
        const env = { ...this.env };
        bindEnv(step.env, { ...this.scope(), ...loopVars }, env, step.id);
        Object.assign(loopVars, pickEnv(env, step.env));
        const label = step.env.map((b) => env[b.name]).join(' ') || `#${n + 1}`;
        const name = this.itemName(step, loopVars);
        const key = itemKey(item, Object.fromEntries(step.env.map((b) => [b.name, env[b.name] ?? ''])));
        const firstInner = resumed && n === resumed.n ? resumed.inner : 0;
        for (let inner = firstInner; inner < step.steps.length; inner++) {
          const leaf = step.steps[inner] as LeafStep;
          this.loop = { items, n, inner };
          await this.saveCheckpoint();
          const innerRef: StepRef = {
            ...ref,
            stepId: `${step.id}/${leaf.id}`,
            iteration: { n: n + 1, of: items.length, label, ...(name ? { name } : {}), key },
          };
          const notObservable = this.unobserved.steps.get(innerRef.stepId);
          if (notObservable !== undefined) await this.runUnobservable(innerRef, leaf, notObservable);
          else await this.runLeaf(innerRef, leaf, loopVars, env);
        }
      }
    } catch (err) {
      if (err instanceof Suspend || err instanceof Pause || fencedBy(err, this.signal)) throw err;
      if (err instanceof Stop && err.status === 'finished') {
        await finished('ok');
      } else {
        await finished(
          err instanceof Stop ? stepStatusOf(err, this.signal) : 'failed',
          err instanceof Error ? redactText(err.message) : undefined,
        );
      }
      throw err;
    }
    this.loop = undefined;
    await finished('ok');
    return undefined;
  }

  /**
   * What people call a loop's item (its runbook `label:`), or undefined: a name is for people only, so one
   * that cannot be rendered (a field the item lacks) leaves the item shown by its ids, never fails the loop.
   */
  private itemName(step: ForEachStep, loopVars: Vars): string | undefined {
    if (step.label === undefined) return undefined;
    try {
      return render(step.label, { ...this.scope(), ...loopVars }) || undefined;
    } catch {
      return undefined;
    }
  }

  private async runReport(ref: StepRef, step: ReportStep): Promise<undefined> {
    const started = Date.now();
    const scope = this.scope();
    await this.emit({
      ...ref,
      type: 'step.started',
      kind: 'report',
      title: render(step.title, scope),
      destructive: false,
    });
    // A finding that reads what this jumphost could not observe is undecided: neither found nor "none".
    const { undecided, decidable } = undecidedFindings(this.unobserved, step.findings);
    const found = decidable.filter((f) => evaluateBoolean(f.when, scope));
    for (const f of found) await this.emit({ ...ref, type: 'decision', message: render(f.say, scope) });
    for (const [why, issues] of undecided) {
      await this.emit({
        ...ref,
        type: 'decision',
        message: `undecided, not observable (${why}): ${issues.join(', ')}`,
      });
    }
    const open = [...undecided.values()].flat().length;
    if (found.length === 0 && open === 0 && step.none) {
      await this.emit({ ...ref, type: 'decision', message: render(step.none, scope) });
    } else if (found.length === 0 && open > 0) {
      await this.emit({
        ...ref,
        type: 'decision',
        message: `no known issue matched among the ${decidable.length} that could be decided; ${open} could not be decided (above), so this is not an all-clear`,
      });
    }
    await this.stepFinished(
      ref,
      started,
      'ok',
      undefined,
      `${found.length} finding(s)${open > 0 ? `, ${open} undecided` : ''}`,
    );
    return undefined;
  }

  /** Runs a run/poll step; returns the id to jump to when a decision says goto. */
  private async runLeaf(
    ref: StepRef,
    step: LeafStep,
    loopVars: Vars,
    loopEnv: Record<string, string>,
  ): Promise<string | undefined> {
    const started = Date.now();
    const scope: Vars = { ...this.scope(), ...loopVars };
    const env = { ...loopEnv };
    let summary: string | undefined;
    const finished = (status: StepStatus, result: ExecResult | undefined, message?: string) =>
      this.stepFinished(ref, started, status, result, message, summary);

    let title = step.title.source;
    let bindError: unknown;
    try {
      bindEnv(step.env, scope, env, ref.stepId);
      Object.assign(scope, pickEnv(env, step.env));
      title = render(step.title, scope);
    } catch (err) {
      bindError = err;
      // The placeholder of a secret lost in a take-over fails its type check: say why, not only that.
      const lost = this.lostSecrets.find((name) => asCodedError(err).message.includes(`\`${name}\``));
      if (lost !== undefined) bindError = lostSecretStop(ref.stepId, lost, this.lostSecrets);
    }
    await this.emit({
      ...ref,
      type: 'step.started',
      kind: step.kind,
      title,
      destructive: isDestructive(step),
      ...(step.command.parse !== 'text' ? { parsed: true } : {}),
    });

    try {
      if (bindError !== undefined) throw bindError;
      let result: ExecResult;
      let outScope: Vars;
      if (step.kind === 'poll') {
        ({ result, outScope } = await this.poll(ref, step, scope, env));
      } else {
        if (step.destructive) {
          const done = await this.destructive(ref, step, scope, env);
          if (done.kind === 'skipped') {
            await finished('skipped', undefined, done.message);
            return undefined;
          }
          if (done.kind === 'verified') {
            await finished('ok', undefined, done.message);
            return undefined;
          }
          result = done.result;
          await this.readBack(ref, step, scope, env, done.attempt);
        } else {
          result = await this.exec(ref, step.command, step.scope, env);
          await this.readBack(ref, step, scope, env);
        }
        outScope = outputScope(scope, step.command, result);
      }

      for (const [name, e] of step.capture) {
        // Computed from something this jumphost could not observe: unknown too (observability.ts), not a guess.
        if (this.unobserved.values.has(name)) {
          outScope[name] = null;
          this.captured[name] = null;
          continue;
        }
        const value = evaluateExpr(e, outScope);
        outScope[name] = value;
        this.captured[name] = value;
        // What a sensitive step captured came from output nobody may see: held as a secret, never stored.
        this.secrets.learn(name, value, step.command.sensitive);
      }
      summary = this.summaryOf(step, outScope);
      // An expectation or decision about an unobserved value cannot be judged: it is not applied.
      const judgeable = (e: Parameters<typeof readsUnobserved>[1]) =>
        readsUnobserved(this.unobserved, e) === undefined;
      if (step.expect && judgeable(step.expect.that) && !evaluateBoolean(step.expect.that, outScope)) {
        const why = step.expect.message
          ? render(step.expect.message, outScope)
          : `expected ${step.expect.that.source}`;
        throw new Stop('failed', `${ref.stepId}: ${why}`, ref.stepId);
      }
      for (const d of step.decide) {
        if (!judgeable(d.when) || !evaluateBoolean(d.when, outScope)) continue;
        if (d.say) await this.emit({ ...ref, type: 'decision', message: render(d.say, outScope) });
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
      if (err instanceof Suspend || fencedBy(err, this.signal)) throw err;
      if (err instanceof Stop) {
        if (err.status !== 'finished') await finished(stepStatusOf(err, this.signal), undefined, err.message);
        throw err;
      }
      const message = `${ref.stepId}: ${failureOf(step, err)}`;
      await finished('failed', undefined, message);
      throw new Stop('failed', message, ref.stepId);
    }
  }

  /** Runs one remote command; only a cancel ends the step here, every other outcome is the caller's. */
  private async execRaw(
    ref: StepRef,
    command: Command,
    scope: Scope | undefined,
    env: Record<string, string>,
    attempt?: AttemptMarker,
  ): Promise<ExecResult> {
    this.refuseLostSecret(ref, env);
    const redact = { stdout: createLineRedactor(), stderr: createLineRedactor() };
    const pending: Promise<void>[] = [];
    const result = await this.opts.executor.exec({
      script: withPreamble(scope, command.script),
      // The run and step travel with every command, so the jumphost's own audit (ps, auditd, sudo logs)
      // can say which run and step issued it.
      env: { ...env, CAPI_RUN_ID: this.opts.runId, CAPI_STEP: ref.stepId },
      timeoutMs: command.timeoutMs,
      signal: this.signal,
      ...(attempt ? { attempt } : {}),
      onLine: (stream, line) => {
        // A sensitive step's output goes nowhere: no event, so no thread, timeline, log or terminal has it.
        if (command.sensitive) return;
        pending.push(
          Promise.resolve(this.emit({ ...ref, type: 'step.output', stream, line: redact[stream](line) })),
        );
      },
    });
    await Promise.all(pending);
    if (result.cancelled) {
      throw new Stop(
        'cancelled',
        `${cancelMessage(this.signal)} during ${ref.stepId}; its remote process was killed`,
      );
    }
    return result;
  }

  /** Runs one remote command; a timeout or an exit code the step does not allow fails the step. */
  private async exec(
    ref: StepRef,
    command: Command,
    scope: Scope | undefined,
    env: Record<string, string>,
  ): Promise<ExecResult> {
    const result = await this.execRaw(ref, command, scope, env);
    stopOnKnownError(command, result);
    const failure = commandFailure(command, result);
    if (failure !== undefined) throw new Stop('failed', `${ref.stepId}: ${failure}`, ref.stepId);
    return result;
  }

  private async poll(
    ref: StepRef,
    step: PollStep,
    scope: Vars,
    env: Record<string, string>,
  ): Promise<{ result: ExecResult; outScope: Vars }> {
    const scale = this.opts.site.timing.scale;
    let last: Vars = scope;
    for (let attempt = 1; attempt <= step.attempts; attempt++) {
      const wait = attempt === 1 ? step.firstAfterMs : step.everyMs;
      if (wait > 0) await this.pause(wait * scale);
      // A hung or failing check is one attempt that did not meet `until` (the seed's cold-start window is
      // full of them), never the end of the poll: only fail_when, exhaustion or a cancel end it.
      const result = await this.execRaw(ref, step.command, step.scope, env);
      stopOnKnownError(step.command, result);
      const failure = commandFailure(step.command, result);
      const outScope = outputScope(scope, step.command, result);
      last = outScope;
      if (failure !== undefined) {
        await this.emit({ ...ref, type: 'poll.attempt', attempt, of: step.attempts, summary: failure });
        continue;
      }
      const summary = step.progress ? render(step.progress, outScope) : lastLine(step.command, result);
      await this.emit({ ...ref, type: 'poll.attempt', attempt, of: step.attempts, summary });
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

  private async pause(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.signal });
    } catch {
      throw new Stop('cancelled', cancelMessage(this.signal));
    }
  }

  /** Runs the read-back checks; returns why the step is to be skipped, or undefined to go on. */
  private async guard(
    ref: StepRef,
    step: RunStep,
    scope: Vars,
    env: Record<string, string>,
  ): Promise<string | undefined> {
    for (const check of step.guard) {
      const result = await this.exec(ref, check.command, step.scope, env);
      const outScope = outputScope(scope, check.command, result);
      if (evaluateBoolean(check.skipWhen, outScope)) {
        const message = render(check.say, outScope);
        await this.emit({ ...ref, type: 'guard.skipped', message });
        return message;
      }
    }
    return undefined;
  }

  /**
   * A destructive step, exactly once or not at all: an attempt already on record is verified, never sent
   * again; otherwise guard -> approval -> guard -> record the attempt (consuming the approval) -> send.
   */
  private async destructive(
    ref: StepRef,
    step: RunStep,
    scope: Vars,
    env: Record<string, string>,
  ): Promise<
    | { kind: 'skipped'; message: string }
    | { kind: 'verified'; message: string }
    | { kind: 'sent'; result: ExecResult; attempt: AttemptRecord }
  > {
    const previous = await this.opts.attempts.find(ref);
    if (previous) return { kind: 'verified', message: await this.verify(ref, step, scope, env, previous) };
    const skip = await this.guard(ref, step, scope, env);
    if (skip !== undefined) return { kind: 'skipped', message: skip };
    const command = displayCommand(step.scope, step.command.script, env);
    // An approval that went stale or was superseded before the attempt could use it is asked again once;
    // a second refusal is not a race but a fault, and stops the step.
    for (let round = 1; ; round++) {
      const approved = await this.approve(ref, step, scope, env);
      // Verify-then-act: state may have moved while a human was deciding.
      const skipNow = await this.guard(ref, step, scope, env);
      if (skipNow !== undefined) return { kind: 'skipped', message: skipNow };
      const begun = await this.opts.attempts.begin(ref, approved, command);
      if (begun.outcome === 'exists') {
        return { kind: 'verified', message: await this.verify(ref, step, scope, env, begun.attempt) };
      }
      if (begun.outcome === 'refused') {
        if (round === 1 && (begun.why === 'stale' || begun.why === 'superseded')) continue;
        throw new Stop(
          'failed',
          `${ref.stepId}: approval ${approved.approvalId} does not authorize this attempt (${begun.why}); nothing destructive was run`,
          ref.stepId,
        );
      }
      await this.emit({
        ...ref,
        type: 'attempt.started',
        attemptId: begun.attempt.attemptId,
        approvalId: approved.approvalId,
        command,
        at: begun.attempt.startedAt,
      });
      let result: ExecResult;
      try {
        // The jumphost keeps its own record of the send (the executor's attempt marker), whatever Redis forgets.
        result = await this.execRaw(ref, step.command, step.scope, env, {
          runId: this.opts.runId,
          slot: begun.slot,
          digest: approved.digest,
          shown: redactText(this.secrets.mask(command)),
        });
      } catch (err) {
        // A cancel killed the command in flight: it may have landed. (A lost hold is the agent's to say.)
        if (err instanceof Stop && err.status === 'cancelled' && !fencedBy(err, this.signal)) {
          const check = checkByHandUnread(step, scope, begun.attempt);
          throw new Stop(
            'cancelled',
            `${err.message}. ${unknownOutcome(begun.attempt, 'was killed before it returned', check)}`,
            ref.stepId,
          );
        }
        if (err instanceof JumphostAheadError) await this.opts.attempts.refused(ref, err);
        if (!(err instanceof AttemptOnRecordError)) throw err;
        // Redis lost an earlier attempt of this step (a restore, a rollback, a failover); the jumphost did not.
        await this.opts.attempts.refused(ref, err);
        const first = { ...begun.attempt, startedAt: err.sentAt ?? 'an unknown time' };
        return { kind: 'verified', message: await this.verify(ref, step, scope, env, first, err) };
      }
      await this.opts.attempts.finish(ref, {
        exitCode: result.code,
        signal: result.signal,
        timedOut: result.timedOut,
      });
      stopOnKnownError(step.command, result);
      const failure = commandFailure(step.command, result);
      if (failure !== undefined) {
        throw new Stop('failed', `${ref.stepId}: ${failure}; it is not retried`, ref.stepId);
      }
      return { kind: 'sent', result, attempt: begun.attempt };
    }
  }

  /**
   * An attempt is on record: its command was sent (or was about to be) by an earlier owner of this run.
   * A recorded exit status decides like it would have; an unknown one is read back with the step's
   * verify check. Returns the step's message when the action took effect; stops the run otherwise.
   * `onJumphost`: Redis had no record of it, the jumphost refused the send because its marker has one.
   */
  private async verify(
    ref: StepRef,
    step: RunStep,
    scope: Vars,
    env: Record<string, string>,
    attempt: AttemptRecord,
    onJumphost?: AttemptOnRecordError,
  ): Promise<string> {
    const shown = attempt.command.split('\n').at(-1) ?? attempt.command;
    const sent = onJumphost
      ? `the jumphost refused to send \`${shown}\` again: an earlier send of this step is on record there, made at ${attempt.startedAt} (${onJumphost.marker}), which Redis had lost`
      : sentPhrase(attempt);
    if (attempt.outcome) {
      const { exitCode, signal, timedOut } = attempt.outcome;
      const ok =
        !timedOut &&
        (exitAccepted(step.command, exitCode) || (step.command.allowFailure && exitCode !== null));
      const message = ok
        ? `${sent} and exited ${exitCode} before this run was resumed; not sent again`
        : `${sent} and ${timedOut ? 'timed out' : `exited ${exitCode ?? `by signal ${signal}`}`}; it is not retried`;
      await this.emit({
        ...ref,
        type: 'attempt.verified',
        attemptId: attempt.attemptId,
        tookEffect: ok,
        message,
      });
      if (!ok) throw new Stop('failed', `${ref.stepId}: ${message}`, ref.stepId);
      return message;
    }
    const check = step.verify as NonNullable<RunStep['verify']>;
    const result = await this.execRaw(ref, check.command, step.scope, env);
    stopOnKnownError(check.command, result);
    const failure = commandFailure(check.command, result);
    const outScope = { ...outputScope(scope, check.command, result), attempt: attemptVars(attempt) };
    const tookEffect = failure === undefined && evaluateBoolean(check.tookEffect, outScope);
    const unknown = onJumphost
      ? `OUTCOME UNKNOWN: ${sent}. The first send may have landed, and reading back cannot show it took effect${failure ? ` (the check ${failure})` : ''}.`
      : `OUTCOME UNKNOWN: ${sent} by an agent that stopped before it returned, and reading back cannot show it took effect${failure ? ` (the check ${failure})` : ''}.`;
    const message = tookEffect
      ? `${sent}; its outcome was not recorded, and reading back shows it took effect: ${render(check.say, outScope)}. Not sent again.`
      : `${unknown} It is NOT sent again. Check by hand: ${render(check.checkByHand, outScope)}`;
    if (tookEffect) await this.opts.attempts.verified(ref);
    await this.emit({ ...ref, type: 'attempt.verified', attemptId: attempt.attemptId, tookEffect, message });
    if (!tookEffect) throw new Stop('failed', `${ref.stepId}: ${message}`, ref.stepId);
    return message;
  }

  /**
   * The step's `verify` after a fresh send: the command's exit code is not proof (a `sed -i` that matched
   * nothing exits 0), so the step passes only when reading back shows the action took effect.
   */
  private async readBack(
    ref: StepRef,
    step: RunStep,
    scope: Vars,
    env: Record<string, string>,
    attempt?: AttemptRecord,
  ): Promise<void> {
    const check = step.verify;
    if (check === undefined || !check.afterSend) return;
    const result = await this.exec(ref, check.command, step.scope, env);
    const outScope = {
      ...outputScope(scope, check.command, result),
      attempt: attempt ? attemptVars(attempt) : null,
    };
    if (!evaluateBoolean(check.tookEffect, outScope)) {
      throw new Stop(
        'failed',
        `${ref.stepId}: reading back after the command shows it did not take effect: ${render(check.checkByHand, outScope)}`,
        ref.stepId,
      );
    }
  }

  /** Asks (or finds the answer already given) for this exact action; returns what was approved. */
  private async approve(
    ref: StepRef,
    step: RunStep,
    scope: Vars,
    env: Record<string, string>,
  ): Promise<{ approvalId: string; digest: string }> {
    const a = step.approval as NonNullable<RunStep['approval']>;
    this.refuseLostSecret(ref, env);
    const command = displayCommand(step.scope, step.command.script, env);
    const targets = a.targets.map((t) => render(t, scope));
    // What people see is masked; the digest below binds the real values.
    const shown = (text: string) => this.secrets.mask(text);
    const quorum = approvalQuorum(this.opts.site, this.opts.runbook.name, ref.stepId, a.quorum);
    const request: ApprovalRequest = {
      runId: this.opts.runId,
      runbook: this.opts.runbook.name,
      step: ref,
      title: shown(render(step.title, scope)),
      summary: shown(renderNames(a.summary, scope)),
      commands: [shown(command)],
      targets: targets.map(shown),
      evidence: a.evidence.map((t) => shown(renderNames(t, scope))),
      requestedBy: this.opts.requestedBy,
      ...(quorum > 1 ? { quorum } : {}),
      digest: actionDigest({
        runbook: this.opts.runbook.digest,
        stepId: ref.stepId,
        item: ref.iteration?.key ?? null,
        script: withPreamble(step.scope, step.command.script),
        env,
        targets,
      }),
    };
    const opened = await this.opts.approvals.open(request);
    if (opened.superseded) {
      await this.emit({
        ...ref,
        type: 'approval.superseded',
        approvalId: opened.superseded.approvalId,
        supersededBy: opened.approvalId,
        why: opened.superseded.why,
      });
    }
    await this.emit({ ...ref, type: 'approval.requested', approvalId: opened.approvalId, request });
    let decision: Awaited<ReturnType<ApprovalPort['decision']>>;
    const asked = Date.now();
    try {
      decision = await this.opts.approvals.decision(opened.approvalId, request, this.signal);
    } catch (err) {
      if (err instanceof ApprovalPending) throw new Suspend(err.approvalId, err.expiresAt);
      if (err instanceof ApprovalRejected) {
        // The decision in the store is not one this agent accepts (forged, for another action, or by someone
        // its policy does not allow): the thread says so, and the run stops with nothing sent.
        const reason = redactText(err.reason);
        await this.emit({
          ...ref,
          type: 'approval.rejected',
          approvalId: err.approvalId,
          by: err.by,
          reason,
        });
        throw new Stop(
          'failed',
          `${ref.stepId}: the decision on ${err.approvalId} was refused by the agent (${reason}); nothing destructive was run`,
          ref.stepId,
        );
      }
      throw err;
    } finally {
      this.waited += Date.now() - asked;
    }
    await this.emit({ ...ref, type: 'approval.decided', approvalId: opened.approvalId, decision });
    this.checkCancelled();
    if (!decision.approved) {
      const why =
        decision.reason === 'expired'
          ? 'the approval expired (counts as a denial)'
          : `denied by ${decision.by}${decision.note ? ` (${decision.note})` : ''}`;
      throw new Stop('denied', `${ref.stepId}: ${why}; nothing destructive was run`, ref.stepId);
    }
    return { approvalId: opened.approvalId, digest: request.digest };
  }
}
