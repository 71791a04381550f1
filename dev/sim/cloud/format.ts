/**
 * Output shapes of the real tools. openstackclient renders through cliff: `-f value` prints
 * human-readable cells (python str()), `-f json|yaml` the machine-readable ones, `-c` keeps the
 * command's own column order, `list -f yaml` sorts keys (PyYAML safe_dump). kubectl renders
 * tabwriter tables and 4-space JSON / sorted-key YAML.
 */
import { yaml } from './lazy.js';

/** A cliff FormattableColumn: different text for humans (table/value) and machines (json/yaml). */
export class Cell {
  constructor(
    readonly human: string,
    readonly machine: unknown,
  ) {}
}

export function cell(human: string, machine: unknown): Cell {
  return new Cell(human, machine);
}

export type OsFormat = 'table' | 'value' | 'json' | 'yaml' | 'shell' | 'csv';

export interface OsFormatOptions {
  readonly format: OsFormat;
  readonly columns: readonly string[];
  readonly noindent: boolean;
  readonly prefix: string;
  readonly sortColumns: readonly string[];
  readonly sortDescending: boolean;
}

export const DEFAULT_OS_FORMAT: OsFormatOptions = {
  format: 'table',
  columns: [],
  noindent: false,
  prefix: '',
  sortColumns: [],
  sortDescending: false,
};

/** Python's repr(), which is what `-f value` shows for dict and list cells. */
export function pyRepr(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(value);
  if (typeof value === 'string') {
    const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
    const body = value
      .replace(/\\/g, '\\\\')
      .replace(/\n/g, '\\n')
      .replace(/\t/g, '\\t')
      .replace(new RegExp(quote, 'g'), `\\${quote}`);
    return `${quote}${body}${quote}`;
  }
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  if (value instanceof Cell) return pyRepr(value.machine);
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    return `{${entries.map(([k, v]) => `${pyRepr(k)}: ${pyRepr(v)}`).join(', ')}}`;
  }
  return String(value);
}

/** Python's str(): like repr() except top-level strings print bare. */
export function pyStr(value: unknown): string {
  if (value instanceof Cell) return value.human;
  if (typeof value === 'string') return value;
  return pyRepr(value);
}

function machine(value: unknown): unknown {
  return value instanceof Cell ? value.machine : value;
}

/** Python json.dumps: indent=2 uses ", "→"," and ": "; no indent keeps ", " separators. */
export function pyJson(value: unknown, indent: boolean): string {
  if (indent) return JSON.stringify(value, null, 2);
  return pyJsonCompact(value);
}

