import { CapiError, ErrorCode } from '../errors.js';

/** Source lines longer than this are cut around the caret so a 2000-char expression stays readable in chat. */
const EXCERPT_WIDTH = 100;

export interface SourcePosition {
  /** 1-based */
  readonly line: number;
  /** 1-based */
  readonly column: number;
}

export function positionOf(source: string, index: number): SourcePosition {
  const at = Math.max(0, Math.min(index, source.length));
  const before = source.slice(0, at);
  const lineStart = before.lastIndexOf('\n') + 1;
  let line = 1;
  for (const ch of before) if (ch === '\n') line++;
  return { line, column: at - lineStart + 1 };
}

/** "line 2, column 5" for multi-line sources (YAML block scalars), plain "column 5" otherwise. */
export function describePosition(source: string, index: number): string {
  const { line, column } = positionOf(source, index);
  return source.includes('\n') ? `line ${line}, column ${column}` : `column ${column}`;
}

/**
 * `reason at column N:` followed by the offending source line and a caret under the column, so an
 * operator reading the error in Slack can fix the runbook without counting characters.
 */
export function formatLocated(reason: string, source: string, index: number): string {
  const at = Math.max(0, Math.min(index, source.length));
  const lineStart = source.slice(0, at).lastIndexOf('\n') + 1;
  const newline = source.indexOf('\n', lineStart);
  const lineEnd = newline === -1 ? source.length : newline;
  // Tabs and CRs would shift the caret, and replacing them one-for-one keeps the columns aligned.
  const line = source.slice(lineStart, lineEnd).replace(/[\t\r]/g, ' ');
  const col0 = at - lineStart;
  let shown = line;
  let caret = col0;
  if (line.length > EXCERPT_WIDTH) {
    const start = Math.max(0, Math.min(col0 - EXCERPT_WIDTH / 2, line.length - EXCERPT_WIDTH));
    const end = Math.min(line.length, start + EXCERPT_WIDTH);
    shown = `${start > 0 ? '…' : ''}${line.slice(start, end)}${end < line.length ? '…' : ''}`;
    caret = col0 - start + (start > 0 ? 1 : 0);
  }
  return `${reason} at ${describePosition(source, at)}:\n  ${shown}\n  ${' '.repeat(caret)}^`;
}

/** An expression error that points at its place in the source: the line and column an operator fixes. */
abstract class LocatedExprError extends CapiError {
  readonly line: number;
  readonly column: number;
  constructor(
    code: ErrorCode,
    message: string,
    /** The problem without the location, so templates can re-anchor it in the enclosing text. */
    readonly reason: string,
    readonly source: string,
    /** 0-based offset into `source` */
    readonly index: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    const pos = positionOf(source, index);
    this.line = pos.line;
    this.column = pos.column;
  }
}

/** The expression (or template) cannot be compiled; raised at runbook load time, before anything runs. */
export class ExprSyntaxError extends LocatedExprError {
  constructor(reason: string, source: string, index: number) {
    super(ErrorCode.ExpressionSyntax, formatLocated(reason, source, index), reason, source, index);
  }
}

/** The expression compiled but failed against this step's data (missing variable, wrong type, bad regex). */
export class ExprEvalError extends LocatedExprError {
  constructor(
    reason: string,
    source: string,
    index: number,
    /** Where inside lambdas the failure happened, innermost first: "in any() at element [3]". */
    readonly notes: readonly string[] = [],
    options?: { cause?: unknown },
  ) {
    const message = formatLocated(reason, source, index) + notes.map((n) => `\n  (${n})`).join('');
    super(ErrorCode.ExpressionEval, message, reason, source, index, options);
  }

  withNote(note: string): ExprEvalError {
    return new ExprEvalError(this.reason, this.source, this.index, [...this.notes, note], {
      cause: this.cause,
    });
  }
}

/** Closest candidate by edit distance, for "did you mean" hints; undefined when nothing is close. */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}
