/**
 * Approval and attempt ports for runs that live and die with one process (the terminal front, tests,
 * benchmarks): nothing to resume, so nothing to store. Durable runs use the Redis-backed ports of the agent.
 */
import type {
  ApprovalDecision,
  ApprovalPort,
  ApprovalRequest,
  AttemptPort,
  AttemptRecord,
  StepRef,
} from './events.js';

/** Every request is new, and `ask` decides it while the run waits. */
export function inProcessApprovals(
  ask: (request: ApprovalRequest, signal: AbortSignal) => Promise<ApprovalDecision>,
): ApprovalPort {
  let n = 0;
  return {
    async open(request) {
      n += 1;
      return { approvalId: `local~${request.runId}~${n}` };
    },
    decision: (_id, request, signal) => ask(request, signal),
  };
}

function slot(step: StepRef): string {
  return `${step.stepId}#${step.iteration?.n ?? 0}`;
}

export class MemoryAttempts implements AttemptPort {
  private readonly records = new Map<string, AttemptRecord>();

  async find(step: StepRef): Promise<AttemptRecord | undefined> {
    return this.records.get(slot(step));
  }

  async begin(
    step: StepRef,
    approval: { readonly approvalId: string; readonly digest: string },
    command: string,
  ) {
    const existing = this.records.get(slot(step));
    if (existing) return { outcome: 'exists' as const, attempt: existing };
    const attempt: AttemptRecord = {
      attemptId: `${slot(step)}~${this.records.size + 1}`,
      approvalId: approval.approvalId,
      command,
      startedAt: new Date().toISOString(),
    };
    this.records.set(slot(step), attempt);
    return { outcome: 'recorded' as const, attempt, slot: slot(step) };
  }

  async finish(step: StepRef, outcome: NonNullable<AttemptRecord['outcome']>): Promise<void> {
    const a = this.records.get(slot(step));
    if (a) this.records.set(slot(step), { ...a, outcome });
  }

  /** A terminal run keeps no audit trail and runs unfenced, and this journal ends with it: nothing to record. */
  async refused(): Promise<void> {}
}
