import pino from 'pino';
import { type SimJumphost, startSimJumphost } from '../../dev/sim/jumphost.js';
import { type Agent, type AgentOptions, startAgent } from '../../src/agent/agent.js';
import { parseSiteProfile, type SiteProfile } from '../../src/config/site.js';
import type { RunEvent } from '../../src/engine/events.js';
import type { RedisClient } from '../../src/redis/connection.js';
import type { RunbookSet } from '../../src/runbook/load.js';
import type { TimelineEntry } from '../../src/runs/timeline.js';
import {
  type RunRecord,
  type RunRequest,
  RunService,
  type RunServiceOptions,
} from '../../src/service/run-service.js';
import { decisionEnv, testDecisionKeys, testJudge } from './decision-keys.js';
import { REDIS_URL } from './redis.js';

export const quietLogger = pino({ level: 'silent' });

export interface Harness {
  readonly sims: readonly SimJumphost[];
  readonly sites: ReadonlyMap<string, SiteProfile>;
  readonly service: RunService;
  /** Asks for a run of `runbook` on site-0 by U_REQUESTER, no arguments, unless `more` says otherwise. */
  submit(runbook: string, more?: Partial<RunRequest>): Promise<RunRecord>;
  startAgent(more?: Partial<AgentOptions>): Promise<Agent>;
  stop(): Promise<void>;
}

/**
 * Simulated sites (site-0, site-1, ...) behind real sshds, a RunService for the fronts' side and
 * in-process agents, all on one Redis key prefix.
 */
export async function startHarness(opts: {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly runbooks: RunbookSet;
  readonly scenarios: readonly string[];
  readonly approvalTimeoutMs?: number;
  readonly redisUrl?: string;
  readonly approvers?: readonly string[];
  /** Whether user groups in `approvers` count, for the fronts and the agents alike (default true here). */
  readonly trustSlackGroups?: boolean;
  /** Audit, metrics, job retention for the fronts' side. */
  readonly service?: Partial<RunServiceOptions>;
  /** Extra site profile fields for every site (e.g. approval_quorum), validated like a profile file. */
  readonly siteFields?: Readonly<Record<string, unknown>>;
  /** Site profiles per simulated jumphost (default 1): many sites (one run each) for little machine. */
  readonly sitesPerSim?: number;
}): Promise<Harness> {
  const sims = await Promise.all(
    opts.scenarios.map((scenario) => startSimJumphost({ scenario, timeScale: 0.002 })),
  );
  const perSim = opts.sitesPerSim ?? 1;
  const sites = new Map(
    sims.flatMap((sim, n) =>
      Array.from({ length: perSim }, (_, k) => {
        const i = n * perSim + k;
        const site = parseSiteProfile(
          { ...sim.site, ...opts.siteFields, name: `site-${i}` },
          `simulated site-${i}`,
        );
        return [site.name, site] as const;
      }),
    ),
  );
  const approvalTimeoutMs = opts.approvalTimeoutMs ?? 60_000;
  const approvers = opts.approvers ?? ['U0APPROVER'];
  const trustSlackGroups = opts.trustSlackGroups ?? true;
  const service = new RunService({
    redis: opts.redis,
    prefix: opts.prefix,
    runbooks: opts.runbooks,
    sites,
    approvalTimeoutMs,
    approvers,
    allowSelfApproval: false,
    trustSlackGroups,
    // Decisions are signed as serve signs them; the agents below verify them with the same test key.
    decisionSigner: testDecisionKeys().signer,
    logger: quietLogger,
    ...opts.service,
  });
  const agents: Agent[] = [];
  return {
    sims,
    sites,
    service,
    submit: (runbook, more = {}) =>
      service.submit({ runbook, args: [], site: 'site-0', requestedBy: 'U_REQUESTER', ...more }),
    async startAgent(more = {}) {
      const agent = await startAgent({
        redis: { mode: 'single', url: opts.redisUrl ?? REDIS_URL, waitReplicas: 0 },
        prefix: opts.prefix,
        sites,
        jumphostEnv: {},
        runbooks: opts.runbooks,
        approvalTimeoutMs,
        // The agent's own policy is the fronts' (one deployment), unless a test gives it another.
        decisions: testJudge(approvers, {
          trustSlackGroups,
          ...(opts.service?.allowSelfApproval !== undefined
            ? { allowSelfApproval: opts.service.allowSelfApproval }
            : {}),
        }),
        logger: quietLogger,
        concurrency: 1,
        lockDurationMs: 2000,
        stalledIntervalMs: 500,
        shutdownGraceMs: 1000,
        ...more,
      });
      agents.push(agent);
      return agent;
    },
    async stop() {
      await Promise.all(agents.map((a) => a.close()));
      await service.close();
      await Promise.all(sims.map((s) => s.stop()));
    },
  };
}

