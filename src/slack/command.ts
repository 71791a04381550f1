import { RUN_ID_PATTERN } from '../run-id.js';

/**
 * `/capi` text -> what the operator asked for. Pure: the handlers decide what to do with it.
 * Runbook arguments are only split here; their strict per-type validation happens in the
 * RunService, the one place every front goes through.
 */
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
  | { readonly kind: 'help' }
  | { readonly kind: 'invalid'; readonly problem: string };

/** The runbooks a /capi subcommand may start, with how many arguments each takes. */
const RUNBOOKS: Readonly<Record<string, { readonly args: readonly string[]; readonly readOnly: boolean }>> = {
  recover: { args: [], readOnly: false },
  park: { args: [], readOnly: false },
  'stuck-delete': { args: ['CLUSTER'], readOnly: false },
  failover: { args: ['LB'], readOnly: false },
  sweep: { args: [], readOnly: false },
  diagnose: { args: [], readOnly: true },
};

export const USAGE = [
  '`/capi recover` -- bottom-up recovery of the CAPI/Magnum stack',
  '`/capi park` -- stop the mgmt VM for maintenance',
  '`/capi stuck-delete CLUSTER` -- clear a wedged cluster delete (exact listed name only)',
  '`/capi failover LB` -- fail over one load balancer in provisioning ERROR',
  '`/capi sweep` -- delete orphaned amphora servers (verify-then-delete)',
  '`/capi diagnose` -- read-only check against the known issues',
  '`/capi status [RUN]` -- active and recent runs, or one run',
  '`/capi cancel RUN` -- stop a run between steps, killing its running command',
  '`/capi timeline RUN` -- one run as Markdown for the postmortem',
  '`/capi help` -- this list',
].join('\n');

export function parseCapiCommand(text: string): CapiCommand {
  const words = text
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  const [sub, ...rest] = words;
  if (sub === undefined || sub === 'help') return { kind: 'help' };
  const runbook = RUNBOOKS[sub];
  if (runbook) {
    if (rest.length !== runbook.args.length) {
      const usage = ['/capi', sub, ...runbook.args].join(' ');
      return {
        kind: 'invalid',
        problem: `\`${sub}\` takes ${runbook.args.length === 0 ? 'no arguments' : runbook.args.join(' ')}: \`${usage}\``,
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
  return { kind: 'invalid', problem: `\`${sub.slice(0, 40)}\` is not a /capi subcommand` };
}

function badRunId(text: string): CapiCommand {
  return {
    kind: 'invalid',
    problem: `\`${text.slice(0, 40)}\` is not a run id (the \`run id:\` line of a run's message)`,
  };
}

/** Subcommands anyone in the channel may use; the rest need CAPI_OPERATORS. */
export function isReadOnly(command: CapiCommand): boolean {
  return command.kind === 'run' ? command.readOnly : command.kind !== 'cancel';
}
