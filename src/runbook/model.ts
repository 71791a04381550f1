import type { CompiledExpr, CompiledTemplate } from '../expr/index.js';
import type { ParamType } from './params.js';
import type { JumphostTool } from './tools.js';

/** A runbook after loading: every expression compiled, every reference checked. */

/** `kubeconfig`: a kubeconfig checked before use (no exec or auth-provider users); see engine/kubeconfig.ts. */
export type ParseMode = 'text' | 'lines' | 'json' | 'yaml' | 'kubeconfig';

export interface Scope {
  readonly name: string;
  readonly description: string;
  readonly preamble: string;
}

/** A remote error whose cause is known (scopes.yaml `known_errors`), e.g. juju's stale macaroon. */
export interface KnownError {
  readonly id: string;
  readonly source: string;
  readonly match: RegExp;
  readonly message: string;
}

export interface Command {
  readonly script: string;
  readonly parse: ParseMode;
  readonly allowFailure: boolean;
  /** Exit codes that are answers (0 always; `ok_exit: [0, 1]` for grep -c). */
  readonly okExit: readonly number[];
  /** `stop`: a known error ends the step with its fix; `observe`: expressions see `known_error`. */
  readonly onKnownError: 'stop' | 'observe';
  readonly knownErrors: readonly KnownError[];
  readonly timeoutMs: number;
  /** Its output is never emitted, stored or put in a message (the step's `sensitive: true`). */
  readonly sensitive: boolean;
}

export interface EnvBinding {
  readonly name: string;
  readonly value: CompiledExpr;
  readonly type: ParamType;
  readonly optional: boolean;
}

export interface Decision {
  readonly when: CompiledExpr;
  readonly say?: CompiledTemplate;
  readonly outcome?:
    | { readonly kind: 'goto'; readonly target: string }
    | { readonly kind: 'finish' | 'fail'; readonly message: CompiledTemplate };
}

/**
 * Reads back whether a step's action took effect: after every send (an exit code is not proof), and for a
 * destructive attempt on record whose outcome is not (its agent died while it was in flight).
 */
export interface VerifyCheck {
  readonly command: Command;
  readonly tookEffect: CompiledExpr;
  readonly say: CompiledTemplate;
  readonly checkByHand: CompiledTemplate;
  /** Read back after every send too (always on a step that is not destructive). */
  readonly afterSend: boolean;
}

export interface GuardCheck {
  readonly command: Command;
  readonly skipWhen: CompiledExpr;
  readonly say: CompiledTemplate;
}

interface StepBase {
  readonly id: string;
  readonly title: CompiledTemplate;
  readonly note?: string;
  readonly scope?: Scope;
  readonly env: readonly EnvBinding[];
  readonly capture: readonly (readonly [string, CompiledExpr])[];
  readonly expect?: { readonly that: CompiledExpr; readonly message?: CompiledTemplate };
  readonly decide: readonly Decision[];
  /** What the step found, in a line for people (the thread post's finding); rendered once the step passed. */
  readonly summary?: CompiledTemplate;
  /** The jumphost tools its commands call (scope preamble, command, guards, read-back). */
  readonly tools: readonly JumphostTool[];
}

export interface RunStep extends StepBase {
  readonly kind: 'run';
  readonly command: Command;
  readonly destructive: boolean;
  readonly approval?: {
    readonly summary: CompiledTemplate;
    readonly targets: readonly CompiledTemplate[];
    readonly evidence: readonly CompiledTemplate[];
    /** Distinct approvers needed (1: one approver); a site profile may raise it (approvalQuorum). */
    readonly quorum: number;
  };
  readonly guard: readonly GuardCheck[];
  readonly verify?: VerifyCheck;
}

export interface PollStep extends StepBase {
  readonly kind: 'poll';
  readonly command: Command;
  readonly attempts: number;
  readonly everyMs: number;
  readonly firstAfterMs: number;
  readonly until: CompiledExpr;
  readonly failWhen?: { readonly that: CompiledExpr; readonly message?: CompiledTemplate };
  readonly progress?: CompiledTemplate;
  readonly exhausted: CompiledTemplate;
}

export type LeafStep = RunStep | PollStep;

export interface ForEachStep {
  readonly kind: 'for_each';
  readonly id: string;
  readonly title: CompiledTemplate;
  readonly note?: string;
  readonly items: CompiledExpr;
  readonly as: string;
  /** What a person calls an item (rendered with the loop variable and env); shown before its ids. */
  readonly label?: CompiledTemplate;
  readonly empty?: CompiledTemplate;
  readonly env: readonly EnvBinding[];
  readonly steps: readonly LeafStep[];
}

export interface Finding {
  readonly when: CompiledExpr;
  readonly say: CompiledTemplate;
  /** Its short name, e.g. `D-045 haproxy DOWN`: what the report names when the finding cannot be decided. */
  readonly issue: string;
}

/** Runs nothing remotely: states every finding whose condition holds (diagnose's verdict). */
export interface ReportStep {
  readonly kind: 'report';
  readonly id: string;
  readonly title: CompiledTemplate;
  readonly note?: string;
  readonly findings: readonly Finding[];
  readonly none?: CompiledTemplate;
}

export type Step = LeafStep | ForEachStep | ReportStep;

export interface RunbookParam {
  readonly name: string;
  readonly type: ParamType;
  readonly env: string;
  readonly description: string;
  /** A read-only listing of the values to pick from (a front's picker), when the runbook offers one. */
  readonly pick?: ParamPick;
}

export interface ParamPick {
  readonly title: string;
  readonly scope?: Scope;
  /** Prints one candidate per line: the value, then an optional label. Read-only. */
  readonly script: string;
  readonly timeoutMs: number;
}

export interface Runbook {
  readonly name: string;
  readonly summary: string;
  readonly source: string;
  readonly readOnly: boolean;
  /** True when a step is destructive: such a run takes the site's exclusive lock. */
  readonly exclusive: boolean;
  readonly file: string;
  /** The file's content as it was read: what a run stores at submit and resumes with (see copy.ts). */
  readonly text: string;
  /** sha256 of the runbook file and the scope preambles it uses: an approval is bound to it. */
  readonly digest: string;
  readonly params: readonly RunbookParam[];
  readonly steps: readonly Step[];
  /** The jumphost tools it cannot do without: a run refuses to start when one is missing. */
  readonly requires: readonly JumphostTool[];
  /** Every jumphost tool any of its steps calls. */
  readonly tools: readonly JumphostTool[];
}
