import { ExprSyntaxError } from './errors.js';

export type TokenType = 'number' | 'string' | 'ident' | 'keyword' | 'op' | 'eof';

export interface Token {
  readonly type: TokenType;
  /** Raw source text of the token (for strings: including the quotes). */
  readonly text: string;
  /** Decoded value for number and string tokens; equal to `text` otherwise. */
  readonly value: string | number;
  /** 0-based offsets into the source; `end` is exclusive. */
  readonly start: number;
  readonly end: number;
}

export const KEYWORDS: ReadonlySet<string> = new Set(['and', 'or', 'not', 'in', 'true', 'false', 'null']);

const TWO_CHAR_OPS: ReadonlySet<string> = new Set(['==', '!=', '<=', '>=', '=~', '!~']);
const ONE_CHAR_OPS: ReadonlySet<string> = new Set([
  '(',
  ')',
  '[',
  ']',
  ',',
  '.',
  '<',
  '>',
  '+',
  '-',
  '*',
  '/',
  '%',
]);

/** Operators people bring from other languages; naming the replacement beats "unexpected character". */
const FOREIGN_OPS: Readonly<Record<string, string>> = {
  '&&': "use 'and' instead of '&&'",
  '||': "use 'or' instead of '||'",
  '!': "use 'not' instead of '!'",
  '=': "use '==' to compare ('=' alone is not an operator)",
  '&': "use 'and' instead of '&'",
  '|': "use 'or' instead of '|'",
  '{': 'braces only mark {expressions} inside message templates; in an expression write the name directly',
  '}': 'braces only mark {expressions} inside message templates; in an expression write the name directly',
};

const ESCAPES: Readonly<Record<string, string>> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '\\': '\\',
  '"': '"',
  "'": "'",
};

const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isIdentStart = (c: string): boolean => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_';
const isIdentChar = (c: string): boolean => isIdentStart(c) || isDigit(c);

export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  const fail = (index: number, reason: string): never => {
    throw new ExprSyntaxError(reason, source, index);
  };
  const n = source.length;
  let i = 0;
  while (i < n) {
    const c = source.charAt(i);
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const start = i;

    if (isDigit(c)) {
      while (isDigit(source.charAt(i))) i++;
      if (source.charAt(i) === '.' && isDigit(source.charAt(i + 1))) {
        i++;
        while (isDigit(source.charAt(i))) i++;
      }
      if (isIdentChar(source.charAt(i))) {
        let end = i;
        while (isIdentChar(source.charAt(end))) end++;
        fail(start, `invalid number '${source.slice(start, end)}': names cannot start with a digit`);
      }
      const text = source.slice(start, i);
      tokens.push({ type: 'number', text, value: Number(text), start, end: i });
      continue;
    }

    if (isIdentStart(c)) {
      while (isIdentChar(source.charAt(i))) i++;
      const text = source.slice(start, i);
      tokens.push({ type: KEYWORDS.has(text) ? 'keyword' : 'ident', text, value: text, start, end: i });
      continue;
    }

    if (c === '"' || c === "'") {
      i++;
      let value = '';
      for (;;) {
        if (i >= n) fail(start, `unterminated string: add the closing ${c}`);
        const ch = source.charAt(i);
        if (ch === c) {
          i++;
          break;
        }
        if (ch === '\\') {
          if (i + 1 >= n) fail(start, `unterminated string: add the closing ${c}`);
          const escaped = source.charAt(i + 1);
          // Unknown escapes stay verbatim so regexes read naturally: "\d+" means the regex \d+, as intended.
          value += ESCAPES[escaped] ?? `\\${escaped}`;
          i += 2;
          continue;
        }
        value += ch;
        i++;
      }
      tokens.push({ type: 'string', text: source.slice(start, i), value, start, end: i });
      continue;
    }

    const two = source.slice(i, i + 2);
    if (TWO_CHAR_OPS.has(two)) {
      tokens.push({ type: 'op', text: two, value: two, start, end: i + 2 });
      i += 2;
      continue;
    }
    const foreign = FOREIGN_OPS[two] ?? FOREIGN_OPS[c];
    if (foreign !== undefined) fail(start, `unexpected '${FOREIGN_OPS[two] ? two : c}': ${foreign}`);
    if (ONE_CHAR_OPS.has(c)) {
      tokens.push({ type: 'op', text: c, value: c, start, end: i + 1 });
      i++;
      continue;
    }
    if ('\u201c\u201d\u2018\u2019'.includes(c)) {
      fail(start, `unexpected typographic quote '${c}' (chat clients insert these): use plain " or '`);
    }
    fail(start, `unexpected character '${c}'`);
  }
  tokens.push({ type: 'eof', text: '', value: '', start: n, end: n });
  return tokens;
}
