/**
 * `npm run demo [-- --yes] [--verbose] [--scenario NAME]`: the simulated jumphost (a real sshd on 127.0.0.1
 * in front of a simulated cloud) and `recover` against it through the same terminal front an operator uses
 * on a real site. Development only: the product build and image hold no simulator.
 */
import { parseArgs } from 'node:util';
import { runFromTerminal } from '../../src/cli/run.js';
import { parseSiteProfile } from '../../src/config/site.js';
import { asCodedError, CapiError } from '../../src/errors.js';
import { type CloudState, startSimJumphost } from '../sim/jumphost.js';

/** Real seconds per site second: the ~10-minute outage recovery plays in about ten seconds. */
const DEMO_TIME_SCALE = 0.01;

async function runDemo(opts: {
  readonly yes: boolean;
  readonly verbose: boolean;
  readonly scenario: string;
}): Promise<number> {
  const sim = await startSimJumphost({ scenario: opts.scenario, timeScale: DEMO_TIME_SCALE });
  try {
    const site = parseSiteProfile(sim.site, 'the simulated site');
    const initial = await sim.state();
    process.stdout.write(
      [
        `simulated jumphost: sshd on ${sim.target.host}:${sim.target.port}, host key ${sim.target.hostKey}`,
        `scenario ${opts.scenario}: ${initial.description}`,
        `time runs ${1 / DEMO_TIME_SCALE}x faster than on a real site; nothing leaves 127.0.0.1`,
        opts.yes
          ? 'every destructive step is approved automatically (--yes)'
          : 'each destructive step asks y/N: answer y to approve (npm run demo -- --yes skips the questions)',
        '',
      ].join('\n'),
    );
    const code = await runFromTerminal({
      runbook: 'recover',
      args: [],
      site,
      yes: opts.yes,
      dryRun: false,
      verbose: opts.verbose,
    });

    const problems = [
      ...(await sim.violations()).map((v) => `rule broken: ${v.rule}: ${v.detail}`),
      ...(code === 0 ? unrecovered(await sim.state()) : []),
    ];
    const mutations = (await sim.journal()).filter((j) => j.ok).map((j) => `${j.action} ${j.target}`);
    process.stdout.write(`\nwhat the simulated cloud recorded (${mutations.length} changes):\n`);
    for (const m of mutations) process.stdout.write(`  ${m}\n`);
    for (const p of problems) process.stdout.write(`PROBLEM: ${p}\n`);
    if (code === 0 && problems.length === 0) process.stdout.write('the simulated cloud is recovered\n');
    return problems.length > 0 ? 1 : code;
  } finally {
    await sim.stop();
  }
}

/** An independent look at the cloud, so the demo does not take the runbook's word for it. */
function unrecovered(state: CloudState): string[] {
  const out: string[] = [];
  const mgmt = state.servers.find((s) => s.id === state.mgmt.serverId);
  if (mgmt?.status !== 'ACTIVE') out.push(`mgmt VM is ${mgmt?.status ?? 'missing'}`);
  for (const lb of state.loadbalancers) {
    if (lb.provisioningStatus !== 'ACTIVE') out.push(`LB ${lb.id} is ${lb.provisioningStatus}`);
  }
  const owned = new Set(state.amphorae.map((a) => a.computeId));
  for (const s of state.servers) {
    if (s.role === 'amphora' && !owned.has(s.id)) out.push(`orphaned amphora server ${s.id} (${s.status})`);
  }
  return out;
}

const USAGE =
  'usage: npm run demo [-- [--yes] [--verbose] [--scenario NAME]]  (scenarios: dev/sim/scenarios)';

async function main(argv: readonly string[]): Promise<number> {
  let values: { yes: boolean; verbose: boolean; scenario: string };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        yes: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        scenario: { type: 'string', default: 'outage' },
      },
    }));
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  try {
    return await runDemo(values);
  } catch (err) {
    process.stderr.write(`error: ${asCodedError(err).message}\n`);
    // As the product CLI: a refusal before anything ran is 2, anything else a failure.
    return err instanceof CapiError && err.code !== 'capi_unknown' ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
