/**
 * check-recording: every step of a recorded runbook, fed its recorded output: its parse, captures, known errors,
 * summary, expectations, decisions and the report's findings, each evaluated the way the engine evaluates them
 * (src/engine/scope.ts). What throws, and what yields nothing from the output (a capture that is null, or only a
 * value because `default()` papered over a field the output lacks), is a problem: the runbook was written for
 * another output shape than this site's CLIs print. A step that was not recorded is only noted; what reads its
 * values is not judged.
 */
import { parseSiteProfile, type SiteProfile } from '../config/site.js';
import { Stop } from '../engine/control.js';
import {
  bindEnv,
  commandFailure,
  outputScope,
  pickEnv,
  publicSite,
  render,
  type Vars,
} from '../engine/scope.js';
import { exitAccepted, knownErrorIn } from '../engine/traps.js';
import { asCodedError } from '../errors.js';
import {
  type CompiledExpr,
  type CompiledTemplate,
  evaluateBoolean,
  evaluateExpr,
  freeVariables,
} from '../expr/index.js';
import type { RunbookSet } from '../runbook/load.js';
import type { Command, LeafStep, Runbook } from '../runbook/model.js';
import type { ExecResult } from '../ssh/types.js';
import type { RecordedCommand, RecordedRunbook, Recording } from './format.js';

export interface StepCheck {
  readonly step: string;
  readonly status: 'ok' | 'problem' | 'not recorded' | 'not judged';
  readonly problems: readonly string[];
  readonly notes: readonly string[];
}

export interface RunbookCheck {
  readonly runbook: string;
  readonly notes: readonly string[];
  readonly steps: readonly StepCheck[];
}

export interface RecordingCheck {
  readonly runbooks: readonly RunbookCheck[];
  readonly problems: number;
}

function resultOf(c: RecordedCommand): ExecResult {
  return {
    stdout: c.stdout,
    stderr: c.stderr,
    code: c.exit,
    signal: null,
    timedOut: c.timed_out,
    cancelled: false,
    durationMs: 0,
  };
}

class RunbookChecker {
  private readonly scope: Vars;
  /** Values no recorded output could give (their step was not recorded or failed to parse): name -> why. */
  private readonly unknown = new Map<string, string>();
  private readonly pending = new Map<string, RecordedCommand[]>();
  readonly steps: StepCheck[] = [];

  constructor(
    private readonly runbook: Runbook,
    recorded: RecordedRunbook,
    site: SiteProfile,
  ) {
    this.scope = { site: publicSite(site), params: {} };
    for (const c of recorded.commands) this.pending.set(c.step, [...(this.pending.get(c.step) ?? []), c]);
  }

  /** Recorded outputs for steps this runbook does not have. */
  leftover(): string[] {
    return [...this.pending.keys()];
  }

  private readsUnknown(e: CompiledExpr | CompiledTemplate, local: Vars = {}): string | undefined {
    const name = freeVariables(e).find((n) => this.unknown.has(n) && !(n in local));
    return name === undefined ? undefined : `${name} is not known (${this.unknown.get(name)})`;
  }

  private forget(step: LeafStep, why: string): void {
    for (const [name] of step.capture) this.unknown.set(name, why);
  }

  run(): void {
    for (const step of this.runbook.steps) {
      if (step.kind === 'report') {
        const problems: string[] = [];
        const notes: string[] = [];
        for (const f of step.findings) {
          const blind = this.readsUnknown(f.when);
          if (blind !== undefined) {
            notes.push(`${f.issue}: not judged, ${blind}`);
            continue;
          }
          try {
            if (evaluateBoolean(f.when, this.scope)) notes.push(`finds: ${f.issue}`);
          } catch (err) {
            problems.push(`finding "${f.issue}" throws: ${asCodedError(err).message}`);
          }
        }
        this.push(step.id, problems, notes);
      } else if (step.kind === 'for_each') {
        const blind = [step.items, ...step.env.map((b) => b.value)]
          .map((e) => this.readsUnknown(e))
          .find(Boolean);
        if (blind !== undefined) {
          for (const inner of step.steps) this.forget(inner, `its loop's input ${blind}`);
          this.steps.push({ step: step.id, status: 'not judged', problems: [], notes: [blind] });
          this.pending.delete(step.id);
          for (const inner of step.steps) this.pending.delete(`${step.id}/${inner.id}`);
          continue;
        }
        let items: unknown;
        try {
          items = evaluateExpr(step.items, this.scope);
        } catch (err) {
          this.push(step.id, [`for_each throws: ${asCodedError(err).message}`], []);
          continue;
        }
        if (!Array.isArray(items)) {
          this.push(step.id, [`for_each \`${step.items.source}\` is not a list`], []);
          continue;
        }
        this.push(step.id, [], [`${items.length} item(s)`]);
        for (const item of items) {
          const loopVars: Vars = { [step.as]: item };
          const env: Record<string, string> = {};
          try {
            bindEnv(step.env, { ...this.scope, ...loopVars }, env, step.id);
          } catch (err) {
            this.push(step.id, [asCodedError(err).message], []);
            break;
          }
          Object.assign(loopVars, pickEnv(env, step.env));
          for (const inner of step.steps) this.leaf(`${step.id}/${inner.id}`, inner, loopVars);
        }
      } else {
        this.leaf(step.id, step, {});
      }
    }
  }

