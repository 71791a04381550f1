/**
 * `npm run demo -- --terminal [--yes] [--verbose] [--scenario NAME] [--runbook NAME [ARG...]]`: the
 * simulated jumphost (a real sshd on 127.0.0.1 in front of a simulated cloud) and a runbook (default
 * `recover`) against it through the same terminal front an operator uses on a real site, without Slack.
 * Development only: the product build and image hold no simulator.
 */
import { runFromTerminal } from '../../src/cli/run.js';
import { parseSiteProfile } from '../../src/config/site.js';
import { type CloudState, type SimJumphost, startSimJumphost } from '../sim/jumphost.js';

export async function runTerminalDemo(opts: {
  readonly yes: boolean;
  readonly verbose: boolean;
  readonly scenario: string;
  readonly timeScale: number;
  readonly runbook: string;
  readonly args: readonly string[];
}): Promise<number> {
  const sim = await startSimJumphost({ scenario: opts.scenario, timeScale: opts.timeScale });
  try {
    const site = parseSiteProfile(sim.site, 'the simulated site');
    process.stdout.write(
      [
        `simulated jumphost: sshd on ${sim.target.host}:${sim.target.port}, host key ${sim.target.hostKey}`,
        `scenario ${opts.scenario}: ${sim.description}`,
        `time runs ${1 / opts.timeScale}x faster than on a real site; nothing leaves 127.0.0.1`,
        opts.yes
          ? 'every destructive step is approved automatically (--yes)'
          : 'each destructive step asks y/N: answer y to approve (npm run demo -- --terminal --yes skips the questions)',
        '',
      ].join('\n'),
    );
    const code = await runFromTerminal({
      runbook: opts.runbook,
      args: [...opts.args],
      site,
      yes: opts.yes,
      dryRun: false,
      verbose: opts.verbose,
    });

    const problems = await reportCloud(sim, opts.runbook, code === 0);
    return problems > 0 ? 1 : code;
  } finally {
    await sim.stop();
  }
}

/**
 * What the simulated cloud recorded, and an independent look at it (the demo does not take the runbook's
 * word): rules broken, and after a successful `recover` anything still not recovered. Returns the number of
 * problems printed.
 */
export async function reportCloud(sim: SimJumphost, runbook: string, succeeded: boolean): Promise<number> {
  const problems = [
    ...(await sim.violations()).map((v) => `rule broken: ${v.rule}: ${v.detail}`),
    ...(succeeded && runbook === 'recover' ? unrecovered(await sim.state()) : []),
  ];
  const mutations = (await sim.journal()).filter((j) => j.ok).map((j) => `${j.action} ${j.target}`);
  process.stdout.write(`\nwhat the simulated cloud recorded (${mutations.length} changes):\n`);
  for (const m of mutations) process.stdout.write(`  ${m}\n`);
  for (const p of problems) process.stdout.write(`PROBLEM: ${p}\n`);
  if (succeeded && problems.length === 0 && runbook === 'recover') {
    process.stdout.write('the simulated cloud is recovered\n');
  }
  return problems.length;
}

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
