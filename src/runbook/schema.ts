import { z } from 'zod';
import { parseAmount, TIMER } from '../config/units.js';
import { compileRegex } from '../expr/index.js';
import { PARAM_TYPE_NAMES } from './params.js';
import { JUMPHOST_TOOLS } from './tools.js';

/**
 * The YAML shape of a runbook in commands/. Messages say what to write instead, because the
 * person reading them is an operator reviewing a runbook, not a TypeScript developer.
 */

/** The most approvers a step may need: past a handful, nobody would ever decide in time. */
export const MAX_QUORUM = 5;

const id = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, {
  error: 'must be a lowercase id: letters, digits and "-", starting with a letter',
});
const envName = z
  .string()
  .regex(/^[A-Z][A-Z0-9_]*$/, { error: 'must be an UPPER_CASE environment variable name' });
const varName = z.string().regex(/^[a-z_][a-z0-9_]*$/, { error: 'must be a lower_snake_case variable name' });
// The one timer grammar the environment's durations use too (config/units.ts).
const duration = z.string().refine((text) => text === text.trim() && parseAmount(text, TIMER) !== undefined, {
  error: 'must be a duration such as 500ms, 10s, 2m or 1h',
});
const expr = z.string().min(1, { error: 'must be an expression, e.g. stdout == "ACTIVE"' });
const template = z.string().min(1);
const script = z.string().min(1, { error: 'must be a shell block' });
const parse = z.enum(['text', 'lines', 'json', 'yaml', 'kubeconfig'], {
  error: 'must be one of text, lines, json, yaml, kubeconfig',
});

const exitCode = z.number().int().min(0).max(255, { error: 'must be an exit code 0-255' });

const outputHandling = {
  parse: parse.default('text'),
  /** Non-zero exit codes fail the step unless allowed; `exit_code` is then visible to expressions. */
  allow_failure: z.boolean().default(false),
  /**
   * Exit codes that are answers, not failures (L1: `grep -c` prints 0 and exits 1). Their output is
   * parsed like a success's; any other non-zero code is still a failure.
   */
  ok_exit: z
    .array(exitCode)
    .min(1)
    .refine((codes) => codes.includes(0), {
      error: 'lists the exit codes that are answers, 0 included: e.g. [0, 1] for grep -c',
    })
    .optional(),
  /**
   * What a known remote error (scopes.yaml `known_errors`) does: `stop` the step with its fix, never
   * retried (default), or `observe` it: the run goes on and `known_error` names it (diagnose).
   */
  known_errors: z.enum(['stop', 'observe'], { error: 'must be stop or observe' }).default('stop'),
  timeout: duration.optional(),
};

const decision = z
  .strictObject({
    when: expr,
    say: template.optional(),
    goto: id.optional(),
    finish: template.optional(),
    fail: template.optional(),
  })
  .refine((d) => [d.goto, d.finish, d.fail].filter((x) => x !== undefined).length <= 1, {
    error: 'a decision takes at most one of goto, finish, fail',
  })
  .refine(
    (d) => d.say !== undefined || d.goto !== undefined || d.finish !== undefined || d.fail !== undefined,
    {
      error: 'a decision needs say, goto, finish or fail',
    },
  );

const envValue = z.strictObject({
  value: expr,
  type: z.enum(PARAM_TYPE_NAMES as [string, ...string[]], {
    error: `must be one of ${PARAM_TYPE_NAMES.join(', ')}`,
  }),
  /** null or an empty list becomes "" instead of refusing the step; the script tests `[ -n "$X" ]`. */
  optional: z.boolean().default(false),
});

const guardCheck = z.strictObject({
  run: script,
  ...outputHandling,
  skip_when: expr,
  say: template,
});

/**
 * How to read back whether the step's action took effect. On a destructive step it decides, for a run
 * that finds the action's attempt on record but not its outcome (its agent died or stalled while the
 * command was in flight), instead of a second send: the run continues when `took_effect` holds and
 * otherwise stops as "outcome unknown" with `check_by_hand`. After a send it runs on every step that is
 * not destructive, and on a destructive one with `after_send: true`: for commands whose exit code is no
 * proof (a `sed -i` that matched nothing exits 0), the step fails unless `took_effect` holds.
 */
const verify = z.strictObject({
  run: script,
  ...outputHandling,
  took_effect: expr,
  say: template,
  check_by_hand: template,
  after_send: z.boolean().default(false),
});

const common = {
  id,
  title: template,
  note: z.string().optional(),
  scope: id.optional(),
  env: z.record(envName, envValue).optional(),
  capture: z.record(varName, expr).optional(),
  expect: expr.optional(),
  expect_message: template.optional(),
  decide: z.array(decision).optional(),
  /** The facts a step derived, for people: one line rendered from its output and captures once it passed. */
  summary: template.optional(),
  /**
   * The step's output (its guard's and verify's too) is neither stored nor shown anywhere: no output lines, no
   * output in a failure, its captures held as secrets. People see its summary, expect_message and decisions.
   */
  sensitive: z.boolean().default(false),
};

const approval = z.strictObject({
  summary: template,
  targets: z
    .array(template)
    .min(1, { error: 'name at least one exact target (server UUID, LB id, CR name)' }),
  evidence: z.array(template).default([]),
  /** Distinct approvers the step needs (the requester never counts); a site profile may raise it, never lower. */
  quorum: z
    .number()
    .int({ error: 'must be a whole number of approvers' })
    .min(1, { error: 'must be at least 1 (one approver)' })
    .max(MAX_QUORUM, { error: `must be at most ${MAX_QUORUM} approvers` })
    .default(1),
});

