/** Plumbing shared by the fake CLIs: results, early exits, argparse-style option parsing. */
import { randomUUID } from 'node:crypto';
import { holdPoint } from './holds.js';
import type { JournalEntry, ViolationRule } from './schema.js';
import { appendJournal, appendViolation } from './store.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Thrown to end a command with an exit code; stderr text is printed verbatim. */
export class CliExit extends Error {
  constructor(
    readonly code: number,
    readonly stderr: string,
    readonly stdout = '',
  ) {
    super(stderr);
  }
}

export function fail(message: string, code = 1): never {
  throw new CliExit(code, message.endsWith('\n') ? message : `${message}\n`);
}

export function requestId(): string {
  return `req-${randomUUID()}`;
}

export interface OptSpec {
  readonly names: readonly string[];
  readonly key: string;
  /** true: takes a value; false: a flag. */
  readonly value: boolean;
  readonly repeat?: boolean;
}

export interface ParsedArgs {
  readonly values: ReadonlyMap<string, readonly string[]>;
  readonly flags: ReadonlySet<string>;
  readonly positionals: readonly string[];
}

export function flag(names: readonly string[], key = names[0]?.replace(/^-+/, '') ?? ''): OptSpec {
  return { names, key, value: false };
}

export function opt(
  names: readonly string[],
  key = names[0]?.replace(/^-+/, '') ?? '',
  repeat = false,
): OptSpec {
  return { names, key, value: true, repeat };
}

/**
 * argparse-like: `--opt value`, `--opt=value`, `-c value`, `-cvalue`, `--` ends options.
 * Returns a message in argparse's words for unknown options or a missing value.
 */
export function parseArgs(
  tokens: readonly string[],
  specs: readonly OptSpec[],
): { ok: true; args: ParsedArgs } | { ok: false; error: string } {
  const values = new Map<string, string[]>();
  const flags = new Set<string>();
  const positionals: string[] = [];
  const unknown: string[] = [];
  let onlyPositionals = false;
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i] ?? '';
    if (onlyPositionals || !tok.startsWith('-') || tok === '-') {
      positionals.push(tok);
      continue;
    }
    if (tok === '--') {
      onlyPositionals = true;
      continue;
    }
    let name = tok;
    let inline: string | undefined;
    // Whole-token names first, so `--wait=false` can be declared as its own flag.
    let spec = specs.find((s) => s.names.includes(tok));
    const eq = tok.indexOf('=');
    if (spec === undefined && tok.startsWith('--') && eq > 0) {
      name = tok.slice(0, eq);
      inline = tok.slice(eq + 1);
      spec = specs.find((s) => s.names.includes(name));
    }
    if (spec === undefined && !tok.startsWith('--') && tok.length > 2) {
      const short = tok.slice(0, 2);
      const s = specs.find((x) => x.names.includes(short) && x.value);
      if (s !== undefined) {
        spec = s;
        name = short;
        inline = tok.slice(2);
      }
    }
    if (spec === undefined) {
      unknown.push(tok);
      continue;
    }
    if (!spec.value) {
      flags.add(spec.key);
      continue;
    }
    let v = inline;
    if (v === undefined) {
      i += 1;
      v = tokens[i];
      if (v === undefined)
        return { ok: false, error: `argument ${spec.names.join('/')}: expected one argument` };
    }
    const list = values.get(spec.key) ?? [];
    if (spec.repeat) list.push(v);
    else list.splice(0, list.length, v);
    values.set(spec.key, list);
  }
  if (unknown.length > 0) return { ok: false, error: `unrecognized arguments: ${unknown.join(' ')}` };
  return { ok: true, args: { values, flags, positionals } };
}

export function one(args: ParsedArgs, key: string): string | undefined {
  return args.values.get(key)?.at(-1);
}

export function many(args: ParsedArgs, key: string): readonly string[] {
  return args.values.get(key) ?? [];
}

/** Records a mutating command, successful or refused, and a product-rule breach. */
export class Recorder {
  constructor(
    readonly dir: string,
    readonly tool: JournalEntry['tool'] | 'ssh',
    readonly argv: readonly string[],
    readonly scope: JournalEntry['scope'],
  ) {}

  journal(action: string, target: string, ok: boolean, error?: string): void {
    if (this.tool === 'ssh') return;
    const entry: JournalEntry = {
      ts: new Date().toISOString(),
      tool: this.tool,
      argv: [...this.argv],
      scope: this.scope,
      action,
      target,
      ok,
      ...(error === undefined ? {} : { error: error.trim() }),
    };
    appendJournal(this.dir, entry);
  }

  violation(rule: ViolationRule, target: string, detail: string): void {
    appendViolation(this.dir, {
      ts: new Date().toISOString(),
      rule,
      tool: this.tool,
      argv: [...this.argv],
      target,
      detail,
    });
  }
}

/**
 * Entry-point glue for the bin/ stand-ins: prints the result and sets the exit code without
 * calling process.exit, so piped output is flushed before the process ends.
 */
export function runBin(tool: string, main: () => CliResult | Promise<CliResult>): void {
  const dir = process.env.CAPI_SIM_DIR ?? '';
  const argv = process.argv.slice(2);
  // A reader that stops early (`| head`) must not turn into a stack trace: real CLIs die of SIGPIPE.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(141);
      throw err;
    });
  }
  // Holds (holds.ts) wrap the call: before it acts, and after its effect but before it answers.
  const held = async (): Promise<CliResult> => {
    if (dir !== '' && (await holdPoint(dir, tool, argv, 'before')) === 'drop') {
      return {
        code: 1,
        stdout: '',
        stderr: 'capi-sim: connection to the cloud dropped (held and dropped)\n',
      };
    }
    const result = await main();
    if (dir !== '') await holdPoint(dir, tool, argv, 'after');
    return result;
  };
  Promise.resolve()
    .then(held)
    .then(
      (r) => {
        if (r.stdout !== '') process.stdout.write(r.stdout);
        if (r.stderr !== '') process.stderr.write(r.stderr);
        process.exitCode = r.code;
      },
      (err: unknown) => {
        const msg = err instanceof Error ? err.message : String(err);
        process.stderr.write(`capi-sim ${tool}: ${msg}\n`);
        process.exitCode = 1;
      },
    );
}
