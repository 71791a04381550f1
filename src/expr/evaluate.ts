import { closestName, ExprEvalError } from './errors.js';
import type { FunctionName, Node } from './parser.js';

export const MAX_REGEX_LENGTH = 200;
const REGEX_CACHE_LIMIT = 500;

/** Compiled patterns (or the reason they were refused), keyed by flags and source; oldest evicted first. */
const regexCache = new Map<string, RegExp | string>();

/**
 * The one place patterns become RegExps. Returns the RegExp, or a reason the pattern is refused.
 * Without flags, except `g` for replace(): exec/test never read lastIndex, so sharing cached instances is safe.
 */
export function compileRegex(pattern: string, global = false): RegExp | string {
  const key = `${global ? 'g' : ''}/${pattern}`;
  const cached = regexCache.get(key);
  if (cached !== undefined) return cached;
  const compiled = buildRegex(pattern, global);
  if (regexCache.size >= REGEX_CACHE_LIMIT) {
    const oldest = regexCache.keys().next();
    if (oldest.done !== true) regexCache.delete(oldest.value);
  }
  regexCache.set(key, compiled);
  return compiled;
}

function buildRegex(pattern: string, global: boolean): RegExp | string {
  const shown = JSON.stringify(pattern.length > 60 ? `${pattern.slice(0, 57)}...` : pattern);
  if (pattern.length > MAX_REGEX_LENGTH) {
    return `regex ${shown} is ${pattern.length} characters long, over the limit of ${MAX_REGEX_LENGTH}`;
  }
  if (repeatsARepetition(pattern)) {
    return `regex ${shown} repeats a group that itself repeats (like (a+)+), which can take exponential time on unlucky output: rewrite it without the nested repetition`;
  }
  try {
    return new RegExp(pattern, global ? 'g' : '');
  } catch (err) {
    return `regex ${shown} does not compile: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/**
 * Heuristic guard against catastrophic backtracking: JS regexes have no timeout, and a gate runs on
 * whatever the remote CLI printed. Refuses a group containing `*`, `+` or `{n,m}` that is itself repeated.
 */
function repeatsARepetition(pattern: string): boolean {
  const groupHasRepeat: boolean[] = [];
  let afterRepeatingGroup = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === '\\') {
      i++;
      afterRepeatingGroup = false;
      continue;
    }
    if (c === '[') {
      i++;
      while (i < pattern.length && pattern.charAt(i) !== ']') i += pattern.charAt(i) === '\\' ? 2 : 1;
      afterRepeatingGroup = false;
      continue;
    }
    if (c === '(') {
      groupHasRepeat.push(false);
      afterRepeatingGroup = false;
      continue;
    }
    if (c === ')') {
      const inner = groupHasRepeat.pop() ?? false;
      if (inner && groupHasRepeat.length > 0) groupHasRepeat[groupHasRepeat.length - 1] = true;
      afterRepeatingGroup = inner;
      continue;
    }
    const repeat = c === '*' || c === '+' || (c === '{' && /^\{\d+,\d*\}/.test(pattern.slice(i)));
    if (repeat) {
      if (afterRepeatingGroup) return true;
      if (groupHasRepeat.length > 0) groupHasRepeat[groupHasRepeat.length - 1] = true;
    }
    afterRepeatingGroup = false;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------
// Value helpers, shared with templates.

export type Obj = Record<string, unknown>;

export const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** false, null, undefined, 0, "" and [] are falsy; everything else (including {}) is truthy. */
export function isTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  return !(typeof v === 'number' && Number.isNaN(v));
}

/** str(): strings as-is, numbers in decimal, null as "", lists and objects as JSON. */
export function toStr(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    // Cyclic data can come out of YAML anchors; a message must still render.
    return String(v);
  }
}

export function typeName(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return 'object';
  return typeof v;
}

/** Type plus a short look at the value, so "got string" also shows *which* string. */
function describe(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (isObject(v)) return 'an object';
  return `${typeName(v)} ${preview(v)}`;
}

function preview(v: unknown): string {
  const text = typeof v === 'string' ? JSON.stringify(v) : toStr(v);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** Strict deep equality: no coercion ("1" != 1); undefined counts as null; lists and objects by content. */
export function deepEqual(a: unknown, b: unknown): boolean {
  const x = a === undefined ? null : a;
  const y = b === undefined ? null : b;
  if (x === y) return true;
  if (Array.isArray(x)) {
    return Array.isArray(y) && x.length === y.length && x.every((item, i) => deepEqual(item, y[i]));
  }
  if (isObject(x) && isObject(y)) {
    const keys = Object.keys(x);
    return (
      keys.length === Object.keys(y).length && keys.every((k) => Object.hasOwn(y, k) && deepEqual(x[k], y[k]))
    );
  }
  return false;
}

function nullHint(what: string): string {
  return `${what} is null: the field may be missing from the command output; use default(..., fallback)`;
}

// ---------------------------------------------------------------------------------------------------

/** The current lambda element, boxed because the element itself may be null. */
interface Frame {
  readonly value: unknown;
}

export interface EvalOptions {
  /**
   * Called when `default(x, fallback)` outside a list function falls back because `x` is null: `path` is `x` as
   * written when it is a plain chain of fields (`out.items`), else undefined. check-recording uses it to tell a
   * capture that only "worked" because a field was missing from the output.
   */
  readonly onFallback?: (path: string | undefined) => void;
}

export function evaluate(
  ast: Node,
  source: string,
  scope: Readonly<Record<string, unknown>>,
  options: EvalOptions = {},
): unknown {
  return new Evaluator(source, scope, options).eval(ast, undefined);
}

/** `out.items`, `out["Image Name"]`: a chain of fields from a variable, as written; undefined for anything else. */
function fieldPath(node: Node): string | undefined {
  if (node.kind === 'var') return node.name;
  if (node.kind !== 'member' || node.key.kind !== 'literal') return undefined;
  const base = fieldPath(node.object);
  const key = node.key.value;
  if (base === undefined) return undefined;
  return typeof key === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)
    ? `${base}.${key}`
    : `${base}[${JSON.stringify(key)}]`;
}

class Evaluator {
  constructor(
    private readonly source: string,
    private readonly scope: Readonly<Record<string, unknown>>,
    private readonly options: EvalOptions,
  ) {}

  private fail(at: Node, reason: string): never {
    throw new ExprEvalError(reason, this.source, at.pos);
  }

  eval(node: Node, it: Frame | undefined): unknown {
    switch (node.kind) {
      case 'literal':
        return node.value;
      case 'list':
        return node.items.map((item) => this.eval(item, it));
      case 'var':
        return this.variable(node.name, node);
      case 'it':
        if (it === undefined) return this.fail(node, "'it' used outside a list function");
        return it.value ?? null;
      case 'member':
        return this.member(node, this.eval(node.object, it), this.eval(node.key, it));
      case 'unary': {
        const v = this.eval(node.operand, it);
        if (node.op === 'not') return !isTruthy(v);
        return -this.number(node, v, "'-'", 'the operand');
      }
      case 'binary':
        return this.binary(node, it);
      case 'call':
        return this.call(node, it);
    }
  }

  private variable(name: string, node: Node): unknown {
    if (Object.hasOwn(this.scope, name)) return this.scope[name] ?? null;
    const known = Object.keys(this.scope).sort();
    const guess = closestName(name, known);
    const list = known.length > 20 ? `${known.slice(0, 20).join(', ')}, ...` : known.join(', ');
    return this.fail(
      node,
      `unknown variable '${name}'${guess ? `: did you mean '${guess}'?` : ''} (known: ${list || 'none'})`,
    );
  }

  private member(node: Extract<Node, { kind: 'member' }>, obj: unknown, key: unknown): unknown {
    // CLI output often lacks optional fields, so a missing link in a chain reads as null rather than failing.
    if (obj === null || obj === undefined) return null;
    if (Array.isArray(obj) || typeof obj === 'string') {
      const kind = Array.isArray(obj) ? 'list' : 'string';
      if (typeof key !== 'number') {
        const field = typeof key === 'string' ? key : typeName(key);
        const hint = Array.isArray(obj)
          ? `: use map(list, it.${field}) to read it from every element, or [0].${field} for the first one`
          : '';
        return this.fail(node, `cannot read '${field}' of ${describe(obj)}${hint}`);
      }
      if (!Number.isInteger(key)) return this.fail(node, `${kind} index must be a whole number, got ${key}`);
      const index = key < 0 ? obj.length + key : key;
      if (index < 0 || index >= obj.length) return null;
      return obj[index] ?? null;
    }
    if (isObject(obj)) {
      if (typeof key !== 'string' && typeof key !== 'number') {
        return this.fail(node, `object keys are strings, got ${describe(key)}`);
      }
      const k = String(key);
      // Own properties only: `x.constructor` or `x.__proto__` must not reach into JS internals.
      return Object.hasOwn(obj, k) ? (obj[k] ?? null) : null;
    }
    return this.fail(node, `cannot read '${toStr(key)}' of ${describe(obj)}`);
  }

  private binary(node: Extract<Node, { kind: 'binary' }>, it: Frame | undefined): unknown {
    const { op } = node;
    if (op === 'and') return isTruthy(this.eval(node.left, it)) && isTruthy(this.eval(node.right, it));
    if (op === 'or') return isTruthy(this.eval(node.left, it)) || isTruthy(this.eval(node.right, it));
    const left = this.eval(node.left, it);
    const right = this.eval(node.right, it);
    switch (op) {
      case '==':
        return deepEqual(left, right);
      case '!=':
        return !deepEqual(left, right);
      case '<':
      case '<=':
      case '>':
      case '>=':
        return this.compare(node, op, left, right);
      case '=~':
        return this.regexTest(node, left, right);
      case '!~':
        return !this.regexTest(node, left, right);
      case 'in':
        return this.contains(node, right, left, "'in'");
      case 'not in':
        return !this.contains(node, right, left, "'not in'");
      case '+':
        if (typeof left === 'string' && typeof right === 'string') return left + right;
        if (typeof left !== typeof right && (typeof left === 'string' || typeof right === 'string')) {
          return this.fail(
            node,
            `'+' adds two numbers or joins two strings, got ${typeName(left)} and ${typeName(right)}: use num(...) to add numeric text, or str(...) to join (left is ${preview(left)}, right is ${preview(right)})`,
          );
        }
        return this.arithmetic(node, left, right);
      case '-':
      case '*':
      case '/':
      case '%':
        return this.arithmetic(node, left, right);
    }
  }

  private compare(node: Node, op: '<' | '<=' | '>' | '>=', l: unknown, r: unknown): boolean {
    if (
      (typeof l === 'number' && typeof r === 'number') ||
      (typeof l === 'string' && typeof r === 'string')
    ) {
      if (op === '<') return l < r;
      if (op === '<=') return l <= r;
      if (op === '>') return l > r;
      return l >= r;
    }
    const types = `got ${typeName(l)} and ${typeName(r)}`;
    const values = `(left is ${preview(l)}, right is ${preview(r)})`;
    let hint = '';
    if (typeof l === 'string' || typeof r === 'string') hint = ': use num(...) to compare numeric text';
    else if (l === null || l === undefined || r === null || r === undefined) {
      hint = ': a field may be missing from the command output; use default(..., fallback)';
    }
    return this.fail(node, `'${op}' needs two numbers or two strings, ${types}${hint} ${values}`);
  }

  private number(node: Node, v: unknown, op: string, side: string): number {
    if (typeof v === 'number') return v;
    if (v === null || v === undefined) return this.fail(node, `${op} needs numbers, but ${nullHint(side)}`);
    const hint =
      typeof v === 'string'
        ? 'use num(...) if it holds numeric text'
        : `use num(...) to convert it to a number`;
    return this.fail(node, `${op} needs numbers, but ${side} is ${describe(v)}: ${hint}`);
  }

  private arithmetic(node: Extract<Node, { kind: 'binary' }>, left: unknown, right: unknown): number {
    const op = `'${node.op}'`;
    const l = this.number(node, left, op, 'the left side');
    const r = this.number(node, right, op, 'the right side');
    if ((node.op === '/' || node.op === '%') && r === 0) return this.fail(node, `division by zero in ${op}`);
    let result: number;
    if (node.op === '+') result = l + r;
    else if (node.op === '-') result = l - r;
    else if (node.op === '*') result = l * r;
    else if (node.op === '/') result = l / r;
    else result = l % r;
    if (!Number.isFinite(result)) return this.fail(node, `${op} produced a number too large to use`);
    return result;
  }

  private regex(node: Node, pattern: unknown, what: string, global = false): RegExp {
    if (typeof pattern !== 'string') {
      return this.fail(node, `${what} needs a string holding a regex, got ${describe(pattern)}`);
    }
    const compiled = compileRegex(pattern, global);
    if (typeof compiled === 'string') return this.fail(node, compiled);
    return compiled;
  }

  private regexTest(node: Extract<Node, { kind: 'binary' }>, text: unknown, pattern: unknown): boolean {
    const re = this.regex(node, pattern, `the right side of '${node.op}'`);
    if (typeof text === 'string') return re.test(text);
    if (text === null || text === undefined) {
      return this.fail(node, `'${node.op}' needs a string on the left, but ${nullHint('it')}`);
    }
    return this.fail(
      node,
      `'${node.op}' needs a string on the left, got ${describe(text)}: use str(...) to convert it`,
    );
  }

  private contains(node: Node, haystack: unknown, needle: unknown, what: string): boolean {
    if (Array.isArray(haystack)) return haystack.some((item) => deepEqual(item, needle));
    if (typeof haystack === 'string') {
      if (typeof needle !== 'string') {
        return this.fail(
          node,
          `${what} on a string looks for a substring, but the value sought is ${describe(needle)}`,
        );
      }
      return haystack.includes(needle);
    }
    if (haystack === null || haystack === undefined) {
      return this.fail(node, `${what} needs a list or a string to search, but ${nullHint('it')}`);
    }
    const hint = isObject(haystack) ? ': use keys(...) to search its keys' : '';
    return this.fail(node, `${what} needs a list or a string to search, got ${describe(haystack)}${hint}`);
  }

  // -------------------------------------------------------------------------------------------------
  // Functions

  private arg(node: Extract<Node, { kind: 'call' }>, i: number): Node {
    const a = node.args[i];
    if (a === undefined) return this.fail(node, `${node.name}() is missing argument ${i + 1}`);
    return a;
  }

  private value(node: Extract<Node, { kind: 'call' }>, i: number, it: Frame | undefined): unknown {
    return this.eval(this.arg(node, i), it);
  }

  private list(node: Extract<Node, { kind: 'call' }>, i: number, it: Frame | undefined): readonly unknown[] {
    const at = this.arg(node, i);
    const v = this.eval(at, it);
    if (Array.isArray(v)) return v;
    const where = `${node.name}() needs a list as argument ${i + 1}`;
    if (v === null || v === undefined) {
      return this.fail(
        at,
        `${where}, but it was null: the command output may have parsed to nothing, or the field is missing`,
      );
    }
    if (isObject(v)) {
      return this.fail(
        at,
        `${where}, got an object: use keys(...) for its keys, or check the command prints a list (e.g. 'list -f yaml' rather than 'show')`,
      );
    }
    return this.fail(at, `${where}, got ${describe(v)}`);
  }

  private string(node: Extract<Node, { kind: 'call' }>, i: number, it: Frame | undefined): string {
    const at = this.arg(node, i);
    const v = this.eval(at, it);
    if (typeof v === 'string') return v;
    const where = `${node.name}() needs a string as argument ${i + 1}`;
    if (v === null || v === undefined) return this.fail(at, `${where}, but ${nullHint('it')}`);
    return this.fail(at, `${where}, got ${describe(v)}: use str(...) to convert it`);
  }

  /** Runs `body` with `it` bound to each element; failures say which element so the operator can find it. */
  private perElement<T>(
    node: Extract<Node, { kind: 'call' }>,
    list: readonly unknown[],
    visit: (result: unknown, element: unknown) => T | undefined,
  ): T | undefined {
    const body = this.arg(node, 1);
    for (let i = 0; i < list.length; i++) {
      const element = list[i];
      let result: unknown;
      try {
        result = this.eval(body, { value: element });
      } catch (err) {
        if (err instanceof ExprEvalError)
          throw err.withNote(`in ${node.name}() at element [${i}] of its list`);
        throw err;
      }
      const stop = visit(result, element);
      if (stop !== undefined) return stop;
    }
    return undefined;
  }

  private call(node: Extract<Node, { kind: 'call' }>, it: Frame | undefined): unknown {
    const name: FunctionName = node.name;
    switch (name) {
      case 'all':
        return (
          this.perElement(node, this.list(node, 0, it), (r) => (isTruthy(r) ? undefined : false)) ?? true
        );
      case 'any':
        return (
          this.perElement(node, this.list(node, 0, it), (r) => (isTruthy(r) ? true : undefined)) ?? false
        );
      case 'filter': {
        const out: unknown[] = [];
        this.perElement(node, this.list(node, 0, it), (r, element) => {
          if (isTruthy(r)) out.push(element);
          return undefined;
        });
        return out;
      }
      case 'map': {
        const out: unknown[] = [];
        this.perElement(node, this.list(node, 0, it), (r) => {
          out.push(r ?? null);
          return undefined;
        });
        return out;
      }
      case 'count': {
        const list = this.list(node, 0, it);
        if (node.args.length < 2) return list.length;
        let n = 0;
        this.perElement(node, list, (r) => {
          if (isTruthy(r)) n++;
          return undefined;
        });
        return n;
      }
      case 'find': {
        // Boxed so a matching element that is itself null still stops the search.
        const found = this.perElement(node, this.list(node, 0, it), (r, element) =>
          isTruthy(r) ? { element } : undefined,
        );
        return found === undefined ? null : (found.element ?? null);
      }
      case 'len': {
        const at = this.arg(node, 0);
        const v = this.eval(at, it);
        if (typeof v === 'string' || Array.isArray(v)) return v.length;
        if (v === null || v === undefined)
          return this.fail(at, `len() needs a list or a string, but ${nullHint('it')}`);
        const hint = isObject(v) ? ': use len(keys(...)) to count its keys' : '';
        return this.fail(at, `len() needs a list or a string, got ${describe(v)}${hint}`);
      }
      case 'num': {
        const at = this.arg(node, 0);
        const v = this.eval(at, it);
        if (typeof v === 'number') return v;
        if (typeof v === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(v)) return Number(v);
        if (v === null || v === undefined) return this.fail(at, `num() ${nullHint('its argument')}`);
        return this.fail(at, `num() could not read a number from ${describe(v)}`);
      }
      case 'str':
        return toStr(this.value(node, 0, it));
      case 'lower':
        return this.string(node, 0, it).toLowerCase();
      case 'upper':
        return this.string(node, 0, it).toUpperCase();
      case 'trim':
        return this.string(node, 0, it).trim();
      case 'lines': {
        const parts = this.string(node, 0, it).split(/\r?\n/);
        if (parts[parts.length - 1] === '') parts.pop();
        return parts;
      }
      case 'split':
        return this.string(node, 0, it).split(this.string(node, 1, it));
      case 'join':
        return this.list(node, 0, it)
          .map((item) => toStr(item))
          .join(this.string(node, 1, it));
      case 'replace': {
        const text = this.string(node, 0, it);
        const re = this.regex(this.arg(node, 1), this.value(node, 1, it), 'replace() argument 2', true);
        return text.replace(re, this.string(node, 2, it));
      }
      case 'match': {
        const text = this.string(node, 0, it);
        const m = this.regex(this.arg(node, 1), this.value(node, 1, it), 'match() argument 2').exec(text);
        if (m === null) return null;
        return (m.length > 1 ? m[1] : m[0]) ?? null;
      }
      case 'contains':
        return this.contains(node, this.value(node, 0, it), this.value(node, 1, it), 'contains()');
      case 'first':
        return this.list(node, 0, it)[0] ?? null;
      case 'last': {
        const list = this.list(node, 0, it);
        return list[list.length - 1] ?? null;
      }
      case 'unique': {
        const out: unknown[] = [];
        for (const item of this.list(node, 0, it))
          if (!out.some((seen) => deepEqual(seen, item))) out.push(item);
        return out;
      }
      case 'flatten':
        // One level: a list of lists (units per application) becomes one list; other elements stay.
        return this.list(node, 0, it).flatMap((item) => (Array.isArray(item) ? item : [item]));
      case 'keys': {
        const at = this.arg(node, 0);
        const v = this.eval(at, it);
        if (isObject(v)) return Object.keys(v);
        if (v === null || v === undefined)
          return this.fail(at, `keys() needs an object, but ${nullHint('it')}`);
        return this.fail(at, `keys() needs an object, got ${describe(v)}`);
      }
      case 'default': {
        const v = this.value(node, 0, it);
        if (v !== null && v !== undefined) return v;
        if (it === undefined) this.options.onFallback?.(fieldPath(this.arg(node, 0)));
        // The fallback is only evaluated when needed, so it may itself be something that fails on present data.
        return this.value(node, 1, it);
      }
      case 'sum': {
        let total = 0;
        this.list(node, 0, it).forEach((item, i) => {
          if (typeof item !== 'number') {
            this.fail(
              this.arg(node, 0),
              `sum() needs a list of numbers, but element [${i}] is ${describe(item)}: use sum(map(list, num(it)))`,
            );
          }
          total += item;
        });
        return total;
      }
      case 'max':
      case 'min':
        return this.extreme(node, it);
      default: {
        const unreachable: never = name;
        return this.fail(node, `function '${String(unreachable)}' has no implementation`);
      }
    }
  }

  private extreme(node: Extract<Node, { kind: 'call' }>, it: Frame | undefined): unknown {
    const list = this.list(node, 0, it);
    const first = list[0];
    if (list.length === 0) return null;
    const kind = typeof first;
    if (kind !== 'number' && kind !== 'string') {
      return this.fail(
        this.arg(node, 0),
        `${node.name}() needs numbers or strings, but element [0] is ${describe(first)}`,
      );
    }
    let best = first as number | string;
    list.forEach((item, i) => {
      if (typeof item !== kind) {
        this.fail(
          this.arg(node, 0),
          `${node.name}() needs all numbers or all strings, but element [0] is ${kind} and element [${i}] is ${describe(item)}${kind === 'number' ? ': use map(list, num(it))' : ''}`,
        );
      }
      const v = item as number | string;
      if (node.name === 'max' ? v > best : v < best) best = v;
    });
    return best;
  }
}
