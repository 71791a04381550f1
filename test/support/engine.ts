import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type RunningSshd, startSshd } from '../../dev/sim/sshd.js';
import { parseSiteProfile, type SiteProfile } from '../../src/config/site.js';
import type { ApprovalDecision, ApprovalPort, ApprovalRequest, RunEvent } from '../../src/engine/events.js';
import { inProcessApprovals } from '../../src/engine/in-process.js';
import { parseRunbook, parseScopes } from '../../src/runbook/load.js';
import type { Runbook } from '../../src/runbook/model.js';
import { sampleSiteData } from './site.js';

/** A real sshd on 127.0.0.1 with an empty HOME: the engine's tests drive plain bash through it. */
export async function startPlainJumphost(): Promise<{
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
      if (answer === 'approve') return { approved: true, by: 'U_APPROVER', at };
      return {
        approved: false,
        by: answer === 'expire' ? 'expiry' : 'U_APPROVER',
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
