/**
 * The one Web API method membership needs (a WebClient has it): the terminal front resolves groups
 * through it without loading Bolt.
 */
export interface UsergroupsApi {
  readonly usergroups: {
    readonly users: {
      list(args: { usergroup: string }): Promise<{ users?: string[] }>;
    };
  };
}

/** Which of the candidate user groups (S…) a user is in. */
export interface MembershipPort {
  groupsOf(userId: string, candidates: readonly string[]): Promise<string[]>;
}

/**
 * Which of the configured user groups (S…) a user is in, via usergroups.users.list. Cached briefly:
 * a click storm on an approval must not turn into a storm of API calls, and group changes are rare.
 */
export class GroupMembership implements MembershipPort {
  private readonly cache = new Map<string, { users: Set<string>; at: number }>();

  constructor(
    private readonly client: UsergroupsApi,
    private readonly ttlMs = 60_000,
  ) {}

  async groupsOf(userId: string, candidates: readonly string[]): Promise<string[]> {
    const groups = candidates.filter((id) => id.startsWith('S'));
    const found: string[] = [];
    for (const group of groups) {
      if ((await this.members(group)).has(userId)) found.push(group);
    }
    return found;
  }

  private async members(group: string): Promise<Set<string>> {
    const hit = this.cache.get(group);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.users;
    const res = await this.client.usergroups.users.list({ usergroup: group });
    const users = new Set(res.users ?? []);
    this.cache.set(group, { users, at: Date.now() });
    return users;
  }
}
