import { closestName, describePosition, ExprSyntaxError } from './errors.js';
import { compileRegex } from './evaluate.js';
import { type Token, tokenize } from './lexer.js';

export const MAX_EXPRESSION_LENGTH = 2000;
/** Counts brackets, calls and prefix operators; deep enough for any real gate, shallow enough for the stack. */
export const MAX_NESTING_DEPTH = 64;

export interface FunctionSpec {
  readonly min: number;
  readonly max: number;
  /** The second argument is evaluated once per list element with `it` bound to the element. */
  readonly lambda?: true;
  /** Argument position holding a regex; a literal there is validated at compile time. */
  readonly regexArg?: number;
  readonly usage: string;
}

const FUNCTION_TABLE = {
  all: { min: 2, max: 2, lambda: true, usage: 'all(list, condition)' },
  any: { min: 2, max: 2, lambda: true, usage: 'any(list, condition)' },
  filter: { min: 2, max: 2, lambda: true, usage: 'filter(list, condition)' },
  map: { min: 2, max: 2, lambda: true, usage: 'map(list, expression)' },
  count: { min: 1, max: 2, lambda: true, usage: 'count(list) or count(list, condition)' },
  find: { min: 2, max: 2, lambda: true, usage: 'find(list, condition)' },
  len: { min: 1, max: 1, usage: 'len(listOrString)' },
  num: { min: 1, max: 1, usage: 'num(value)' },
  str: { min: 1, max: 1, usage: 'str(value)' },
  lower: { min: 1, max: 1, usage: 'lower(string)' },
  upper: { min: 1, max: 1, usage: 'upper(string)' },
  trim: { min: 1, max: 1, usage: 'trim(string)' },
  lines: { min: 1, max: 1, usage: 'lines(string)' },
  split: { min: 2, max: 2, usage: 'split(string, separator)' },
  join: { min: 2, max: 2, usage: 'join(list, separator)' },
  replace: { min: 3, max: 3, regexArg: 1, usage: 'replace(string, regex, replacement)' },
  match: { min: 2, max: 2, regexArg: 1, usage: 'match(string, regex)' },
  contains: { min: 2, max: 2, usage: 'contains(listOrString, value)' },
  first: { min: 1, max: 1, usage: 'first(list)' },
  last: { min: 1, max: 1, usage: 'last(list)' },
  unique: { min: 1, max: 1, usage: 'unique(list)' },
  flatten: { min: 1, max: 1, usage: 'flatten(listOfLists)' },
  keys: { min: 1, max: 1, usage: 'keys(object)' },
  default: { min: 2, max: 2, usage: 'default(value, fallback)' },
  sum: { min: 1, max: 1, usage: 'sum(list)' },
  max: { min: 1, max: 1, usage: 'max(list)' },
  min: { min: 1, max: 1, usage: 'min(list)' },
} as const;

export type FunctionName = keyof typeof FUNCTION_TABLE;
export const FUNCTIONS: Readonly<Record<FunctionName, FunctionSpec>> = FUNCTION_TABLE;
export const FUNCTION_NAMES: readonly FunctionName[] = Object.keys(FUNCTIONS).sort() as FunctionName[];

const isFunctionName = (name: string): name is FunctionName => Object.hasOwn(FUNCTIONS, name);

export type BinaryOp =
  | 'or'
  | 'and'
  | '=='
  | '!='
  | '<'
  | '<='
  | '>'
  | '>='
  | '=~'
  | '!~'
  | 'in'
  | 'not in'
  | '+'
  | '-'
  | '*'
  | '/'
  | '%';