/** Follows a run's timeline (XREAD BLOCK, no polling) until an event matches; fails after `timeoutMs`. */
export async function waitForEvent<T extends RunEvent>(
  service: RunService,
  runId: string,
  match: (e: RunEvent) => e is T,
  timeoutMs = 30_000,
): Promise<T> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    for await (const entry of service.followTimeline(runId, '0', abort.signal)) {
      if (match(entry.event)) return entry.event;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  throw new Error(`run ${runId}: no matching event within ${timeoutMs} ms`);
}

export const isType =
  <K extends RunEvent['type']>(type: K, stepId?: string) =>
  (e: RunEvent): e is Extract<RunEvent, { type: K }> =>
    e.type === type && (stepId === undefined || ('stepId' in e && e.stepId === stepId));

export function events(entries: readonly TimelineEntry[]): RunEvent[] {
  return entries.map((e) => e.event);
}

/**
 * Acts as a human on the next undecided approval of a run: follows the timeline to an
 * approval.requested whose stored request has no decision yet, then decides it through the service.
 */
export async function decideNext(
  service: RunService,
  runId: string,
  approved: boolean,
  by = 'U0APPROVER',
  timeoutMs = 30_000,
): Promise<{ approvalId: string; result: Awaited<ReturnType<RunService['decide']>> }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    for await (const entry of service.followTimeline(runId, '0', abort.signal)) {
      const e = entry.event;
      if (e.type !== 'approval.requested') continue;
      const id = e.approvalId;
      const stored = await service.getApproval(id);
      if (!stored || stored.decision || stored.superseded) continue;
      const result = await service.decide(id, { userId: by, groupIds: [] }, approved, 'test');
      return { approvalId: id, result };
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  throw new Error(`run ${runId}: no undecided approval within ${timeoutMs} ms`);
}

/** Approves every approval of a run as it is asked, until the run finishes or `signal` aborts. */
export async function approveEverything(
  service: RunService,
  runId: string,
  signal: AbortSignal,
): Promise<number> {
  let approved = 0;
  for await (const entry of service.followTimeline(runId, '0', signal)) {
    const e = entry.event;
    if (e.type !== 'approval.requested') continue;
    const id = e.approvalId;
    const stored = await service.getApproval(id);
    if (!stored || stored.decision || stored.superseded) continue;
    const result = await service.decide(id, { userId: 'U0APPROVER', groupIds: [] }, true, 'test');
    if (result.outcome === 'decided') approved += 1;
  }
  return approved;
}

export interface AgentProcess {
  readonly child: import('node:child_process').ChildProcess;
  readonly pid: number;
  readonly exited: Promise<unknown>;
  /** Everything the agent logged (pino JSON lines), for asserting what it said about itself. */
  readonly logs: () => string;
  stop(): Promise<void>;
}

/**
 * A real agent process (`capi-chatops agent`) on one site profile file, with short lock timings so a
 * take-over happens in about two seconds. Kill it, stop it and continue it like any process.
 */
export async function spawnAgent(opts: {
  readonly siteFile: string;
  readonly prefix: string;
  readonly redisUrl?: string;
  readonly lockDurationMs?: number;
  readonly stalledIntervalMs?: number;
  /** Run with the lock timings the product ships (no --lock-duration-ms / --stalled-interval-ms). */
  readonly shippedTimings?: boolean;
  readonly env?: Readonly<Record<string, string>>;
  /** CAPI_APPROVERS of the agent, which judges every decision (default U0APPROVER, the harness's). */
  readonly approvers?: readonly string[];
}): Promise<AgentProcess> {
  const { spawn } = await import('node:child_process');
  const bin = new URL('../../bin/capi-chatops.js', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [
      bin,
      'agent',
      '--site',
      opts.siteFile,
      '--concurrency',
      '1',
      ...(opts.shippedTimings
        ? []
        : [
            '--lock-duration-ms',
            String(opts.lockDurationMs ?? 1500),
            '--stalled-interval-ms',
            String(opts.stalledIntervalMs ?? 500),
          ]),
    ],
    {
      env: {
        ...process.env,
        REDIS_URL: opts.redisUrl ?? REDIS_URL,
        QUEUE_PREFIX: opts.prefix,
        LOG_LEVEL: 'info',
        ...decisionEnv(opts.approvers ?? ['U0APPROVER']),
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
    if (process.env.CAPI_DEBUG_CHILD) process.stderr.write(d);
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  if (child.pid === undefined) throw new Error('the agent process did not start');
  const pid = child.pid;
  let stopping: Promise<void> | undefined;
  return {
    child,
    pid,
    exited,
    logs: () => out,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGCONT');
          child.kill('SIGKILL');
        }
        await exited;
      })();
      return stopping;
    },
  };
}

/** Every key matching the patterns with its exact content: "this process changed nothing" made checkable. */
export async function dumpKeys(
  redis: import('ioredis').Redis,
  ...patterns: readonly string[]
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const keys = new Set<string>();
  for (const p of patterns) for (const k of await redis.keys(p)) keys.add(k);
  for (const k of [...keys].sort()) {
    const d = await redis.dumpBuffer(k);
    out[k] = d === null ? 'none' : d.toString('base64');
  }
  return out;
}
