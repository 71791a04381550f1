/**
 * The zod schemas of the engine's events as they are stored (the run timeline, approval requests): data read
 * back from Redis is untrusted (another process, another version, a hand edit).
 */
import { z } from 'zod';
import type { ApprovalDecision, ApprovalRequest, RunEvent, StepRef } from '../engine/events.js';

const int = z.number().int();

export const stepRefSchema = z.object({
  stepId: z.string(),
  index: int,
  total: int,
  iteration: z.object({ n: int, of: int, label: z.string() }).exactOptional(),
}) satisfies z.ZodType<StepRef>;

export const approvalRequestSchema = z.object({
  runId: z.string(),
  runbook: z.string(),
  step: stepRefSchema,
  title: z.string(),
  summary: z.string(),
  commands: z.array(z.string()),
  targets: z.array(z.string()),
  evidence: z.array(z.string()),
  requestedBy: z.string(),
  digest: z.string(),
}) satisfies z.ZodType<ApprovalRequest>;

export const approvalDecisionSchema = z.discriminatedUnion('approved', [
  z.object({ approved: z.literal(true), by: z.string(), at: z.string() }),
  z.object({
    approved: z.literal(false),
    by: z.string(),
    at: z.string(),
    reason: z.enum(['denied', 'expired']),
    note: z.string().exactOptional(),
  }),
]) satisfies z.ZodType<ApprovalDecision>;

const stepStatus = z.enum(['ok', 'failed', 'skipped', 'denied', 'cancelled', 'interrupted']);
const ref = stepRefSchema.shape;

export const runEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('run.started'),
    runId: z.string(),
    runbook: z.string(),
    summary: z.string(),
    site: z.string(),
    params: z.record(z.string(), z.string()),
    requestedBy: z.string(),
    steps: z.array(z.object({ id: z.string(), title: z.string(), destructive: z.boolean() })),
  }),
  z.object({ type: z.literal('run.resumed'), reason: z.string(), atStep: z.string() }),
  z.object({
    type: z.literal('approval.refused'),
    approvalId: z.string(),
    by: z.string(),
    reason: z.string(),
  }),
  z.object({ type: z.literal('preflight'), home: z.string(), tools: z.array(z.string()) }),
  z.object({
    ...ref,
    type: z.literal('step.started'),
    kind: z.enum(['run', 'poll', 'for_each', 'report']),
    title: z.string(),
    destructive: z.boolean(),
  }),
  z.object({
    ...ref,
    type: z.literal('step.output'),
    stream: z.enum(['stdout', 'stderr']),
    line: z.string(),
  }),
  z.object({ ...ref, type: z.literal('poll.attempt'), attempt: int, of: int, summary: z.string() }),
  z.object({ ...ref, type: z.literal('decision'), message: z.string() }),
  z.object({ ...ref, type: z.literal('guard.skipped'), message: z.string() }),
  z.object({
    ...ref,
    type: z.literal('approval.requested'),
    approvalId: z.string(),
    request: approvalRequestSchema,
  }),
  z.object({
    ...ref,
    type: z.literal('approval.decided'),
    approvalId: z.string(),
    decision: approvalDecisionSchema,
  }),
  z.object({
    ...ref,
    type: z.literal('approval.superseded'),
    approvalId: z.string(),
    supersededBy: z.string(),
    why: z.enum(['changed', 'stale']),
  }),
  z.object({
    ...ref,
    type: z.literal('attempt.started'),
    attemptId: z.string(),
    approvalId: z.string(),
    command: z.string(),
    at: z.string(),
  }),
  z.object({
    ...ref,
    type: z.literal('attempt.verified'),
    attemptId: z.string(),
    tookEffect: z.boolean(),
    message: z.string(),
  }),
  z.object({
    ...ref,
    type: z.literal('step.finished'),
    status: stepStatus,
    exitCode: int.nullable(),
    signal: z.string().nullable(),
    durationMs: z.number(),
    message: z.string().exactOptional(),
  }),
  z.object({
    type: z.literal('run.finished'),
    status: z.enum(['succeeded', 'failed', 'denied', 'cancelled']),
    message: z.string(),
    durationMs: z.number(),
    failedStep: z.string().exactOptional(),
  }),
]) satisfies z.ZodType<RunEvent>;
