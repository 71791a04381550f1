import { parseArgs } from 'node:util';
import type { PolicySource } from '../config/terminal.js';
import { asCodedError, CapiError, ErrorCode } from '../errors.js';
import { runAgentCommand } from './agent.js';
import {
  cancelCommand,
  decideCommand,
  exportCommand,
  followCommand,
  releaseCommand,
  statusCommand,
  submitCommand,
  timelineCommand,
} from './queue-commands.js';
import { listRunbooks, runFromTerminal } from './run.js';
import type { Terminal } from './session.js';
import { systemUnixUser, type UnixUserSource } from './terminal-identity.js';

const USAGE = `capi-chatops -- CAPI/Magnum recovery runbooks with a human approval before every destructive step

usage:
  capi-chatops run RUNBOOK [ARGS...] --site FILE [--yes] [--dry-run] [--verbose] [--commands DIR]
      run a runbook on the site's jumphost; the timeline prints live and every destructive step
      asks y/N (--yes approves them all; --dry-run prints every command without connecting;
      --verbose prints every output line instead of the first 15 of each command)
  capi-chatops list [--commands DIR]      the runbooks and their arguments
  capi-chatops doctor [--site NAME|FILE]...
      read-only readiness checks per site (jumphost and its host key, login shell and PATH, the CLIs and
      their versions, admin and project tokens, the mgmt VM's FIP, the mgmt kubeconfig, the juju login,
      Redis persistence and eviction, the Slack token's scopes and channels): one line each, ok / warn /
      fail with the fix; exit 0 all ok, 1 a warning, 2 a failure
  capi-chatops record [--site NAME|FILE] --out DIR [--runbook NAME]...
      run the read-only runbooks (or those named) on the site and keep each command's exit code and
      redacted output, with the tool versions, in DIR (YAML files to review)
  capi-chatops check-recording DIR
      run every recorded step's parse, captures, known errors and summary against its recorded output;
      exit 1 when one throws or yields nothing
  capi-chatops serve [--site FILE]...     the Slack front (/capi, approval buttons, run threads) and an
      agent in one process (npm start); SLACK_BOT_TOKEN plus SLACK_SIGNING_SECRET (HTTP on PORT)
      or SLACK_APP_TOKEN (Socket Mode)
  capi-chatops agent [--site FILE]...     serve the sites' run queues (REDIS_URL, QUEUE_PREFIX; SITE_FILE
      may list several profiles, comma separated); SIGINT/SIGTERM stop it gracefully

  through the queue (an agent runs it; approvals come from Slack or from decide):
  capi-chatops submit RUNBOOK [ARGS...] [--site FILE]... [--on SITE] [--no-follow]
  capi-chatops follow RUN                 print a run's timeline live until it finishes
  capi-chatops status [RUN]               active and recent runs, or one run and its pending approvals
  capi-chatops timeline RUN               one run as Markdown, for the postmortem
  capi-chatops export RUN [--out DIR]     write RUN.md (timeline) and RUN.json (record, approvals,
      attempts, events) before RUN_RETENTION expires the run from Redis
  capi-chatops cancel RUN                 stop a run between steps and kill its running command
  capi-chatops release SITE --reason TEXT free a site held after a run ended OUTCOME UNKNOWN, once what
      its command did was checked by hand (the reason says what; audited)
  capi-chatops decide APPROVAL approve|deny [--reason TEXT] [--key FILE]
      signed with your SSH key (default ~/.ssh/id_ed25519, id_ecdsa or id_rsa), which the
      deployment's allowed_signers lists for you
      submit, cancel, release and decide act as the Unix user running them (never root or a system
      account), mapped to a Slack user by CAPI_TERMINAL_USERS; the terminal's rules come from
      /etc/capi-chatops/policy.env, never from your environment

exit codes: 0 succeeded, 1 failed, 2 refused before running (bad arguments or config),
            3 denied or expired approval, 130 cancelled`;

