/**
 * The subset of kubectl's JSONPath that runbooks use to list exact names before acting on them:
 * `{.a.b}`, `[N]`, `[*]`, `['key']`, `[?(@.x=="v")]`, `{range ...}{end}`, `{"\n"}` literals.
 */

type TNode =
  | { readonly t: 'text'; readonly v: string }
  | { readonly t: 'expr'; readonly path: string }
  | { readonly t: 'range'; readonly path: string; readonly body: TNode[] };

export class JsonPathError extends Error {
  override name = 'JsonPathError';
}

function unescapeLiteral(s: string): string {
  return s.replace(/\\(.)/g, (_, ch: string) => (ch === 'n' ? '\n' : ch === 't' ? '\t' : ch));
}

function parseTemplate(template: string): TNode[] {
  const root: TNode[] = [];
  const stack: TNode[][] = [root];
  let i = 0;
  const top = () => stack[stack.length - 1] ?? root;
  while (i < template.length) {
    const open = template.indexOf('{', i);
    if (open < 0) {
      top().push({ t: 'text', v: template.slice(i) });
      break;
    }
    if (open > i) top().push({ t: 'text', v: template.slice(i, open) });
    let depth = 0;
    let j = open;
    let inStr: string | null = null;
    for (; j < template.length; j++) {
      const ch = template[j];
      if (inStr !== null) {
        if (ch === '\\') j++;
        else if (ch === inStr) inStr = null;
        continue;
      }
      if (ch === '"' || ch === "'") inStr = ch;
      else if (ch === '{') depth++;
      else if (ch === '}') {
        depth--;
        if (depth === 0) break;
      }
    }
    if (j >= template.length) throw new JsonPathError(`unclosed action in ${template}`);
    const inner = template.slice(open + 1, j).trim();
    i = j + 1;
    if (inner.startsWith('range ')) {
      const node: TNode = { t: 'range', path: inner.slice(6).trim(), body: [] };
      top().push(node);
      stack.push(node.body);
    } else if (inner === 'end') {
      if (stack.length < 2) throw new JsonPathError('not in range, nothing to end');
      stack.pop();
    } else if (/^(["']).*\1$/s.test(inner)) {
      top().push({ t: 'text', v: unescapeLiteral(inner.slice(1, -1)) });
    } else {
      top().push({ t: 'expr', path: inner });
    }
  }
  return root;
}

function child(v: unknown, key: string): unknown[] {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && key in v) {
    return [(v as Record<string, unknown>)[key]];
  }
  return [];
}

function literal(s: string): unknown {
  const t = s.trim();
  if (/^(["']).*\1$/.test(t)) return t.slice(1, -1);
  if (t === 'true') return true;
  if (t === 'false') return false;
  const n = Number(t);
  return Number.isNaN(n) ? t : n;
}

export function evalPath(path: string, cur: unknown): unknown[] {
  let p = path.trim();
  if (p.startsWith('$') || p.startsWith('@')) p = p.slice(1);
  let values: unknown[] = [cur];
  let i = 0;
  while (i < p.length) {
    const ch = p[i];
    if (ch === '.') {
      const m = /^\.([A-Za-z0-9_\-/]+)/.exec(p.slice(i));
      if (m === null) {
        i += 1;
        continue;
      }
      const key = m[1] ?? '';
      values = values.flatMap((v) => child(v, key));
      i += m[0].length;
    } else if (ch === '[') {
      const close = p.indexOf(']', i);
      if (close < 0) throw new JsonPathError(`unterminated [ in ${path}`);
      const inner = p.slice(i + 1, close).trim();
      i = close + 1;
      if (inner === '*') {
        values = values.flatMap((v) =>
          Array.isArray(v) ? v : v !== null && typeof v === 'object' ? Object.values(v) : [],
        );
      } else if (/^-?\d+$/.test(inner)) {
        const n = Number(inner);
        values = values.flatMap((v) => (Array.isArray(v) ? [v.at(n)].filter((x) => x !== undefined) : []));
      } else if (/^(["']).*\1$/.test(inner)) {
        const key = inner.slice(1, -1);
        values = values.flatMap((v) => child(v, key));
      } else if (inner.startsWith('?(') && inner.endsWith(')')) {
        const m = /^@([.\w\-/[\]]*)\s*(==|!=)\s*(.+)$/.exec(inner.slice(2, -1).trim());
        if (m === null) throw new JsonPathError(`unsupported filter ${inner}`);
        const [, sub = '', op, lit = ''] = m;
        const want = literal(lit);
        values = values.flatMap((v) =>
          (Array.isArray(v) ? v : []).filter((item) => {
            const got = evalPath(sub, item)[0];
            return op === '==' ? got === want : got !== want;
          }),
        );
      } else {
        throw new JsonPathError(`unsupported subscript [${inner}]`);
      }
    } else {
      throw new JsonPathError(`unexpected '${ch}' in ${path}`);
    }
  }
  return values;
}

function show(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function render(nodes: readonly TNode[], cur: unknown): string {
  let out = '';
  for (const n of nodes) {
    if (n.t === 'text') out += n.v;
    else if (n.t === 'expr') out += evalPath(n.path, cur).map(show).join(' ');
    else for (const item of evalPath(n.path, cur)) out += render(n.body, item);
  }
  return out;
}

export function renderJsonPath(template: string, data: unknown): string {
  return render(parseTemplate(template), data);
}
