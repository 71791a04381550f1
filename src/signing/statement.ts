/**
 * A decision as a signed statement: which approval, which exact action (its digest), who, approve or deny,
 * when, through which front, the group that granted the right (Slack only) and the decider's words. The
 * statement is stored as the exact text that was signed, so the agent verifies those bytes and reads every
 * field it acts on from them, never from the fields beside it in Redis.
 */
import { z } from 'zod';

/** The SSHSIG namespace of a terminal decision (`ssh-keygen -Y sign -n …`): a signature for nothing else. */
export const DECISION_NAMESPACE = 'capi-chatops-decision';

/** Marks the text as a decision statement (also what a serve signature covers: nothing else is signed). */
const STATEMENT_TYPE = 'capi-chatops.decision';

export interface DecisionStatement {
  readonly approvalId: string;
  /** The action digest of the request it decides (ApprovalRequest.digest). */
  readonly digest: string;
  /** The Slack user id of the person who decided. */
  readonly decider: string;
  readonly verdict: 'approve' | 'deny';
  /** ISO time the front took the decision. */
  readonly at: string;
  /** Which front took it (`slack`, `terminal as alice`). */
  readonly via: string;
  /** The Slack user group (S…) that made the decider an approver, when it was not their own id. */
  readonly group?: string;
  /** Why, in the decider's words. */
  readonly note?: string;
}

const statementSchema = z.strictObject({
  type: z.literal(STATEMENT_TYPE),
  v: z.literal(1),
  approvalId: z.string().min(1).max(512),
  digest: z.string().min(1).max(256),
  decider: z.string().min(1).max(64),
  verdict: z.enum(['approve', 'deny']),
  at: z.iso.datetime(),
  via: z.string().min(1).max(200),
  group: z.string().min(1).max(64).exactOptional(),
  note: z.string().max(4000).exactOptional(),
});

/** Who vouches for a statement: serve's own key (Slack decisions) or the operator's SSH key (terminal). */
export const SIGNERS = ['service', 'ssh'] as const;
export type SignerKind = (typeof SIGNERS)[number];

export const signedDecisionSchema = z.strictObject({
  /** The exact text that was signed. */
  statement: z.string().min(1).max(8192),
  signer: z.enum(SIGNERS),
  /** serve: base64 Ed25519 signature; ssh: the armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`). */
  signature: z.string().min(1).max(16384),
});
export type SignedDecision = z.infer<typeof signedDecisionSchema>;

/** Signs a statement's text; a front has one (serve: its key; a terminal: the operator's SSH key). */
export interface DecisionSigner {
  sign(statement: string): Promise<SignedDecision>;
}

/** The statement's text, keys in a fixed order. */
export function statementText(s: DecisionStatement): string {
  return JSON.stringify({
    type: STATEMENT_TYPE,
    v: 1,
    approvalId: s.approvalId,
    digest: s.digest,
    decider: s.decider,
    verdict: s.verdict,
    at: s.at,
    via: s.via,
    ...(s.group !== undefined ? { group: s.group } : {}),
    ...(s.note !== undefined ? { note: s.note } : {}),
  });
}

/** The statement a signed text makes, or why it is not one. */
export function parseStatement(text: string): DecisionStatement | { readonly problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { problem: 'the signed statement is not JSON' };
  }
  const parsed = statementSchema.safeParse(json);
  if (!parsed.success) {
    return { problem: `the signed statement is not a decision (${parsed.error.issues[0]?.message ?? '?'})` };
  }
  const { type: _type, v: _v, ...statement } = parsed.data;
  return statement;
}