/**
 * What main() takes from its surroundings. The installed command passes nothing: it acts as the account
 * running it, under the policy file installed at /etc/capi-chatops/policy.env. The repository's tests and
 * demos (dev/cli-as.ts) name another account and a policy file of their own.
 */
export interface MainOptions {
  readonly unixUser?: UnixUserSource;
  readonly policy?: PolicySource;
}

// Typed identities are gone: a terminal acts as the Unix user that runs it, never as someone it names.
const TYPED_IDENTITY = /^--(as|group)(=|$)/;

export async function main(argv: readonly string[], opts: MainOptions = {}): Promise<number> {
  const [command, ...rest] = argv;
  const terminal: Terminal = {
    unixUser: opts.unixUser ?? systemUnixUser,
    policy: opts.policy ?? { kind: 'installed' },
  };
  const typed = rest.find((a) => TYPED_IDENTITY.test(a));
  if (typed !== undefined) {
    return usage(
      `${typed.split('=')[0]} is not accepted: a terminal acts as the Unix user running it, mapped to a Slack user by CAPI_TERMINAL_USERS on this host (e.g. alice=U0123ABCD), and its user groups come from Slack`,
    );
  }
  try {
    switch (command) {
      case 'run': {
        const { values, positionals } = parseArgs({
          args: [...rest],
          allowPositionals: true,
          options: {
            site: { type: 'string' },
            yes: { type: 'boolean', default: false },
            'dry-run': { type: 'boolean', default: false },
            verbose: { type: 'boolean', default: false },
            commands: { type: 'string' },
          },
        });
        const [runbook, ...args] = positionals;
        if (runbook === undefined) return usage('run needs a RUNBOOK name (capi-chatops list shows them)');
        return await runFromTerminal({
          runbook,
          args,
          ...(values.site !== undefined ? { siteFile: values.site } : {}),
          ...(values.commands !== undefined ? { commandsDir: values.commands } : {}),
          yes: values.yes,
          dryRun: values['dry-run'],
          verbose: values.verbose,
        });
      }
      case 'list': {
        const { values } = parseArgs({ args: [...rest], options: { commands: { type: 'string' } } });
        process.stdout.write(await listRunbooks(values.commands));
        return 0;
      }
      case 'doctor': {
        const { values } = parseArgs({
          args: [...rest],
          options: { site: { type: 'string', multiple: true, default: [] } },
        });
        const { doctorCommand } = await import('./doctor.js');
        return await doctorCommand({ sites: values.site });
      }
      case 'record': {
        const { values } = parseArgs({
          args: [...rest],
          options: {
            site: { type: 'string' },
            out: { type: 'string' },
            runbook: { type: 'string', multiple: true, default: [] },
          },
        });
        if (values.out === undefined) return usage('record needs --out DIR (where the recording goes)');
        const { recordCommand } = await import('./recording.js');
        return await recordCommand({
          out: values.out,
          runbooks: values.runbook,
          ...(values.site !== undefined ? { site: values.site } : {}),
        });
      }
      case 'check-recording': {
        const { positionals } = parseArgs({ args: [...rest], allowPositionals: true });
        const [dir] = positionals;
        if (dir === undefined) return usage('check-recording needs the recording DIR');
        const { checkRecordingCommand } = await import('./recording.js');
        return await checkRecordingCommand(dir);
      }
      case 'demo':
        // The simulator is development code, not part of the product build or image.
        return usage('the demo runs from a checkout of the repository: npm install && npm run demo');
      case 'agent': {
        const { values } = parseArgs({
          args: [...rest],
          options: {
            site: { type: 'string', multiple: true, default: [] },
            concurrency: { type: 'string' },
            'lock-duration-ms': { type: 'string' },
            'stalled-interval-ms': { type: 'string' },
          },
        });
        return await runAgentCommand({
          siteFiles: values.site,
          ...numberFlag('concurrency', values.concurrency),
          ...numberFlag('lockDurationMs', values['lock-duration-ms']),
          ...numberFlag('stalledIntervalMs', values['stalled-interval-ms']),
        });
      }
      case 'serve': {
        const { values } = parseArgs({
          args: [...rest],
          options: { site: { type: 'string', multiple: true, default: [] } },
        });
        // Loaded only here: Bolt and the Web API client cost an `agent` process about 35 MB it never uses.
        const { serveCommand } = await import('./serve.js');
        return await serveCommand(values.site);
      }
      case 'submit': {
        const { values, positionals } = parseArgs({
          args: [...rest],
          allowPositionals: true,
          options: {
            site: { type: 'string', multiple: true, default: [] },
            on: { type: 'string' },
            'no-follow': { type: 'boolean', default: false },
            verbose: { type: 'boolean', default: false },
          },
        });
        const [runbook, ...args] = positionals;
        if (runbook === undefined) return usage('submit needs a RUNBOOK name (capi-chatops list shows them)');
        return await submitCommand(
          {
            runbook,
            args,
            siteFiles: values.site,
            ...(values.on !== undefined ? { on: values.on } : {}),
            follow: !values['no-follow'],
            verbose: values.verbose,
          },
          terminal,
        );
      }
      case 'follow':
      case 'timeline':
      case 'cancel': {
        const { values, positionals } = parseArgs({
          args: [...rest],
          allowPositionals: true,
          options: { verbose: { type: 'boolean', default: false } },
        });
        const [runId] = positionals;
        if (runId === undefined) return usage(`${command} needs a RUN id (capi-chatops status lists them)`);
        if (command === 'follow') return await followCommand(runId, values.verbose, terminal);
        if (command === 'timeline') return await timelineCommand(runId, terminal);
        return await cancelCommand(runId, terminal);
      }
      case 'export': {
        const { values, positionals } = parseArgs({
          args: [...rest],
          allowPositionals: true,
          options: { out: { type: 'string', default: '.' } },
        });
        const [runId] = positionals;
        if (runId === undefined) return usage('export needs a RUN id (capi-chatops status lists them)');
        return await exportCommand(runId, values.out, terminal);
      }
      case 'status': {
        const { positionals } = parseArgs({ args: [...rest], allowPositionals: true });
        return await statusCommand(positionals[0], terminal);
      }
      case 'release': {
        const { values, positionals } = parseArgs({
          args: [...rest],
          allowPositionals: true,
          options: { reason: { type: 'string' } },
        });
        const [site] = positionals;
        if (site === undefined || positionals.length !== 1)
          return usage('release needs one SITE (the site profile name)');
        if (values.reason === undefined)
          return usage('release needs --reason TEXT: say what you checked by hand');
        return await releaseCommand({ site, reason: values.reason }, terminal);
      }
      case 'decide': {
        const { values, positionals } = parseArgs({
          args: [...rest],
          allowPositionals: true,
          options: { reason: { type: 'string' }, key: { type: 'string' } },
        });
        const [approvalId, verdict] = positionals;
        if (approvalId === undefined || verdict === undefined)
          return usage('decide needs an APPROVAL id and approve|deny');
        return await decideCommand(
          {
            approvalId,
            verdict,
            ...(values.reason !== undefined ? { reason: values.reason } : {}),
            ...(values.key !== undefined ? { key: values.key } : {}),
          },
          terminal,
        );
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        return 0;
      default:
        return usage(`unknown command '${command}'`);
    }
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true)
      return usage((err as Error).message);
    const coded = asCodedError(err);
    process.stderr.write(`error: ${coded.message}\n`);
    // Validation errors are refusals before anything ran; anything else is a failure.
    return err instanceof CapiError && err.code !== 'capi_unknown' ? 2 : 1;
  }
}

function numberFlag<K extends string>(key: K, value: string | undefined): Partial<Record<K, number>> {
  if (value === undefined) return {};
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new CapiError(ErrorCode.ConfigInvalid, `${key} must be a positive whole number, got ${value}`);
  return { [key]: n } as Partial<Record<K, number>>;
}

function usage(problem: string): number {
  process.stderr.write(`error: ${problem}\n\n${USAGE}\n`);
  return 2;
}
