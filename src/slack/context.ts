import type { WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import type { SiteProfile } from '../config/site.js';
import type { RunService } from '../service/run-service.js';

/** What every /capi handler gets: who asked, where, and the services behind the front. */
export interface CapiContext {
  readonly userId: string;
  readonly channelId: string;
  readonly service: RunService;
  readonly client: WebClient;
  readonly logger: Logger;
  /** Tells only the person who typed the command (the command's response_url, else chat.postEphemeral). */
  reply(text: string): Promise<void>;
  /**
   * A refused command (bad input, no right, nothing to act on): told like reply, unless the user floods
   * (SLACK_FLOOD_REFUSALS): then one "slow down", and nothing after it.
   */
  refuse(text: string): Promise<void>;
  /** Whether an upload may go out for this user now (SLACK_FLOOD_UPLOADS); says "slow down" once when not. */
  mayUpload(): Promise<boolean>;
  /** The site this channel acts on, or why there is none. */
  siteFor(channelId: string): { site: SiteProfile } | { problem: string };
  /** Called after a run is submitted from Slack so its thread starts at once. */
  watch(runId: string): void;
  /** Something the Home tab shows changed outside a run (a doctor report): republish it for recent viewers. */
  refreshHome?(): void;
  /** The command's trigger_id: opens a dialog (a picker) within 3 s of the command, once. */
  readonly triggerId?: string;
}

/** Channel -> site: a site names its incident channels; a lone site without any serves every channel. */
export function siteResolver(
  sites: ReadonlyMap<string, SiteProfile>,
): (channelId: string) => { site: SiteProfile } | { problem: string } {
  return (channelId) => {
    const all = [...sites.values()];
    const linked = all.filter((s) => s.slack_channels.includes(channelId));
    if (linked.length === 1) return { site: linked[0] as SiteProfile };
    if (linked.length > 1) {
      return {
        problem: `this channel is linked to several sites (${linked.map((s) => s.name).join(', ')}); fix slack_channels in the site profiles`,
      };
    }
    const unlinked = all.filter((s) => s.slack_channels.length === 0);
    if (all.length === 1 && unlinked.length === 1) return { site: unlinked[0] as SiteProfile };
    return {
      problem: `this channel is not linked to a site: add its id (${channelId}) to slack_channels in one site profile (known sites: ${all.map((s) => s.name).join(', ') || 'none'})`,
    };
  };
}

/**
 * Reads and cancels are scoped like runs: a channel sees and touches only the runs of the site it is linked
 * to (a lone site without links serves every channel, so there it sees them all). A run of another site
 * answers exactly as an unknown run does, so a channel cannot learn that it exists.
 */
export function runIsHere(ctx: CapiContext, run: { readonly site: string } | null): boolean {
  const where = ctx.siteFor(ctx.channelId);
  return run !== null && 'site' in where && where.site.name === run.site;
}
