/**
 * The agent's own judgement of a decision, before it acts on it. A front checks who may decide (policy.ts)
 * for a quick answer; this is what counts: the agent that would run the command takes the decision apart,
 * verifies every signed statement in it against the keys it was configured with, and holds each decider
 * to its own policy (approvers, self-approval, quorum, trusted groups), all read from its configuration,
 * never from the request or the decision. Nothing written to Redis by hand passes: it carries no signature,
 * or one that does not verify, or one for another action.
 *
 * Pure: no I/O. The verifiers are given.
 */
import type { ApprovalDecision, ApprovalRequest } from '../engine/events.js';
import type { DecisionVerifiers } from '../signing/keys.js';
import { verifyServiceSignature } from '../signing/service-key.js';
import { type DecisionStatement, parseStatement, type SignedDecision } from '../signing/statement.js';
import type { StoredApproval } from './approvals.js';

export type { DecisionVerifiers };

/** The agent's deployment policy (CAPI_APPROVERS, CAPI_ALLOW_SELF_APPROVAL, CAPI_TRUST_SLACK_GROUPS). */
export interface DecisionPolicy {
  readonly approvers: readonly string[];
  readonly allowSelfApproval: boolean;
  readonly trustSlackGroups: boolean;
}

export interface DecisionJudge {
  readonly policy: DecisionPolicy;
  readonly verifiers: DecisionVerifiers;
}

export type Judgement =
  | { readonly ok: true; readonly decision: ApprovalDecision }
  /** `reason` says in words which rule refused, for the thread and the audit line. */
  | { readonly ok: false; readonly by: string; readonly reason: string };

interface Verified {
  readonly statement: DecisionStatement;
  /** The ids that are one person: the decider, and every id their SSH key is listed for. */
  readonly person: readonly string[];
}

type Refused = Extract<Judgement, { ok: false }>;

const refuse = (by: string, reason: string): Refused => ({ ok: false, by, reason });

/**
 * The decision on `request` (the agent's own: its digest, requester and quorum) as stored under
 * `approvalId`, judged. An expiry needs no signature: it is a denial nobody made, and it runs nothing.
 */
export function judgeDecision(
  approvalId: string,
  stored: StoredApproval,
  request: ApprovalRequest,
  judge: DecisionJudge,
): Judgement | undefined {
  const d = stored.decision;
  if (d === undefined) return undefined;
  if (!d.approved && d.reason === 'expired') return { ok: true, decision: d };
  const quorum = request.quorum ?? 1;
  // Each approval of a step that needs several is its own signed statement; otherwise the decision is one.
  const items =
    d.approved && quorum > 1 && stored.votes !== undefined
      ? stored.votes.map((v) => ({ by: v.by, signed: v.signed }))
      : [{ by: d.by, signed: stored.decisionSigned }];
  const verified: Verified[] = [];
  for (const item of items) {
    const one = verifyOne(approvalId, item.by, item.signed, d.approved, request, judge);
    if ('ok' in one) return one;
    verified.push(one);
  }
  const last = verified.at(-1) as Verified;
  if (!d.approved) {
    return {
      ok: true,
      decision: {
        approved: false,
        by: last.statement.decider,
        at: d.at,
        reason: 'denied',
        ...(last.statement.note !== undefined ? { note: last.statement.note } : {}),
      },
    };
  }
  // Distinct people: two ids one SSH key is listed for are one person, whatever ids the votes carry.
  const counted: Verified[] = [];
  for (const v of verified) {
    if (!counted.some((c) => c.person.some((id) => v.person.includes(id)))) counted.push(v);
  }
  if (counted.length < quorum) {
    const same =
      verified.length > counted.length ? ' (some approvals are by one person under several ids)' : '';
    return refuse(
      last.statement.decider,
      `the step needs ${quorum} different approvers and the decision has ${counted.length}${same}`,
    );
  }
  return {
    ok: true,
    decision: {
      approved: true,
      by: last.statement.decider,
      at: d.at,
      ...(last.statement.note !== undefined ? { note: last.statement.note } : {}),
      ...(quorum > 1 ? { approvers: counted.map((c) => c.statement.decider) } : {}),
    },
  };
}

function verifyOne(
  approvalId: string,
  by: string,
  signed: SignedDecision | undefined,
  approved: boolean,
  request: ApprovalRequest,
  { policy, verifiers }: DecisionJudge,
): Verified | Refused {
  if (signed === undefined) {
    return refuse(by, 'it carries no signature (it was not taken in Slack or with capi-chatops decide)');
  }
  const statement = parseStatement(signed.statement);
  if ('problem' in statement) return refuse(by, statement.problem);
  let person = [statement.decider];
  if (signed.signer === 'service') {
    if (verifiers.service === undefined) {
      return refuse(by, 'it was signed by serve and this agent has no CAPI_DECISION_VERIFY_KEY');
    }
    if (!verifyServiceSignature(verifiers.service, signed.statement, signed.signature)) {
      return refuse(by, "its signature does not verify with serve's key");
    }
  } else {
    if (verifiers.allowedSigners === undefined) {
      return refuse(by, 'it was signed with an SSH key and this agent has no CAPI_ALLOWED_SIGNERS');
    }
    const checked = verifiers.allowedSigners.verify(statement.decider, signed.statement, signed.signature);
    if (!checked.ok) return refuse(by, checked.why);
    person = [...new Set([statement.decider, ...verifiers.allowedSigners.principalsOf(checked.fingerprint)])];
  }
  if (statement.approvalId !== approvalId || statement.digest !== request.digest) {
    return refuse(by, 'the signed statement is for another approval or another action');
  }
  if (statement.decider !== by || (statement.verdict === 'approve') !== approved) {
    return refuse(by, `the stored decision does not say what ${statement.decider} signed`);
  }
  const who = statement.decider;
  if (!policy.approvers.includes(who)) {
    const g = statement.group;
    // Only serve vouches for a group: it read the membership from Slack with its own token at the click.
    const vouched = g !== undefined && signed.signer === 'service' && policy.approvers.includes(g);
    if (!vouched || !policy.trustSlackGroups) {
      const why =
        g !== undefined && policy.approvers.includes(g)
          ? policy.trustSlackGroups
            ? `only a decision taken in Slack can count membership of ${g}; a terminal decision counts for an approver listed by user id`
            : `their right would come from the user group ${g} and this agent does not trust Slack groups (CAPI_TRUST_SLACK_GROUPS)`
          : 'they are not in CAPI_APPROVERS';
      return refuse(who, `${who} may not decide: ${why}`);
    }
  }
  if (who === request.requestedBy) {
    const quorum = request.quorum ?? 1;
    if (quorum > 1) {
      return refuse(who, `${who} asked for this run, and the step needs ${quorum} approvers besides them`);
    }
    if (!policy.allowSelfApproval) {
      return refuse(who, `${who} asked for this run and may not decide it (CAPI_ALLOW_SELF_APPROVAL is off)`);
    }
  }
  return { statement, person };
}
