/**
 * What a run cannot observe on this jumphost, worked out before its first step: the steps that call a tool
 * missing from the jumphost's PATH (a runbook's `requires:` refuses those it cannot do without; see
 * preflight.ts), the steps whose inputs come only from such steps, and every value they would have captured.
 * A report's finding that reads one of those values is undecided, never "none".
 *
 * Static: it follows from the runbook and the missing tools alone, so a run resumed by another agent (which
 * runs preflight again) reaches the same verdict without anything stored in its checkpoint.
 */
import { type CompiledExpr, type CompiledTemplate, freeVariables } from '../expr/index.js';
import type { Finding, LeafStep, Runbook, Step } from '../runbook/model.js';
import { notOnPath } from '../runbook/tools.js';

export interface Unobserved {
  /** Step id (`loop/inner` inside a for_each) -> why it cannot run, e.g. "juju is not on the jumphost's PATH". */
  readonly steps: ReadonlyMap<string, string>;
  /** Captured name -> why its value is unknown, and the step that could not observe it. */
  readonly values: ReadonlyMap<string, { readonly why: string; readonly origin: string }>;
}

export const NOTHING_UNOBSERVED: Unobserved = { steps: new Map(), values: new Map() };

/** The first value this expression reads that could not be observed, with why; undefined when none. */
export function readsUnobserved(
  unobserved: Unobserved,
  compiled: CompiledExpr | CompiledTemplate,
): { readonly name: string; readonly why: string } | undefined {
  for (const name of freeVariables(compiled)) {
    const v = unobserved.values.get(name);
    if (v !== undefined) return { name, why: v.why };
  }
  return undefined;
}

export function unobservable(runbook: Runbook, missing: readonly string[]): Unobserved {
  const steps = new Map<string, string>();
  const values = new Map<string, { why: string; origin: string }>();
  if (missing.length === 0) return NOTHING_UNOBSERVED;
  const inputsWhy = (exprs: readonly CompiledExpr[]): string | undefined => {
    for (const e of exprs) {
      const hit = readsUnobserved({ steps, values }, e);
      if (hit !== undefined) return `its input ${hit.name} was not observable (${hit.why})`;
    }
    return undefined;
  };
  const toolsWhy = (leaves: readonly LeafStep[]): string | undefined => {
    const lacking = [...new Set(leaves.flatMap((s) => s.tools.filter((t) => missing.includes(t))))];
    return lacking.length > 0 ? notOnPath(lacking) : undefined;
  };
  const leaf = (id: string, step: LeafStep, outer: string | undefined): void => {
    const why = outer ?? toolsWhy([step]) ?? inputsWhy(step.env.map((b) => b.value));
    if (why !== undefined) {
      steps.set(id, why);
      for (const [name] of step.capture) values.set(name, { why, origin: id });
      return;
    }
    // The step runs; a capture computed from a value nobody could observe is not known either.
    for (const [name, e] of step.capture) {
      const hit = readsUnobserved({ steps, values }, e);
      if (hit !== undefined) values.set(name, { why: hit.why, origin: values.get(hit.name)?.origin ?? id });
    }
  };
  for (const step of runbook.steps) {
    if (step.kind === 'report') continue;
    if (step.kind !== 'for_each') {
      leaf(step.id, step, undefined);
      continue;
    }
    const why = toolsWhy(step.steps) ?? inputsWhy([step.items, ...step.env.map((b) => b.value)]);
    if (why !== undefined) steps.set(step.id, why);
    for (const inner of step.steps) leaf(`${step.id}/${inner.id}`, inner, why);
  }
  return { steps, values };
}

/** The findings of every report that read a value the given step could not observe: what it leaves undecided. */
export function undecidedBy(runbook: Runbook, unobserved: Unobserved, stepId: string): string[] {
  const reports = runbook.steps.filter((s): s is Extract<Step, { kind: 'report' }> => s.kind === 'report');
  return reports.flatMap((r) =>
    r.findings
      .filter((f) =>
        freeVariables(f.when).some((name) => {
          const origin = unobserved.values.get(name)?.origin;
          return origin === stepId || origin?.startsWith(`${stepId}/`) === true;
        }),
      )
      .map((f) => f.issue),
  );
}

/** A report's findings that read an unobserved value, grouped by why (one line each for people). */
export function undecidedFindings(
  unobserved: Unobserved,
  findings: readonly Finding[],
): { readonly undecided: Map<string, string[]>; readonly decidable: Finding[] } {
  const undecided = new Map<string, string[]>();
  const decidable: Finding[] = [];
  for (const f of findings) {
    const hit = readsUnobserved(unobserved, f.when);
    if (hit === undefined) {
      decidable.push(f);
      continue;
    }
    undecided.set(hit.why, [...(undecided.get(hit.why) ?? []), f.issue]);
  }
  return { undecided, decidable };
}