export const RunStepSchema = z
  .strictObject({
    ...common,
    run: script,
    ...outputHandling,
    destructive: z.boolean().default(false),
    approval: approval.optional(),
    guard: z.array(guardCheck).optional(),
    verify: verify.optional(),
  })
  .superRefine((s, ctx) => {
    if (s.destructive && (s.approval === undefined || s.guard === undefined || s.guard.length === 0)) {
      ctx.addIssue({
        code: 'custom',
        message:
          'a destructive step needs `approval` (summary, targets, evidence) and a `guard` that reads back state before it runs',
      });
    }
    if (s.destructive && s.verify === undefined) {
      ctx.addIssue({
        code: 'custom',
        message:
          'a destructive step needs `verify` (run, took_effect, say, check_by_hand): how to read back whether the action took effect when a crash hid its outcome',
      });
    }
    if (!s.destructive && (s.approval !== undefined || s.guard !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: '`approval` and `guard` only belong on a step marked destructive: true',
      });
    }
  });

export const PollStepSchema = z.strictObject({
  ...common,
  poll: z.strictObject({
    run: script,
    ...outputHandling,
    attempts: z.number().int().min(1).max(1000),
    every: duration,
    first_after: duration.optional(),
    until: expr,
    fail_when: expr.optional(),
    fail_message: template.optional(),
    progress: template.optional(),
    exhausted: template,
  }),
});

export const ForEachStepSchema = z.strictObject({
  id,
  title: template,
  note: z.string().optional(),
  for_each: expr,
  as: varName,
  /**
   * What a person calls an item (`"{lb.name}, VIP {lb.vip_address}"`): the fronts show it, with the item's ids
   * (its env values) in a code span after it. Without it an item is shown by its ids alone.
   */
  label: template.max(200, { error: 'at most 200 characters: it names one item in a line' }).optional(),
  empty: template.optional(),
  env: z.record(envName, envValue).optional(),
  steps: z.array(z.unknown()).min(1),
});

export const ReportStepSchema = z.strictObject({
  id,
  title: template,
  note: z.string().optional(),
  report: z
    .array(
      z.strictObject({
        when: expr,
        say: template,
        /** The known issue's short name (`D-045 haproxy DOWN`): what a run names when it cannot decide it. */
        issue: z.string().min(1).max(80).optional(),
      }),
    )
    .min(1, { error: 'a report lists at least one finding (when + say)' }),
  none: template.optional(),
});

/**
 * How a front offers the values of a parameter to pick from instead of typing one: a read-only command run
 * on the jumphost (through the agent, on the read-only queue) that prints one candidate per line, the value
 * first, then an optional label. Every value is checked against the parameter's type before it is offered.
 */
const pick = z.strictObject({
  title: z.string().min(1).max(75, { error: 'at most 75 characters: it labels the picker' }),
  scope: id.optional(),
  run: script,
  timeout: z.number().int().positive().max(120).default(30),
});

export const ParamSchema = z.strictObject({
  name: varName,
  type: z.enum(PARAM_TYPE_NAMES as [string, ...string[]], {
    error: `must be one of ${PARAM_TYPE_NAMES.join(', ')}`,
  }),
  env: envName,
  description: z.string().min(1),
  pick: pick.optional(),
});

export const RunbookFileSchema = z.strictObject({
  name: id,
  summary: z.string().min(1),
  source: z.string().min(1),
  read_only: z.boolean().default(false),
  /**
   * The jumphost tools the runbook cannot do without: a run refuses to start, before any step, when one is
   * not on the jumphost's PATH. A step needing a tool that is missing and not listed is "not observable" and
   * the run goes on (diagnosis degrades, never refuses); a runbook with a destructive step must list every
   * tool its steps call, so it never half-runs.
   */
  requires: z
    .array(z.enum(JUMPHOST_TOOLS, { error: `must be one of ${JUMPHOST_TOOLS.join(', ')}` }))
    .default([]),
  params: z.array(ParamSchema).default([]),
  steps: z.array(z.unknown()).min(1, { error: 'a runbook needs at least one step' }),
});

/** A remote error with a known cause: recognised in any command's output, it stops the step with its fix. */
const knownError = z.strictObject({
  id,
  /** Where the seed documents it, e.g. "appendix A juju-macaroon". */
  source: z.string().min(1),
  /**
   * A regular expression matched against the command's stderr, then its stdout: held to the guard every
   * expression's regex passes (length, no nested repetition), since it runs on whatever a remote CLI printed.
   */
  match: z
    .string()
    .min(1)
    .superRefine((pattern, ctx) => {
      const compiled = compileRegex(pattern);
      if (typeof compiled === 'string') ctx.addIssue({ code: 'custom', message: compiled });
    }),
  /** What the operator must do; shown as the step's failure. */
  message: z.string().min(1),
});

export const ScopesFileSchema = z.strictObject({
  scopes: z.record(
    id,
    z.strictObject({
      description: z.string().min(1),
      preamble: script,
    }),
  ),
  known_errors: z.array(knownError).default([]),
});

export type RunStepYaml = z.infer<typeof RunStepSchema>;
export type PollStepYaml = z.infer<typeof PollStepSchema>;
export type ForEachStepYaml = z.infer<typeof ForEachStepSchema>;
export type RunbookFileYaml = z.infer<typeof RunbookFileSchema>;
export type ScopesFileYaml = z.infer<typeof ScopesFileSchema>;
