import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type RunningSshd, startSshd } from '../../dev/sim/sshd.js';
import { parseSiteProfile, type SiteProfile } from '../../src/config/site.js';
import { runToEnd } from '../../src/engine/engine.js';
import type { ApprovalDecision, ApprovalPort, ApprovalRequest, RunEvent } from '../../src/engine/events.js';
import { inProcessApprovals, MemoryAttempts } from '../../src/engine/in-process.js';
import type { FinishedRun, RunOptions } from '../../src/engine/outcome.js';
import { parseRunbook, parseScopes } from '../../src/runbook/load.js';
import type { Runbook } from '../../src/runbook/model.js';
import { connectSsh } from '../../src/ssh/executor.js';
import type { RemoteExecutor } from '../../src/ssh/types.js';
import { sampleSiteData } from './site.js';

/** A real sshd on 127.0.0.1 with an empty HOME: the engine's tests drive plain bash through it. */
async function startPlainJumphost(): Promise<{
  sshd: RunningSshd;
  home: string;
  stop(): Promise<void>;
}> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'capi-engine-test-'));
  const home = path.join(root, 'home');
  await mkdir(home);
  const sshd = await startSshd({ dir: path.join(root, 'sshd'), homeDir: home, pathPrepend: [] });
  return {
    sshd,
    home,
    async stop() {
      await sshd.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A plain jumphost and an executor connected to it, for the whole test file (see usePlainJumphost). */
export interface PlainJumphostFixture {
  readonly home: string;
  readonly executor: RemoteExecutor;
  /** ~/`name` on the jumphost, one entry per non-empty line; [] when the file is not there. */
  lines(name: string): Promise<string[]>;
  /** Writes ~/`name` on the jumphost. */
  write(name: string, content: string): Promise<void>;
}

/**
 * Starts a plain jumphost and connects an executor before the file's tests and stops both after them. The
 * fixture's fields are valid inside tests and hooks.
 */
export function usePlainJumphost(): PlainJumphostFixture {
  let jump: Awaited<ReturnType<typeof startPlainJumphost>> | undefined;
  let executor: RemoteExecutor | undefined;
  beforeAll(async () => {
    jump = await startPlainJumphost();
    executor = await connectSsh({ target: jump.sshd.target });
  });
  afterAll(async () => {
    await executor?.close();
    await jump?.stop();
  });
  const started = () => {
    if (!jump || !executor) throw new Error('the plain jumphost is used outside the tests of its file');
    return { jump, executor };
  };
  return {
    get home() {
      return started().jump.home;
    },
    get executor() {
      return started().executor;
    },
    async lines(name) {
      const text = await readFile(path.join(started().jump.home, name), 'utf8').catch(() => '');
      return text.split('\n').filter((l) => l !== '');
    },
    write: (name, content) => writeFile(path.join(started().jump.home, name), content),
  };
}

export function testSite(overrides: Record<string, unknown> = {}): SiteProfile {
  return parseSiteProfile(sampleSiteData({ timing: { scale: 0.001 }, ...overrides }), 'test site');
}

const SCOPES = parseScopes(
  'scopes.yaml',
  `scopes:
  marked:
    description: a scope whose preamble leaves a mark
    preamble: |
      export IN_SCOPE=yes
`,
);

export function testRunbook(yaml: string, name = 'test'): Runbook {
  return parseRunbook(
    `/test/${name}.yaml`,
    `name: ${name}\nsummary: test runbook\nsource: test\n${yaml}`,
    SCOPES,
  );
}

export function recorder(): { events: RunEvent[]; emit: (e: RunEvent) => void } {
  const events: RunEvent[] = [];
  return { events, emit: (e) => void events.push(e) };
}

/** Answers approvals from a script of decisions; `onAsk` runs while the "human" is deciding. */
export function scriptedApprovals(
  answers: readonly ('approve' | 'deny' | 'expire')[],
  onAsk?: (req: ApprovalRequest) => Promise<void>,
): ApprovalPort & { readonly requests: ApprovalRequest[] } {
  const requests: ApprovalRequest[] = [];
  return {
    requests,
    ...inProcessApprovals(async (req): Promise<ApprovalDecision> => {
      requests.push(req);
      await onAsk?.(req);
      const answer = answers[requests.length - 1] ?? 'deny';
      const at = new Date().toISOString();
      if (answer === 'approve') return { approved: true, by: 'U0APPROVER', at };
      return {
        approved: false,
        by: answer === 'expire' ? 'expiry' : 'U0APPROVER',
        at,
        reason: answer === 'expire' ? 'expired' : 'denied',
      };
    }),
  };
}

export function ofType<T extends RunEvent['type']>(
  events: readonly RunEvent[],
  type: T,
): Extract<RunEvent, { type: T }>[] {
  return events.filter((e): e is Extract<RunEvent, { type: T }> => e.type === type);
}

/** A run of `runbook` on the test site, asked for by U_REQUESTER, approving nothing unless `more` says so. */
export function runOptions(
  runbook: Runbook,
  executor: RemoteExecutor,
  more: Partial<RunOptions> = {},
): RunOptions {
  return {
    runId: 'run-test',
    runbook,
    params: {},
    site: testSite(),
    requestedBy: 'U_REQUESTER',
    executor,
    approvals: scriptedApprovals([]),
    attempts: new MemoryAttempts(),
    emit: () => undefined,
    ...more,
  };
}

/** Runs `runbook` to its end (see runOptions) and records every event it emits. */
export function recordedRun(
  runbook: Runbook,
  executor: RemoteExecutor,
  more: Partial<RunOptions> = {},
): { outcome: Promise<FinishedRun>; events: RunEvent[] } {
  const rec = recorder();
  const outcome = runToEnd(runOptions(runbook, executor, { emit: rec.emit, ...more }));
  return { outcome, events: rec.events };
}