/** Every node carries `pos`, the 0-based source offset an error about it should point at. */
export type Node =
  | { readonly kind: 'literal'; readonly value: string | number | boolean | null; readonly pos: number }
  | { readonly kind: 'list'; readonly items: readonly Node[]; readonly pos: number }
  | { readonly kind: 'var'; readonly name: string; readonly pos: number }
  | { readonly kind: 'it'; readonly pos: number }
  /** `a.b` and `a[expr]`; `.b` is stored as a string-literal key. pos is the '.' or '['. */
  | { readonly kind: 'member'; readonly object: Node; readonly key: Node; readonly pos: number }
  | { readonly kind: 'unary'; readonly op: 'not' | '-'; readonly operand: Node; readonly pos: number }
  /** pos is the operator, which is where type errors point. */
  | {
      readonly kind: 'binary';
      readonly op: BinaryOp;
      readonly left: Node;
      readonly right: Node;
      readonly pos: number;
    }
  | {
      readonly kind: 'call';
      readonly name: FunctionName;
      readonly args: readonly Node[];
      readonly pos: number;
    };

const PREC = { or: 1, and: 2, not: 3, compare: 4, additive: 5, multiplicative: 6, unary: 7 } as const;

const BINARY_PREC: Readonly<Record<string, number>> = {
  or: PREC.or,
  and: PREC.and,
  '==': PREC.compare,
  '!=': PREC.compare,
  '<': PREC.compare,
  '<=': PREC.compare,
  '>': PREC.compare,
  '>=': PREC.compare,
  '=~': PREC.compare,
  '!~': PREC.compare,
  in: PREC.compare,
  '+': PREC.additive,
  '-': PREC.additive,
  '*': PREC.multiplicative,
  '/': PREC.multiplicative,
  '%': PREC.multiplicative,
};

interface BinaryAt {
  readonly op: BinaryOp;
  readonly prec: number;
  readonly token: Token;
  /** tokens consumed: 2 for `not in` */
  readonly width: number;
}

export function parse(source: string): Node {
  if (source.length > MAX_EXPRESSION_LENGTH) {
    throw new ExprSyntaxError(
      `expression is ${source.length} characters long, over the limit of ${MAX_EXPRESSION_LENGTH}: split it across steps`,
      source,
      MAX_EXPRESSION_LENGTH,
    );
  }
  return new Parser(source, tokenize(source)).parseAll();
}

function describeToken(t: Token): string {
  switch (t.type) {
    case 'eof':
      return 'the end of the expression';
    case 'string':
      return `string ${t.text.length > 30 ? `${t.text.slice(0, 27)}...` : t.text}`;
    case 'number':
      return `number ${t.text}`;
    default:
      return `'${t.text}'`;
  }
}

class Parser {
  private index = 0;
  private depth = 0;
  /** > 0 while parsing the per-element argument of all/any/filter/map/count/find, where `it` exists. */
  private lambdaDepth = 0;

  constructor(
    private readonly source: string,
    private readonly tokens: readonly Token[],
  ) {}

  parseAll(): Node {
    if (this.peek().type === 'eof') this.fail(this.peek(), 'the expression is empty');
    const node = this.parseExpression(0);
    const t = this.peek();
    if (t.type !== 'eof') {
      this.fail(
        t,
        `unexpected ${describeToken(t)} after a complete expression: is an operator such as 'and' missing?`,
      );
    }
    return node;
  }

  private fail(at: Token | number, reason: string): never {
    throw new ExprSyntaxError(reason, this.source, typeof at === 'number' ? at : at.start);
  }

  private peek(offset = 0): Token {
    const t = this.tokens[Math.min(this.index + offset, this.tokens.length - 1)];
    if (t === undefined) throw new Error('tokenizer produced no eof token');
    return t;
  }

  private next(): Token {
    const t = this.peek();
    if (t.type !== 'eof') this.index++;
    return t;
  }

  private isOp(text: string): boolean {
    const t = this.peek();
    return t.type === 'op' && t.text === text;
  }

  private enter(at: Token): void {
    this.depth++;
    if (this.depth > MAX_NESTING_DEPTH) {
      this.fail(
        at,
        `expression is nested more than ${MAX_NESTING_DEPTH} levels deep: simplify it or split it across steps`,
      );
    }
  }

