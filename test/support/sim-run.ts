import { type SimJumphost, startSimJumphost } from '../../dev/sim/jumphost.js';
import { parseSiteProfile } from '../../src/config/site.js';
import { runToEnd } from '../../src/engine/engine.js';
import type { ApprovalRequest, RunEvent } from '../../src/engine/events.js';
import { MemoryAttempts } from '../../src/engine/in-process.js';
import type { RunbookSet } from '../../src/runbook/load.js';
import { validateParams } from '../../src/runbook/params.js';
import { connectSsh } from '../../src/ssh/executor.js';
import { ofType, recorder, scriptedApprovals } from './engine.js';

export type Answer = 'approve' | 'deny' | 'expire';

/**
 * Runs one shipped runbook end to end (engine -> ssh2 -> real sshd -> simulated cloud) and returns
 * what a user and the cloud would see: the outcome, the events, the approvals asked, the simulated
 * cloud's journal of successful mutations (`action target`), its violations and final state.
 */
export async function runOnSim(opts: {
  readonly runbooks: RunbookSet;
  readonly scenario: string;
  readonly runbook: string;
  readonly args?: readonly string[];
  readonly answers?: readonly Answer[];
  readonly timeScale: number;
  /** Started sims go here so the caller's afterEach can stop them. */
  readonly sims: SimJumphost[];
  /** Runs while the "human" is deciding (e.g. to change the cloud under the run). */
  readonly onAsk?: (req: ApprovalRequest, sim: SimJumphost) => Promise<void>;
  /** A simulator already running (a second run on the same site); `scenario` is then not used. */
  readonly sim?: SimJumphost;
  /** Site profile fields over the simulator's own (e.g. mgmt_host_key). */
  readonly siteFields?: Readonly<Record<string, unknown>>;
}) {
  let sim = opts.sim;
  if (sim === undefined) {
    sim = await startSimJumphost({ scenario: opts.scenario, timeScale: opts.timeScale });
    opts.sims.push(sim);
  }
  const runbook = opts.runbooks.runbooks.get(opts.runbook);
  if (!runbook) throw new Error(`no runbook ${opts.runbook}`);
  const executor = await connectSsh({ target: sim.target });
  const rec = recorder();
  const { onAsk } = opts;
  const approvals = scriptedApprovals(opts.answers ?? [], onAsk && ((req) => onAsk(req, sim)));
  try {
    const outcome = await runToEnd({
      runId: `e2e-${opts.runbook}`,
      runbook,
      params: validateParams(runbook, opts.args ?? []),
      site: parseSiteProfile({ ...sim.site, ...opts.siteFields }, 'simulated site'),
      requestedBy: 'U_REQUESTER',
      executor,
      approvals,
      attempts: new MemoryAttempts(),
      emit: rec.emit,
    });
    // A shipped runbook's `summary:` must render on every scenario it meets: a summary that could not be shown
    // is a runbook bug the thread would show to people in an incident.
    const unshown = ofType(rec.events, 'step.finished').filter((e) =>
      e.summary?.startsWith('(summary not shown'),
    );
    if (unshown.length > 0) {
      throw new Error(`summary not rendered: ${unshown.map((e) => `${e.stepId}: ${e.summary}`).join('; ')}`);
    }
    const journal = await sim.journal();
    return {
      outcome,
      sim,
      events: rec.events,
      requests: approvals.requests as readonly ApprovalRequest[],
      state: await sim.state(),
      violations: await sim.violations(),
      /** Every mutation attempt, in order, as `action target` (ok or refused). */
      attempts: journal.map((j) => `${j.action} ${j.target}`),
      /** Successful mutations, in order, as `action target`. */
      changes: journal.filter((j) => j.ok).map((j) => `${j.action} ${j.target}`),
      findings: ofType(rec.events, 'decision').map((d) => d.message),
    };
  } finally {
    await executor.close();
  }
}

export function decisions(events: readonly RunEvent[]): string[] {
  return ofType(events, 'decision').map((d) => d.message);
}
