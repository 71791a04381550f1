/**
 * The zod schemas of the engine's events as they are stored (the run timeline, approval requests): data read
 * back from Redis is untrusted (another process, another version, a hand edit).
 */
import { z } from 'zod';
import {
  type ApprovalDecision,
  type ApprovalRequest,
  RUN_STATUSES,
  type RunEvent,
  STEP_STATUSES,
  type StepRef,
} from '../engine/events.js';

const int = z.number().int();

export const stepRefSchema = z.object({
  stepId: z.string(),
  index: int,
  total: int,
  iteration: z
    .object({
      n: int,
      of: int,
      label: z.string(),
      name: z.string().exactOptional(),
      key: z.string().exactOptional(),
    })
    .exactOptional(),
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
  quorum: int.min(1).exactOptional(),
  digest: z.string(),
}) satisfies z.ZodType<ApprovalRequest>;

export const approvalDecisionSchema = z.discriminatedUnion('approved', [
  z.object({
    approved: z.literal(true),
    by: z.string(),
    at: z.string(),
    note: z.string().exactOptional(),
    approvers: z.array(z.string()).exactOptional(),
  }),
  z.object({
    approved: z.literal(false),
    by: z.string(),
    at: z.string(),
    reason: z.enum(['denied', 'expired']),
    note: z.string().exactOptional(),
  }),
]) satisfies z.ZodType<ApprovalDecision>;

const ref = stepRefSchema.shape;

type EventOf<K extends RunEvent['type']> = Extract<RunEvent, { type: K }>;

/**
 * One schema per event type, keyed by the type: a RunEvent type without its schema here (or a schema that
 * reads back something the type does not hold) does not compile, so no event can be written by the engine
 * and then dropped as malformed on read.
 */
const eventSchemas = {
  'run.started': z.object({
    type: z.literal('run.started'),
    runId: z.string(),
    runbook: z.string(),
    summary: z.string(),
    site: z.string(),
    params: z.record(z.string(), z.string()),
    requestedBy: z.string(),
    requestedAt: z.string().exactOptional(),
    steps: z.array(z.object({ id: z.string(), title: z.string(), destructive: z.boolean() })),
  }),
  'run.resumed': z.object({ type: z.literal('run.resumed'), reason: z.string(), atStep: z.string() }),
  'approval.voted': z.object({
    type: z.literal('approval.voted'),
    approvalId: z.string(),
    by: z.string(),
    count: int,
    of: int,
    note: z.string().exactOptional(),
  }),
  'approval.refused': z.object({
    type: z.literal('approval.refused'),
    approvalId: z.string(),
    by: z.string(),
    reason: z.string(),
  }),
  'run.joined': z.object({
    type: z.literal('run.joined'),
    by: z.string(),
    via: z.string().exactOptional(),
    note: z.string().exactOptional(),
  }),
  preflight: z.object({
    type: z.literal('preflight'),
    home: z.string(),
    tools: z.array(z.string()),
    missing: z.array(z.string()).exactOptional(),
  }),
  'step.started': z.object({
    ...ref,
    type: z.literal('step.started'),
    kind: z.enum(['run', 'poll', 'for_each', 'report']),
    title: z.string(),
    destructive: z.boolean(),
    parsed: z.boolean().exactOptional(),
  }),
  'step.output': z.object({
    ...ref,
    type: z.literal('step.output'),
    stream: z.enum(['stdout', 'stderr']),
    line: z.string(),
  }),
  'poll.attempt': z.object({
    ...ref,
    type: z.literal('poll.attempt'),
    attempt: int,
    of: int,
    summary: z.string(),
  }),
  decision: z.object({ ...ref, type: z.literal('decision'), message: z.string() }),
  'guard.skipped': z.object({ ...ref, type: z.literal('guard.skipped'), message: z.string() }),
  'approval.requested': z.object({
    ...ref,
    type: z.literal('approval.requested'),
    approvalId: z.string(),
    request: approvalRequestSchema,
  }),
  'approval.decided': z.object({
    ...ref,
    type: z.literal('approval.decided'),
    approvalId: z.string(),
    decision: approvalDecisionSchema,
  }),
  'approval.rejected': z.object({
    ...ref,
    type: z.literal('approval.rejected'),
    approvalId: z.string(),
    by: z.string(),
    reason: z.string(),
  }),
  'approval.superseded': z.object({
    ...ref,
    type: z.literal('approval.superseded'),
    approvalId: z.string(),
    supersededBy: z.string(),
    why: z.enum(['changed', 'stale']),
  }),
  'attempt.started': z.object({
    ...ref,
    type: z.literal('attempt.started'),
    attemptId: z.string(),
    approvalId: z.string(),
    command: z.string(),
    at: z.string(),
  }),
  'attempt.verified': z.object({
    ...ref,
    type: z.literal('attempt.verified'),
    attemptId: z.string(),
    tookEffect: z.boolean(),
    message: z.string(),
  }),
  'step.finished': z.object({
    ...ref,
    type: z.literal('step.finished'),
    status: z.enum(STEP_STATUSES),
    exitCode: int.nullable(),
    signal: z.string().nullable(),
    durationMs: z.number(),
    message: z.string().exactOptional(),
    summary: z.string().exactOptional(),
  }),
  'run.finished': z.object({
    type: z.literal('run.finished'),
    status: z.enum(RUN_STATUSES),
    message: z.string(),
    durationMs: z.number(),
    waitingMs: z.number().exactOptional(),
    failedStep: z.string().exactOptional(),
  }),
} satisfies { readonly [K in RunEvent['type']]: z.ZodType<EventOf<K>> };

type EventSchema = (typeof eventSchemas)[keyof typeof eventSchemas];

export const runEventSchema = z.discriminatedUnion(
  'type',
  Object.values(eventSchemas) as [EventSchema, ...EventSchema[]],
) satisfies z.ZodType<RunEvent>;