  private push(step: string, problems: readonly string[], notes: readonly string[]): void {
    this.steps.push({ step, status: problems.length > 0 ? 'problem' : 'ok', problems, notes });
  }

  /** The recorded commands of one step, in order: its command (each poll attempt), then its read-back. */
  private take(id: string, n: number): RecordedCommand[] {
    const queue = this.pending.get(id) ?? [];
    const taken = queue.splice(0, n);
    if (queue.length === 0) this.pending.delete(id);
    return taken;
  }

  private leaf(id: string, step: LeafStep, loopVars: Vars): void {
    const problems: string[] = [];
    const notes: string[] = [];
    const blind = step.env.map((b) => this.readsUnknown(b.value, loopVars)).find(Boolean);
    if (blind !== undefined) {
      this.forget(step, `its step's input ${blind}`);
      this.take(id, Number.POSITIVE_INFINITY);
      this.steps.push({ step: id, status: 'not judged', problems, notes: [blind] });
      return;
    }
    const sent = (this.pending.get(id) ?? []).length;
    const mine = this.take(
      id,
      step.kind === 'poll' ? sent : step.kind === 'run' && step.verify?.afterSend ? 2 : 1,
    );
    const main = step.kind === 'poll' ? mine.at(-1) : mine[0];
    if (main === undefined) {
      this.forget(step, `${id} was not recorded`);
      this.steps.push({ step: id, status: 'not recorded', problems, notes });
      return;
    }
    const base: Vars = { ...this.scope, ...loopVars };
    const env: Record<string, string> = {};
    try {
      bindEnv(step.env, base, env, id);
      Object.assign(base, pickEnv(env, step.env));
    } catch (err) {
      problems.push(err instanceof Stop ? err.message : asCodedError(err).message);
    }
    if (step.kind === 'poll') {
      for (const [n, attempt] of mine.entries()) {
        const s = this.output(base, step.command, resultOf(attempt), `attempt ${n + 1}`, problems, notes);
        if (s === undefined) continue;
        for (const [what, e] of [
          ['until', step.until],
          ['fail_when', step.failWhen?.that],
        ] as const) {
          if (e !== undefined) this.judge(`${what} (attempt ${n + 1})`, e, s, problems);
        }
        if (step.progress !== undefined) this.show(`progress (attempt ${n + 1})`, step.progress, s, problems);
      }
    }
    const out = this.output(
      base,
      step.command,
      resultOf(main),
      'output',
      step.kind === 'poll' ? [] : problems,
      step.kind === 'poll' ? [] : notes,
    );
    if (out === undefined) {
      this.forget(step, `${id}'s output did not parse`);
    } else {
      const accepted = exitAccepted(step.command, main.exit);
      for (const [name, e] of step.capture) {
        const why = this.readsUnknown(e, out);
        if (why !== undefined) {
          this.unknown.set(name, why);
          continue;
        }
        const fellBack: (string | undefined)[] = [];
        try {
          const v = evaluateExpr(e, out, { onFallback: (p) => fellBack.push(p) });
          out[name] = v;
          this.scope[name] = v;
          const missing = fellBack.filter((p) => p !== undefined && /^(out|stdout)\b/.test(p));
          if (accepted && missing.length > 0) {
            problems.push(
              `capture ${name} yields nothing from the output: ${missing.join(', ')} is not in it, so default() fell back`,
            );
          } else if (accepted && v === null && freeVariables(e).includes('out')) {
            problems.push(`capture ${name} yields nothing (null) from the output`);
          }
        } catch (err) {
          problems.push(`capture ${name} throws: ${asCodedError(err).message}`);
          this.unknown.set(name, `its capture threw`);
        }
      }
      if (step.summary !== undefined) this.show('summary', step.summary, out, problems);
      if (step.expect !== undefined && this.readsUnknown(step.expect.that, out) === undefined) {
        this.judge('expect', step.expect.that, out, problems);
      }
      for (const d of step.decide) {
        if (this.readsUnknown(d.when, out) === undefined) this.judge('decide', d.when, out, problems);
      }
      const readBack = step.kind === 'run' && step.verify?.afterSend === true ? mine[1] : undefined;
      if (step.kind === 'run' && step.verify !== undefined && readBack !== undefined) {
        const v = this.output(base, step.verify.command, resultOf(readBack), 'read-back', problems, notes);
        if (v !== undefined) this.judge('verify took_effect', step.verify.tookEffect, v, problems);
      }
    }
    this.push(id, problems, notes);
  }

