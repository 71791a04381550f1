/**
 * An in-memory RemoteExecutor for the interpreter's fast tests: every command is answered by the first rule
 * whose pattern its script contains, in the order given. No process, no sshd: a run takes milliseconds.
 * The engine's preflight is answered as a jumphost with every CLI (but `missingTools`) would answer it.
 */
import type { ExecRequest, ExecResult, RemoteExecutor } from '../../src/ssh/types.js';

export interface Answer {
  readonly stdout?: string;
  readonly stderr?: string;
  /** Default 0. */
  readonly code?: number;
}

/** Answers one command; `n` counts the calls this rule answered before (0 for the first). */
export type Responder = (req: ExecRequest, n: number) => Answer;

export type Rule = readonly [pattern: string | RegExp, answer: Answer | Responder];

export const SCRIPTED_HOME = '/home/ops';

export class ScriptedExecutor implements RemoteExecutor {
  /** Every command the run sent, preflight excluded, in order. */
  readonly calls: ExecRequest[] = [];
  /** Scripts no rule matched: the run saw exit 127 for them. */
  readonly unanswered: string[] = [];
  private readonly counts = new Map<Rule, number>();

  constructor(
    private readonly rules: readonly Rule[],
    /** CLIs the preflight reports missing from the jumphost's PATH (default: none). */
    private readonly missingTools: readonly string[] = [],
  ) {}

  /** The scripts sent that contain `text`. */
  sent(text: string): string[] {
    return this.calls.map((c) => c.script).filter((s) => s.includes(text));
  }

  async exec(req: ExecRequest): Promise<ExecResult> {
    if (req.signal?.aborted) return result({ code: 143 }, { cancelled: true });
    if ('CAPI_TOOLS' in req.env) {
      const asked = (req.env.CAPI_TOOLS ?? '').split(' ');
      const missing = this.missingTools.filter((t) => asked.includes(t)).map((t) => `missing ${t}\n`);
      return result({ stdout: `${SCRIPTED_HOME}\n${missing.join('')}` });
    }
    this.calls.push(req);
    const rule = this.rules.find(([pattern]) =>
      typeof pattern === 'string' ? req.script.includes(pattern) : pattern.test(req.script),
    );
    if (!rule) {
      this.unanswered.push(req.script);
      return result({ code: 127, stderr: `scripted executor: no answer for ${req.script}\n` });
    }
    const n = this.counts.get(rule) ?? 0;
    this.counts.set(rule, n + 1);
    const answer = typeof rule[1] === 'function' ? rule[1](req, n) : rule[1];
    for (const stream of ['stdout', 'stderr'] as const) {
      for (const line of lines(answer[stream] ?? '')) req.onLine?.(stream, line);
    }
    return result(answer);
  }

  async close(): Promise<void> {}
}

function lines(text: string): string[] {
  const all = text.split('\n');
  if (all.at(-1) === '') all.pop();
  return all;
}

function result(answer: Answer, more: Partial<ExecResult> = {}): ExecResult {
  return {
    stdout: answer.stdout ?? '',
    stderr: answer.stderr ?? '',
    code: answer.code ?? 0,
    signal: null,
    timedOut: false,
    cancelled: false,
    durationMs: 1,
    ...more,
  };
}
