/**
 * `/capi` text -> what the operator asked for. Pure: the handlers decide what to do with it.
 * Every loaded runbook is a subcommand (a new runbook file is a new subcommand), beside the built-in ones.
 * Runbook arguments are only counted here; their strict per-type validation happens in the
 * RunService, the one place every front goes through.
 */
import { CapiError, ErrorCode } from '../errors.js';
import { RUN_ID_PATTERN } from '../run-id.js';
import type { Runbook } from '../runbook/model.js';
import { slackName } from './escape.js';

export type CapiCommand =
  | {
      readonly kind: 'run';
      readonly runbook: string;
      readonly args: readonly string[];
      readonly readOnly: boolean;
    }
  | { readonly kind: 'status'; readonly runId?: string }
  | { readonly kind: 'cancel'; readonly runId: string }
  | { readonly kind: 'timeline'; readonly runId: string }
  /** Frees this channel's site, held after a run ended OUTCOME UNKNOWN, saying what was checked by hand. */
  | { readonly kind: 'release'; readonly reason: string }
  /** A runbook whose one argument can be picked from a list, typed without it: the front offers the list. */
  | { readonly kind: 'pick'; readonly runbook: string; readonly readOnly: boolean }
  | { readonly kind: 'doctor' }
  | { readonly kind: 'help' }
  | { readonly kind: 'invalid'; readonly problem: string };

/** What /capi needs of a runbook. */
export type CapiRunbook = Pick<Runbook, 'name' | 'summary' | 'readOnly' | 'params'>;

const BUILT_IN: readonly (readonly [name: string, usage: string])[] = [
  ['status', '`/capi status [RUN]` -- active and recent runs, or one run'],
  ['cancel', '`/capi cancel RUN` -- stop a run between steps, killing its running command'],
  ['timeline', '`/capi timeline RUN` -- one run as Markdown for the postmortem'],
  [
    'doctor',
    "`/capi doctor` -- is this channel's site ready? Read-only checks of its jumphost, Redis and Slack, each with its fix",
  ],
  [
    'release',
    "`/capi release REASON` -- free this channel's site, held after a run ended OUTCOME UNKNOWN, once checked by hand (REASON: what was checked)",
  ],
  ['help', '`/capi help` -- this list'],
];

export interface CapiCommands {
  /** One line per subcommand: the runbooks in their load order, then the built-ins. */
  readonly usage: string;
  parse(text: string): CapiCommand;
}

/**
 * The /capi subcommands of these runbooks. A Map, not an object: `/capi constructor` or `/capi __proto__`
 * is an unknown subcommand like any other. A runbook named like a built-in is refused at start-up.
 */
export function capiCommands(runbooks: Iterable<CapiRunbook>): CapiCommands {
  const table = new Map<
    string,
    { readonly args: readonly string[]; readonly readOnly: boolean; readonly pickable: boolean }
  >();
  const lines: string[] = [];
  for (const rb of runbooks) {
    if (BUILT_IN.some(([name]) => name === rb.name)) {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        `runbook '${rb.name}' has the name of a built-in /capi subcommand; rename it (name: in its file)`,
      );
    }
    const args = rb.params.map((p) => p.name.toUpperCase());
    table.set(rb.name, {
      args,
      readOnly: rb.readOnly,
      pickable: rb.params.length === 1 && rb.params[0]?.pick !== undefined,
    });
    lines.push(`\`${['/capi', rb.name, ...args].join(' ')}\` -- ${rb.summary}`);
  }
  const usage = [...lines, ...BUILT_IN.map(([, line]) => line)].join('\n');

  const parse = (text: string): CapiCommand => {
    const words = text
      .trim()
      .split(/\s+/)
      .filter((w) => w !== '');
    const [sub, ...rest] = words;
    if (sub === undefined || sub === 'help') return { kind: 'help' };
    const runbook = table.get(sub);
    if (runbook) {
      if (rest.length === 0 && runbook.pickable)
        return { kind: 'pick', runbook: sub, readOnly: runbook.readOnly };
      if (rest.length !== runbook.args.length) {
        const usageLine = ['/capi', sub, ...runbook.args].join(' ');
        return {
          kind: 'invalid',
          problem: `\`${sub}\` takes ${runbook.args.length === 0 ? 'no arguments' : runbook.args.join(' ')}: \`${usageLine}\``,
        };
      }
      return { kind: 'run', runbook: sub, args: rest, readOnly: runbook.readOnly };
    }
    if (sub === 'status') {
      if (rest.length > 1)
        return { kind: 'invalid', problem: '`status` takes at most one run id: `/capi status [RUN]`' };
      const [runId] = rest;
      if (runId === undefined) return { kind: 'status' };
      return RUN_ID_PATTERN.test(runId) ? { kind: 'status', runId } : badRunId(runId);
    }
    if (sub === 'doctor') {
      return rest.length === 0
        ? { kind: 'doctor' }
        : {
            kind: 'invalid',
            problem: "`doctor` takes no arguments: `/capi doctor` checks this channel's site",
          };
    }
    if (sub === 'cancel' || sub === 'timeline') {
      const [runId] = rest;
      if (runId === undefined || rest.length !== 1) {
        return {
          kind: 'invalid',
          problem: `\`${sub}\` takes one run id: \`/capi ${sub} RUN\` (\`/capi status\` lists them)`,
        };
      }
      return RUN_ID_PATTERN.test(runId) ? { kind: sub, runId } : badRunId(runId);
    }
    if (sub === 'release') {
      // The reason is the rest of the text as typed (line breaks kept); RunService checks it.
      const reason = text.trim().slice('release'.length).trim();
      if (reason === '') {
        return {
          kind: 'invalid',
          problem: '`release` needs what you checked by hand: `/capi release REASON`',
        };
      }
      return { kind: 'release', reason };
    }
    return { kind: 'invalid', problem: `${slackName(sub, 40)} is not a /capi subcommand` };
  };
  return { usage, parse };
}

function badRunId(text: string): CapiCommand {
  return {
    kind: 'invalid',
    problem: `${slackName(text, 40)} is not a run id (the \`run id:\` line of a run's message)`,
  };
}

/** Subcommands anyone in the channel may use; the rest need CAPI_OPERATORS. */
export function isReadOnly(command: CapiCommand): boolean {
  if (command.kind === 'run' || command.kind === 'pick') return command.readOnly;
  return command.kind !== 'cancel' && command.kind !== 'release';
}