  /** The scope a command's recorded result gives its expressions; undefined (and a problem) when it does not parse. */
  private output(
    base: Vars,
    command: Command,
    result: ExecResult,
    what: string,
    problems: string[],
    notes: string[],
  ): Vars | undefined {
    const known = knownErrorIn(command, result);
    if (known !== undefined) notes.push(`${what}: the known error ${known.id}`);
    const failure = commandFailure(command, result);
    if (failure !== undefined) notes.push(`${what}: the recorded command ${failure.split(':')[0]}`);
    try {
      return outputScope(base, command, result);
    } catch (err) {
      problems.push(`${what} does not parse as ${command.parse}: ${asCodedError(err).message}`);
      return undefined;
    }
  }

  private judge(what: string, e: CompiledExpr, scope: Vars, problems: string[]): void {
    try {
      evaluateBoolean(e, scope);
    } catch (err) {
      problems.push(`${what} throws: ${asCodedError(err).message}`);
    }
  }

  private show(what: string, t: CompiledTemplate, scope: Vars, problems: string[]): void {
    if (this.readsUnknown(t, scope) !== undefined) return;
    try {
      render(t, scope);
    } catch (err) {
      problems.push(`${what} cannot be rendered: ${asCodedError(err).message}`);
    }
  }
}

export function checkRecording(recording: Recording, runbooks: RunbookSet): RecordingCheck {
  const site = parseSiteProfile(recording.meta.profile, `${recording.dir} (recording.yaml profile)`);
  const out: RunbookCheck[] = [];
  for (const [name, recorded] of recording.runbooks) {
    const runbook = runbooks.runbooks.get(name);
    if (runbook === undefined) {
      out.push({ runbook: name, notes: ['no runbook of that name is loaded: nothing to check'], steps: [] });
      continue;
    }
    const checker = new RunbookChecker(runbook, recorded, site);
    checker.run();
    const notes = [
      ...(recorded.digest !== undefined && recorded.digest !== runbook.digest
        ? ['recorded with another version of this runbook: record again to check the steps it changed']
        : []),
      ...checker.leftover().map((s) => `recorded output for step ${s}, which this runbook does not have`),
    ];
    out.push({ runbook: name, notes, steps: checker.steps });
  }
  return { runbooks: out, problems: out.flatMap((r) => r.steps).reduce((n, s) => n + s.problems.length, 0) };
}

/** For the terminal: every step, what was wrong with it, and the notes worth a look. */
export function formatRecordingCheck(recording: Recording, check: RecordingCheck): string {
  const lines = [
    `check-recording ${recording.dir}: site ${recording.meta.site}, ${recording.meta.origin}, ${recording.meta.recorded_at}`,
  ];
  for (const rb of check.runbooks) {
    const count = (status: StepCheck['status'][]) => rb.steps.filter((s) => status.includes(s.status)).length;
    lines.push(
      `${rb.runbook}: ${count(['ok', 'problem'])} of ${rb.steps.length} step(s) checked against the recording, ${count(['not recorded'])} not recorded, ${count(['not judged'])} reading what was not recorded`,
    );
    for (const n of rb.notes) lines.push(`  note     ${n}`);
    for (const s of rb.steps) {
      const label = s.status === 'problem' ? 'PROBLEM ' : s.status === 'ok' ? 'ok      ' : '-       ';
      lines.push(
        `  ${label} ${s.step}${s.status === 'not recorded' || s.status === 'not judged' ? ` (${s.status})` : ''}`,
      );
      for (const p of s.problems) lines.push(`             ${p}`);
      for (const n of s.notes) lines.push(`             note: ${n}`);
    }
  }
  lines.push(
    check.problems === 0
      ? 'no problems: every recorded output parses and yields what the runbooks read'
      : `${check.problems} problem(s)`,
    '',
  );
  return lines.join('\n');
}
