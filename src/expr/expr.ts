import { CapiError } from '../errors.js';
import { ExprEvalError, ExprSyntaxError } from './errors.js';
import { type EvalOptions, evaluate, isTruthy, toStr } from './evaluate.js';

export type { EvalOptions } from './evaluate.js';

import { type Node, parse } from './parser.js';

/** Several expressions plus their surrounding text; the bound is generous for Slack messages. */
export const MAX_TEMPLATE_LENGTH = 10_000;

export interface CompiledExpr {
  readonly kind: 'expr';
  readonly source: string;
  readonly ast: Node;
}

export interface CompiledTemplate {
  readonly kind: 'template';
  readonly source: string;
  /** Literal text (braces already unescaped) and expressions, in order. */
  readonly parts: readonly (string | CompiledExpr)[];
}

export type Scope = Readonly<Record<string, unknown>>;

/** Throws ExprSyntaxError (with column and caret) for anything that cannot run, including unknown functions. */
export function compileExpr(source: string): CompiledExpr {
  return Object.freeze({ kind: 'expr', source, ast: parse(source) });
}

/** Throws ExprEvalError naming what failed; never coerces types behind the operator's back. */
export function evaluateExpr(expr: CompiledExpr, scope: Scope, options?: EvalOptions): unknown {
  try {
    return evaluate(expr.ast, expr.source, scope, options) ?? null;
  } catch (err) {
    if (err instanceof CapiError) throw err;
    // e.g. stack exhaustion on pathological data: still report it as this expression's failure.
    const message = err instanceof Error ? err.message : String(err);
    throw new ExprEvalError(`evaluation failed: ${message}`, expr.source, 0, [], { cause: err });
  }
}

export function evaluateBoolean(expr: CompiledExpr, scope: Scope): boolean {
  return isTruthy(evaluateExpr(expr, scope));
}

/**
 * Names the expression (or every expression in a template) reads from the scope, sorted and unique.
 * `it` is never included: the parser only accepts it inside a list function, where it is the element.
 */
export function freeVariables(compiled: CompiledExpr | CompiledTemplate): string[] {
  const names = new Set<string>();
  const exprs = compiled.kind === 'expr' ? [compiled] : compiled.parts.filter((p) => typeof p !== 'string');
  for (const e of exprs) collectVariables(e.ast, names);
  return [...names].sort();
}

/** Same as freeVariables, named for call sites that only ever hold templates. */
export function templateFreeVariables(template: CompiledTemplate): string[] {
  return freeVariables(template);
}

function collectVariables(node: Node, into: Set<string>): void {
  switch (node.kind) {
    case 'var':
      into.add(node.name);
      return;
    case 'literal':
    case 'it':
      return;
    case 'list':
      for (const item of node.items) collectVariables(item, into);
      return;
    case 'member':
      collectVariables(node.object, into);
      collectVariables(node.key, into);
      return;
    case 'unary':
      collectVariables(node.operand, into);
      return;
    case 'binary':
      collectVariables(node.left, into);
      collectVariables(node.right, into);
      return;
    case 'call':
      for (const arg of node.args) collectVariables(arg, into);
      return;
  }
}

/**
 * `{expr}` segments are expressions; `{{` and `}}` are literal braces. Braces inside quoted strings
 * within a segment (a regex like "[a-z]{5}") do not end it.
 */
export function compileTemplate(template: string): CompiledTemplate {
  if (template.length > MAX_TEMPLATE_LENGTH) {
    throw new ExprSyntaxError(
      `template is ${template.length} characters long, over the limit of ${MAX_TEMPLATE_LENGTH}`,
      template,
      MAX_TEMPLATE_LENGTH,
    );
  }
  const parts: (string | CompiledExpr)[] = [];
  let text = '';
  let i = 0;
  while (i < template.length) {
    const c = template.charAt(i);
    if (c === '}') {
      if (template.charAt(i + 1) !== '}') {
        throw new ExprSyntaxError("unmatched '}' in template: write '}}' for a literal brace", template, i);
      }
      text += '}';
      i += 2;
      continue;
    }
    if (c !== '{') {
      text += c;
      i++;
      continue;
    }
    if (template.charAt(i + 1) === '{') {
      text += '{';
      i += 2;
      continue;
    }
    const end = findSegmentEnd(template, i + 1);
    if (end === -1) {
      throw new ExprSyntaxError(
        "unclosed '{' in template: close the expression with '}', or write '{{' for a literal brace",
        template,
        i,
      );
    }
    const source = template.slice(i + 1, end);
    if (source.trim() === '')
      throw new ExprSyntaxError("empty '{}' in template: put an expression inside", template, i);
    if (text !== '') parts.push(text);
    text = '';
    try {
      parts.push(compileExpr(source));
    } catch (err) {
      // Re-anchor the error in the template the operator wrote, not in the extracted segment.
      if (err instanceof ExprSyntaxError) throw new ExprSyntaxError(err.reason, template, i + 1 + err.index);
      throw err;
    }
    i = end + 1;
  }
  if (text !== '') parts.push(text);
  return Object.freeze({ kind: 'template', source: template, parts: Object.freeze(parts) });
}

/** Index of the `}` closing the segment starting at `from`, skipping quoted strings; -1 if none. */
function findSegmentEnd(template: string, from: number): number {
  let quote = '';
  for (let j = from; j < template.length; j++) {
    const ch = template.charAt(j);
    if (quote !== '') {
      if (ch === '\\') j++;
      else if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") {
      quote = ch;
    } else if (ch === '}') {
      return j;
    }
  }
  return -1;
}

export function renderCompiledTemplate(template: CompiledTemplate, scope: Scope): string {
  return template.parts
    .map((part) => (typeof part === 'string' ? part : toStr(evaluateExpr(part, scope))))
    .join('');
}

export function renderTemplate(template: string, scope: Scope): string {
  return renderCompiledTemplate(compileTemplate(template), scope);
}
