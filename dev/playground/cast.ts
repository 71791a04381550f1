/**
 * Who and where the playground plays: one workspace, one incident channel, three people. The bot's own rules
 * decide what each may do, from the same CAPI_OPERATORS / CAPI_APPROVERS a real deployment sets: the
 * operator starts runs and is an approver too (so approving their own step shows the self-approval rule),
 * the approver approves through a user group (so group membership is checked through Slack's API), and the
 * visitor is neither.
 */
import { FAKE_BOT } from '../slack/fake-slack.js';

export interface Person {
  readonly id: string;
  /** The Slack handle: user_name in slash commands, username in clicks. */
  readonly handle: string;
  /** What the page shows. */
  readonly name: string;
  readonly role: string;
  readonly groups: readonly string[];
}

/** The fake Slack's workspace: the team auth.test answers with, so every request names the same one. */
export const TEAM = { id: FAKE_BOT.teamId, domain: 'capi-playground' } as const;
/** The Slack app the requests come from. */
export const APP_ID = 'A0CAPIPLAY1';
export const CHANNEL = { id: 'C0INCIDENT1', name: 'capi-incident' } as const;
export const APPROVER_GROUP = { id: 'S0APPROVERS', handle: 'capi-approvers' } as const;

export const OPERATOR: Person = {
  id: 'U0OPERATOR1',
  handle: 'olivia',
  name: 'Olivia (operator)',
  role: 'starts and cancels runs (CAPI_OPERATORS); an approver, but never of her own run',
  groups: [],
};
export const APPROVER: Person = {
  id: 'U0APPROVER1',
  handle: 'arjun',
  name: 'Arjun (approver)',
  role: `approves destructive steps as a member of @${APPROVER_GROUP.handle} (CAPI_APPROVERS)`,
  groups: [APPROVER_GROUP.id],
};
export const VISITOR: Person = {
  id: 'U0VISITOR01',
  handle: 'val',
  name: 'Val (visitor)',
  role: 'neither: read-only commands (diagnose, status, timeline, help) only',
  groups: [],
};
export const PEOPLE: readonly Person[] = [OPERATOR, APPROVER, VISITOR];

/**
 * The environment serve gets for these rules. The approver's right comes from a user group, so the
 * playground trusts Slack groups; a real workspace restricts user-group editing to admins first (README).
 */
export const RULES_ENV = {
  CAPI_OPERATORS: OPERATOR.id,
  CAPI_APPROVERS: [OPERATOR.id, APPROVER_GROUP.id].join(','),
  CAPI_TRUST_SLACK_GROUPS: 'true',
} as const;

export function personById(id: string): Person | undefined {
  return PEOPLE.find((p) => p.id === id);
}