  private leave(): void {
    this.depth--;
  }

  /** `separated`: the brackets hold a comma-separated list, so a missing ',' is as likely as a missing closer. */
  private expectClose(closer: string, opener: Token, what: string, separated = false): void {
    if (this.isOp(closer)) {
      this.index++;
      return;
    }
    const found = this.peek();
    const hint = separated && found.type !== 'eof' ? `',' or '${closer}'` : `'${closer}'`;
    this.fail(
      found,
      `expected ${hint} to close '${what}' from ${describePosition(this.source, opener.start)}, but found ${describeToken(found)}`,
    );
  }

  private binaryAt(): BinaryAt | undefined {
    const t = this.peek();
    if (t.type === 'keyword' && t.text === 'not') {
      const after = this.peek(1);
      if (after.type === 'keyword' && after.text === 'in')
        return { op: 'not in', prec: PREC.compare, token: t, width: 2 };
      return undefined;
    }
    if (t.type !== 'op' && t.type !== 'keyword') return undefined;
    const prec = BINARY_PREC[t.text];
    if (prec === undefined) return undefined;
    return { op: t.text as BinaryOp, prec, token: t, width: 1 };
  }

  /** Precedence climbing: binary operators bind left-to-right; comparisons do not chain. */
  private parseExpression(minPrec: number): Node {
    let left = this.parsePrefix(minPrec);
    let compared = false;
    for (;;) {
      const bin = this.binaryAt();
      if (bin === undefined || bin.prec < minPrec) break;
      if (bin.prec === PREC.compare) {
        // Left-associative `a < b < c` would compare a boolean with c; an error is kinder than that surprise.
        if (compared) {
          this.fail(
            bin.token,
            `comparisons cannot be chained: combine them with 'and', e.g. a < b and b < c`,
          );
        }
        compared = true;
      } else {
        compared = false;
      }
      this.index += bin.width;
      const right = this.parseExpression(bin.prec + 1);
      if (bin.op === '=~' || bin.op === '!~') this.checkLiteralRegex(right);
      left = { kind: 'binary', op: bin.op, left, right, pos: bin.token.start };
    }
    return left;
  }

  private parsePrefix(minPrec: number): Node {
    const t = this.next();
    switch (t.type) {
      case 'number':
      case 'string':
        return this.parsePostfix({ kind: 'literal', value: t.value, pos: t.start });
      case 'ident':
        return this.parsePostfix(this.parseIdentifier(t));
      case 'keyword': {
        if (t.text === 'true' || t.text === 'false') {
          return this.parsePostfix({ kind: 'literal', value: t.text === 'true', pos: t.start });
        }
        if (t.text === 'null') return this.parsePostfix({ kind: 'literal', value: null, pos: t.start });
        if (t.text === 'not') {
          if (minPrec > PREC.not) this.fail(t, `'not' needs parentheses here, e.g. x == (not y)`);
          this.enter(t);
          const operand = this.parseExpression(PREC.not);
          this.leave();
          return { kind: 'unary', op: 'not', operand, pos: t.start };
        }
        return this.fail(t, `expected a value but found '${t.text}'`);
      }
      case 'op': {
        if (t.text === '(') {
          this.enter(t);
          const inner = this.parseExpression(0);
          this.expectClose(')', t, '(');
          this.leave();
          return this.parsePostfix(inner);
        }
        if (t.text === '[') return this.parsePostfix(this.parseList(t));
        if (t.text === '-') {
          this.enter(t);
          const operand = this.parseExpression(PREC.unary);
          this.leave();
          return { kind: 'unary', op: '-', operand, pos: t.start };
        }
        return this.fail(t, `expected a value but found '${t.text}'`);
      }
      case 'eof':
        return this.fail(t, 'expected a value but the expression ended');
    }
  }

