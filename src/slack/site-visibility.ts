/**
 * Which sites a person may see outside a channel (the App Home tab): a site is theirs when they are in one of
 * its incident channels (slack_channels), read from Slack with conversations.members. A lone site without
 * slack_channels serves every channel (siteResolver's rule), so everyone sees it. Members are cached per
 * channel briefly: one list serves everyone who opens Home, and joining a channel shows within the TTL.
 * A channel Slack will not list (not found, the bot not in a private one) shows its site to nobody.
 */
import type { Logger } from 'pino';
import type { SiteProfile } from '../config/site.js';

/** The one Web API method this needs (a WebClient has it). */
export interface ConversationsMembersApi {
  readonly conversations: {
    members(args: { channel: string; limit?: number; cursor?: string }): Promise<{
      members?: string[];
      response_metadata?: { next_cursor?: string };
    }>;
  };
}

/** Slack's largest page for conversations.members. */
const PAGE = 1000;
/** A runaway cursor must not loop forever: 100 pages is 100 000 members. */
const MAX_PAGES = 100;

export class SiteVisibility {
  private readonly cache = new Map<string, { members: Promise<Set<string>>; at: number }>();

  constructor(
    private readonly client: ConversationsMembersApi,
    private readonly sites: ReadonlyMap<string, SiteProfile>,
    private readonly logger: Logger,
    private readonly ttlMs = 60_000,
  ) {}

  /** The names of the sites `userId` may see, in profile order. */
  async sitesFor(userId: string): Promise<string[]> {
    const all = [...this.sites.values()];
    const only = all.length === 1 ? all[0] : undefined;
    if (only !== undefined && only.slack_channels.length === 0) return [only.name];
    const out: string[] = [];
    for (const site of all) {
      for (const channel of site.slack_channels) {
        if ((await this.members(channel)).has(userId)) {
          out.push(site.name);
          break;
        }
      }
    }
    return out;
  }

  private members(channel: string): Promise<Set<string>> {
    const hit = this.cache.get(channel);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.members;
    const members = this.fetch(channel);
    this.cache.set(channel, { members, at: Date.now() });
    return members;
  }

  private async fetch(channel: string): Promise<Set<string>> {
    const out = new Set<string>();
    try {
      let cursor: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        const res = await this.client.conversations.members({
          channel,
          limit: PAGE,
          ...(cursor !== undefined ? { cursor } : {}),
        });
        for (const m of res.members ?? []) out.add(m);
        cursor = res.response_metadata?.next_cursor || undefined;
        if (cursor === undefined) return out;
      }
      this.logger.warn({ channel }, 'conversations.members: more pages than expected; the rest are ignored');
      return out;
    } catch (err) {
      // Not cached: the next Home opening asks again.
      this.cache.delete(channel);
      this.logger.warn({ channel, err }, 'the channel members could not be read');
      return new Set();
    }
  }
}
