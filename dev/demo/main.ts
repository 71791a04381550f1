/**
 * `npm run demo`: the playground. A local incident channel in the browser, driven by the real `serve`
 * (Bolt, agent, thread poster) against the simulated jumphost, with Slack played by the strict fake Web API
 * and signed requests. `-- --yes` drives the same path without a browser and prints the channel;
 * `-- --terminal` is the terminal front without Slack. Development only: the product build holds none of it.
 */
import { parseArgs } from 'node:util';
import { asCodedError, CapiError } from '../../src/errors.js';
import { CHANNEL, OPERATOR, PEOPLE } from '../playground/cast.js';
import { runHeadless } from '../playground/headless.js';
import { type PlaygroundRun, startPlayground } from '../playground/start.js';
import { reportCloud, runTerminalDemo } from './terminal.js';

/** Real seconds per site second: the ~10-minute outage recovery's waits take about six seconds. */
const DEFAULT_TIME_SCALE = 0.01;
/** Where the page is served when the port is free (a fixed URL survives restarts of the demo). */
const DEFAULT_PAGE_PORT = 3780;
const HEADLESS_TIMEOUT_MS = 10 * 60_000;

const USAGE = `usage:
  npm run demo [-- [--scenario NAME] [--runbook NAME [ARG...]] [--port N] [--time-scale X]]
      the playground: prints its URL; open it and type /capi recover (or --runbook sends it for you)
  npm run demo -- --yes [--scenario NAME] [--runbook NAME [ARG...]]
      the same path without a browser: approves as the approver and prints the channel as text
  npm run demo -- --terminal [--yes] [--verbose] [--scenario NAME] [--runbook NAME [ARG...]]
      the terminal front, without Slack (asks y/N before each destructive step)
scenarios: dev/sim/scenarios (default outage); runbooks: commands/ (default recover)`;

interface DemoOptions {
  readonly mode: 'browser' | 'headless' | 'terminal';
  readonly yes: boolean;
  readonly verbose: boolean;
  readonly scenario: string;
  readonly runbook?: string;
  readonly args: readonly string[];
  readonly port: number;
  readonly timeScale: number;
}

class UsageError extends Error {}

function parseDemoArgs(argv: readonly string[]): DemoOptions {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      terminal: { type: 'boolean', default: false },
      yes: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      scenario: { type: 'string', default: 'outage' },
      runbook: { type: 'string' },
      port: { type: 'string' },
      'time-scale': { type: 'string' },
    },
  });
  if (positionals.length > 0 && values.runbook === undefined) {
    throw new UsageError(`unexpected ${positionals.join(' ')}: arguments follow --runbook NAME`);
  }
  const timeScale = values['time-scale'] === undefined ? DEFAULT_TIME_SCALE : Number(values['time-scale']);
  if (!(timeScale > 0 && timeScale <= 1)) {
    throw new UsageError(
      '--time-scale must be a number above 0 and at most 1 (real seconds per site second)',
    );
  }
  const port = values.port === undefined ? DEFAULT_PAGE_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError('--port must be a TCP port 0-65535 (0: any free port)');
  }
  if (values.runbook !== undefined && !/^[a-z0-9][a-z0-9-]*$/.test(values.runbook)) {
    throw new UsageError('--runbook must name a runbook in commands/, e.g. --runbook sweep');
  }
  return {
    mode: values.terminal ? 'terminal' : values.yes ? 'headless' : 'browser',
    yes: values.yes,
    verbose: values.verbose,
    scenario: values.scenario,
    ...(values.runbook !== undefined ? { runbook: values.runbook } : {}),
    args: positionals,
    port,
    timeScale,
  };
}

function say(lines: readonly string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Resolves at Ctrl-C / SIGTERM, or when serve ends on its own (which ends the demo too). */
function untilStopped(pg: PlaygroundRun): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('stopping'));
    process.once('SIGTERM', () => resolve('stopping'));
    void pg.stack.serveExited.then((code) =>
      resolve(`capi-chatops serve exited (code ${code}); see its log`),
    );
  });
}

async function runBrowser(opts: DemoOptions): Promise<number> {
  const pg = await startPlayground({ scenario: opts.scenario, timeScale: opts.timeScale, port: opts.port });
  try {
    say([
      '',
      `capi-chatops playground: ${pg.server.url}`,
      '',
      `  #${CHANNEL.name} is linked to the simulated site ${pg.stack.siteName}`,
      `  scenario ${opts.scenario}: ${pg.stack.scenarioDescription}`,
      `  time runs ${1 / opts.timeScale}x faster than on a real site; nothing leaves 127.0.0.1`,
      '  people (pick one in "Send as", beside the message box):',
      ...PEOPLE.map((p) => `    ${p.name}: ${p.role}`),
      `  the bot: the real capi-chatops serve at ${pg.stack.requestUrl}, log ${pg.stack.logPath}`,
      '  Ctrl-C stops everything.',
      '',
    ]);
    if (opts.runbook !== undefined) {
      const text = ['/capi', opts.runbook, ...opts.args].join(' ');
      const sent = await pg.server.playground.command(OPERATOR.id, text);
      say([sent.ok ? `sent ${text} as ${OPERATOR.name}` : `could not send ${text}: ${sent.problem}`]);
    }
    const why = await untilStopped(pg);
    say([why]);
    return why === 'stopping' ? 0 : 1;
  } finally {
    await pg.stop();
  }
}

async function runHeadlessDemo(opts: DemoOptions): Promise<number> {
  const runbook = opts.runbook ?? 'recover';
  const pg = await startPlayground({ scenario: opts.scenario, timeScale: opts.timeScale, port: 0 });
  // Ctrl-C still stops serve, the simulator and the fake, and removes the demo's keys from Redis.
  const interrupt = () => {
    void pg.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    say([
      `scenario ${opts.scenario}: ${pg.stack.scenarioDescription}`,
      `the real capi-chatops serve answers signed Slack requests at ${pg.stack.requestUrl} (log ${pg.stack.logPath})`,
      'every approval is clicked as the approver (--yes); Slack paces the thread at about one post a second',
      '',
    ]);
    const outcome = await runHeadless({
      playground: pg.server.playground,
      view: pg.view,
      fake: pg.stack.fake,
      channelId: CHANNEL.id,
      command: ['/capi', runbook, ...opts.args].join(' '),
      timeoutMs: HEADLESS_TIMEOUT_MS,
      log: (line) => say([line]),
    });
    say(['', outcome.transcript, '']);
    if (outcome.problem !== undefined) say([`PROBLEM: ${outcome.problem}`]);
    else say([`the run ${outcome.status}`]);
    const problems = await reportCloud(pg.stack.sim, runbook, outcome.status === 'succeeded');
    return outcome.status === 'succeeded' && problems === 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    await pg.stop();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  let opts: DemoOptions;
  try {
    opts = parseDemoArgs(argv);
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  try {
    if (opts.mode === 'terminal') {
      return await runTerminalDemo({ ...opts, runbook: opts.runbook ?? 'recover' });
    }
    return opts.mode === 'headless' ? await runHeadlessDemo(opts) : await runBrowser(opts);
  } catch (err) {
    process.stderr.write(`error: ${asCodedError(err).message}\n`);
    // As the product CLI: a refusal before anything ran is 2, anything else a failure.
    return err instanceof CapiError && err.code !== 'capi_unknown' ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