  private parseIdentifier(t: Token): Node {
    if (this.isOp('(')) return this.parseCall(t);
    if (t.text === 'it') {
      if (this.lambdaDepth === 0) {
        this.fail(
          t,
          '\'it\' only exists inside the condition of all/any/filter/map/count/find, e.g. any(lbs, it.provisioning_status == "ERROR")',
        );
      }
      return { kind: 'it', pos: t.start };
    }
    return { kind: 'var', name: t.text, pos: t.start };
  }

  private parseCall(nameToken: Token): Node {
    const name = nameToken.text;
    if (!isFunctionName(name)) {
      const guess = closestName(name, FUNCTION_NAMES);
      this.fail(
        nameToken,
        `unknown function '${name}'${guess ? `: did you mean '${guess}'?` : ''} (functions: ${FUNCTION_NAMES.join(', ')})`,
      );
    }
    const spec = FUNCTIONS[name];
    const open = this.next();
    this.enter(open);
    const args: Node[] = [];
    if (!this.isOp(')')) {
      for (;;) {
        const perElement = spec.lambda === true && args.length === 1;
        if (perElement) this.lambdaDepth++;
        args.push(this.parseExpression(0));
        if (perElement) this.lambdaDepth--;
        if (!this.isOp(',')) break;
        this.index++;
      }
    }
    this.expectClose(')', open, `${name}(`, true);
    this.leave();
    if (args.length < spec.min || args.length > spec.max) {
      const expected =
        spec.min === spec.max
          ? `${spec.min} argument${spec.min === 1 ? '' : 's'}`
          : `${spec.min} to ${spec.max} arguments`;
      this.fail(nameToken, `${name}() takes ${expected} but got ${args.length}: usage is ${spec.usage}`);
    }
    if (spec.regexArg !== undefined) {
      const regexNode = args[spec.regexArg];
      if (regexNode !== undefined) this.checkLiteralRegex(regexNode);
    }
    return { kind: 'call', name, args, pos: nameToken.start };
  }

  private parseList(open: Token): Node {
    this.enter(open);
    const items: Node[] = [];
    while (!this.isOp(']')) {
      items.push(this.parseExpression(0));
      if (!this.isOp(',')) break;
      this.index++;
    }
    this.expectClose(']', open, '[', true);
    this.leave();
    return { kind: 'list', items, pos: open.start };
  }

  private parsePostfix(start: Node): Node {
    let node = start;
    for (;;) {
      const t = this.peek();
      if (t.type !== 'op') return node;
      if (t.text === '.') {
        this.index++;
        const field = this.next();
        if (field.type !== 'ident' && field.type !== 'keyword') {
          this.fail(
            field,
            `expected a field name after '.', but found ${describeToken(field)}: use ["Field Name"] for names with spaces or dashes and [0] for list positions`,
          );
        }
        node = {
          kind: 'member',
          object: node,
          key: { kind: 'literal', value: field.text, pos: field.start },
          pos: t.start,
        };
        if (this.isOp('(')) {
          this.fail(
            this.peek(),
            `'${field.text}(' is not supported: call functions by name, e.g. lower(x) rather than x.lower()`,
          );
        }
      } else if (t.text === '[') {
        this.index++;
        this.enter(t);
        const key = this.parseExpression(0);
        this.expectClose(']', t, '[');
        this.leave();
        node = { kind: 'member', object: node, key, pos: t.start };
      } else if (t.text === '(') {
        this.fail(t, 'only named functions can be called, e.g. len(x)');
      } else {
        return node;
      }
    }
  }

  /** A literal pattern is checked now so a broken regex fails the runbook at load time, not mid-recovery. */
  private checkLiteralRegex(node: Node): void {
    if (node.kind !== 'literal' || typeof node.value !== 'string') return;
    const compiled = compileRegex(node.value);
    if (typeof compiled === 'string') this.fail(node.pos, compiled);
  }
}