function pyJsonCompact(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pyJsonCompact).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${JSON.stringify(k)}: ${pyJsonCompact(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** PyYAML safe_dump(default_flow_style=False): YAML 1.1 quoting, unindented sequences, sorted keys. */
export function pyYaml(value: unknown, sortKeys: boolean): string {
  return yaml().stringify(value, {
    schema: 'yaml-1.1',
    indentSeq: false,
    singleQuote: true,
    sortMapEntries: sortKeys,
    lineWidth: 0,
    minContentWidth: 0,
    nullStr: 'null',
  });
}

function pyTable(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const text = rows.map((r) => r.map((c) => pyStr(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const rightAlign = headers.map((_, i) => {
    const first = rows[0]?.[i];
    return typeof first === 'number';
  });
  const sep = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (cells: readonly string[]) =>
    `|${cells
      .map((c, i) => {
        const w = widths[i] ?? 0;
        return ` ${rightAlign[i] ? c.padStart(w) : c.padEnd(w)} `;
      })
      .join('|')}|`;
  return [sep, line(headers), sep, ...text.map(line), sep].join('\n');
}

export type FormatResult = { ok: true; text: string } | { ok: false; error: string };

function selectColumns(
  all: readonly string[],
  wanted: readonly string[],
): { ok: true; indexes: number[] } | { ok: false; error: string } {
  if (wanted.length === 0) return { ok: true, indexes: all.map((_, i) => i) };
  const indexes = all.map((c, i) => (wanted.includes(c) ? i : -1)).filter((i) => i >= 0);
  if (indexes.length === 0) {
    return {
      ok: false,
      error: `No recognized column names in ${pyRepr([...wanted])}. Recognized columns are (${all
        .map((c) => pyRepr(c))
        .join(', ')}).`,
    };
  }
  return { ok: true, indexes };
}

function compareCells(a: unknown, b: unknown): number {
  const x = machine(a);
  const y = machine(b);
  if (typeof x === 'number' && typeof y === 'number') return x - y;
  return pyStr(x).localeCompare(pyStr(y));
}

/** cliff Lister output. */
export function emitList(
  headers: readonly string[],
  rows: readonly (readonly unknown[])[],
  opts: OsFormatOptions,
): FormatResult {
  const sel = selectColumns(headers, opts.columns);
  if (!sel.ok) return sel;
  let data = rows;
  if (opts.sortColumns.length > 0) {
    const keys = opts.sortColumns.map((c) => headers.indexOf(c)).filter((i) => i >= 0);
    data = [...rows].sort((r1, r2) => {
      for (const k of keys) {
        const d = compareCells(r1[k], r2[k]);
        if (d !== 0) return opts.sortDescending ? -d : d;
      }
      return 0;
    });
  }
  const cols = sel.indexes.map((i) => headers[i] ?? '');
  const picked = data.map((r) => sel.indexes.map((i) => r[i]));
  switch (opts.format) {
    case 'value':
      return { ok: true, text: picked.map((r) => `${r.map((c) => pyStr(c)).join(' ')}\n`).join('') };
    case 'json': {
      const items = picked.map((r) => Object.fromEntries(cols.map((c, i) => [c, machine(r[i]) ?? null])));
      return { ok: true, text: `${pyJson(items, !opts.noindent)}\n` };
    }
    case 'yaml': {
      const items = picked.map((r) => Object.fromEntries(cols.map((c, i) => [c, machine(r[i]) ?? null])));
      return { ok: true, text: items.length === 0 ? '[]\n' : pyYaml(items, true) };
    }
    case 'csv': {
      const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
      const lines = [cols.map(q).join(','), ...picked.map((r) => r.map((c) => q(pyStr(c))).join(','))];
      return { ok: true, text: `${lines.join('\n')}\n` };
    }
    case 'shell':
      return { ok: false, error: "openstack: error: argument -f/--format: invalid choice: 'shell'" };
    default:
      return { ok: true, text: picked.length === 0 ? '' : `${pyTable(cols, picked)}\n` };
  }
}

/** cliff ShowOne output. */
export function emitOne(
  fields: readonly (readonly [string, unknown])[],
  opts: OsFormatOptions,
): FormatResult {
  const names = fields.map(([k]) => k);
  const sel = selectColumns(names, opts.columns);
  if (!sel.ok) return sel;
  const picked = sel.indexes.map((i) => fields[i] as readonly [string, unknown]);
  switch (opts.format) {
    case 'value':
      return { ok: true, text: picked.map(([, v]) => `${pyStr(v)}\n`).join('') };
    case 'json': {
      const obj = Object.fromEntries(picked.map(([k, v]) => [k, machine(v) ?? null]));
      return { ok: true, text: `${pyJson(obj, !opts.noindent)}\n` };
    }
    case 'yaml':
      // cliff dumps one key at a time, so show output keeps the command's field order.
      return { ok: true, text: picked.map(([k, v]) => pyYaml({ [k]: machine(v) ?? null }, true)).join('') };
    case 'shell':
      return {
        ok: true,
        text: picked
          .map(([k, v]) => {
            const name = `${opts.prefix}${k.replace(/[:\- ]/g, '_')}`;
            const m = machine(v);
            const s = typeof m === 'string' ? m : pyStr(m);
            return `${name}="${s.replace(/"/g, '\\"')}"\n`;
          })
          .join(''),
      };
    case 'csv': {
      const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
      return {
        ok: true,
        text: `${picked.map(([k]) => q(k)).join(',')}\n${picked.map(([, v]) => q(pyStr(v))).join(',')}\n`,
      };
    }
    default:
      return {
        ok: true,
        text: `${pyTable(
          ['Field', 'Value'],
          picked.map(([k, v]) => [k, pyStr(v)]),
        )}\n`,
      };
  }
}

// ---------------------------------------------------------------------------------------------
// kubectl

/** kubectl's tabwriter (minwidth 6, padding 3); the last column is never padded. */
export function kubeTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, i) => Math.max(6, ...all.map((r) => (r[i] ?? '').length + 3)));
  return all
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('')
        .trimEnd(),
    )
    .map((l) => `${l}\n`)
    .join('');
}

export function kubeJson(value: unknown): string {
  return `${JSON.stringify(value, null, 4)}\n`;
}

/** sigs.k8s.io/yaml: go-yaml with sorted keys, unindented sequences, double quotes when needed. */
export function kubeYaml(value: unknown): string {
  return yaml().stringify(value, {
    schema: 'yaml-1.1',
    indentSeq: false,
    singleQuote: false,
    sortMapEntries: true,
    lineWidth: 0,
    minContentWidth: 0,
  });
}
