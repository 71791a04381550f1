/**
 * The App Home tab: per site, the active runs (their step and pending approvals) and the last finished runs,
 * each linking to its thread; for approvers, what waits for them comes first.
 *
 * Published with views.publish when someone opens the tab (app_home_opened), and published again for the
 * people who opened it recently when a run they would see changes. Nothing polls Slack: the change comes from
 * the run events the thread poster already follows (onRunEvent), coalesced, for a bounded set of viewers.
 */
import type { WebClient } from '@slack/web-api';
import type { Logger } from 'pino';
import { countsText, worstLevel } from '../doctor/report.js';
import type {
  DoctorReport,
  RunRecord,
  RunService,
  SiteHold,
  StoredApproval,
} from '../service/run-service.js';
import { escapeSlack, mention } from './blocks.js';
import { DOCTOR_EMOJI } from './doctor-message.js';
import { slackName } from './escape.js';
import type { GroupMembership } from './membership.js';

/** Run events that change what the Home tab shows. */
export const HOME_EVENTS: ReadonlySet<string> = new Set([
  'run.started',
  'step.started',
  'approval.requested',
  'approval.voted',
  'approval.decided',
  'approval.superseded',
  'run.finished',
]);

const MAX_SITES = 10;
const MAX_ACTIVE_PER_SITE = 8;
const MAX_FINISHED_PER_SITE = 5;
const MAX_WAITING = 10;
const SECTION_MAX = 2900;

export interface HomeData {
  readonly sites: readonly string[];
  readonly active: readonly RunRecord[];
  readonly finished: readonly RunRecord[];
  /** Pending (undecided, not superseded) approvals of the active runs. */
  readonly pending: ReadonlyMap<string, readonly StoredApproval[]>;
  /** Run id -> permalink of its thread, when it has one. */
  readonly links: ReadonlyMap<string, string>;
  /** Site -> its last doctor report (`/capi doctor`, `capi-chatops doctor`). */
  readonly doctor?: ReadonlyMap<string, DoctorReport>;
  /** Site -> its holds: runs that ended not knowing whether their destructive command landed. */
  readonly holds?: ReadonlyMap<string, readonly SiteHold[]>;
}

export interface HomeViewer {
  readonly userId: string;
  readonly isApprover: boolean;
}

const STATUS_EMOJI: Readonly<Record<string, string>> = {
  queued: ':hourglass_flowing_sand:',
  running: ':arrows_counterclockwise:',
  waiting_approval: ':raised_hand:',
  interrupted: ':double_vertical_bar:',
  succeeded: ':white_check_mark:',
  failed: ':x:',
  denied: ':no_entry:',
  cancelled: ':no_entry_sign:',
};

function text(raw: string, max: number): string {
  const flat = raw.replace(/\s+/g, ' ').trim();
  return escapeSlack(flat.length > max ? `${flat.slice(0, max - 1)}…` : flat);
}

function runLabel(run: RunRecord, links: ReadonlyMap<string, string>): string {
  const name = `\`${text(run.runbook, 40)}\` ${text(run.runId, 80)}`;
  const link = links.get(run.runId);
  return link !== undefined ? `<${link}|${name}>` : name;
}

/** An approval `viewer` may still add theirs to: not the requester's, not one they already approved. */
function waitsFor(viewer: HomeViewer, a: StoredApproval): boolean {
  return (
    viewer.isApprover &&
    a.request.requestedBy !== viewer.userId &&
    !(a.votes ?? []).some((v) => v.by === viewer.userId)
  );
}

function packed(lines: readonly string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let current = '';
  for (const line of lines) {
    if (current !== '' && current.length + line.length + 1 > SECTION_MAX) {
      out.push({ type: 'section', text: { type: 'mrkdwn', text: current } });
      current = '';
    }
    current = current === '' ? line : `${current}\n${line}`;
  }
  if (current !== '') out.push({ type: 'section', text: { type: 'mrkdwn', text: current } });
  return out;
}

/** The site's last doctor report in a line: how it went, when, and which checks need a look. */
function doctorLine(report: DoctorReport | undefined): string {
  if (report === undefined)
    return ':stethoscope: No doctor report yet: `/capi doctor` in its channel checks it';
  const worst = worstLevel(report.lines);
  const open = report.lines.filter((l) => l.level !== 'ok').map((l) => l.check);
  return (
    `:stethoscope: Last doctor ${DOCTOR_EMOJI[worst]} ${text(countsText(report.lines), 60)} · ` +
    `${text(report.at.slice(0, 16).replace('T', ' '), 20)} UTC` +
    (open.length > 0 ? ` · needs a look: ${text(open.join(', '), 400)}` : '')
  );
}

/**
 * A held site first, above its runs: no run that can change the cloud starts there until someone checks by hand
 * what the unresolved command did and releases the site, saying what was checked.
 */
function holdLines(holds: readonly SiteHold[], links: ReadonlyMap<string, string>): string[] {
  return [
    `:warning: *Held*: ${holds.length === 1 ? 'a run' : `${holds.length} runs`} ended not knowing whether a destructive command landed. Check by hand, then \`/capi release REASON\` in its channel.`,
    ...holds.map((h) => {
      const link = links.get(h.runId);
      const run = link !== undefined ? `<${link}|${text(h.runId, 80)}>` : text(h.runId, 80);
      const sent = h.sentAt !== '' ? ` · sent ${text(h.sentAt.slice(0, 16).replace('T', ' '), 20)} UTC` : '';
      return `• run ${run} · step ${slackName(h.step, 100)}${sent} · ${slackName(h.command, 300)}`;
    }),
  ];
}

/** The Home tab for one person: a view object of type home (at most 100 blocks, whatever the data). */
export function homeView(viewer: HomeViewer, data: HomeData, now: Date): Record<string, unknown> {
  const blocks: Record<string, unknown>[] = [
    { type: 'header', text: { type: 'plain_text', text: 'CAPI runs', emoji: true } },
  ];
  const visible = new Set(data.sites);
  const active = data.active.filter((r) => visible.has(r.site));

  const waiting = active.flatMap((run) =>
    (data.pending.get(run.runId) ?? []).filter((a) => waitsFor(viewer, a)).map((a) => ({ run, a })),
  );
  if (viewer.isApprover) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: '*:raised_hand: Waiting for you*' } });
    const lines = waiting.slice(0, MAX_WAITING).map(({ run, a }) => {
      const quorum = a.request.quorum ?? 1;
      const count = quorum > 1 ? ` · ${(a.votes ?? []).length} of ${quorum} approvals` : '';
      const left = Math.max(0, Math.round((Date.parse(a.expiresAt) - now.getTime()) / 60_000));
      return `• *${text(a.request.title, 150)}* on ${text(run.site, 63)} · ${runLabel(run, data.links)} · asked by ${mention(a.request.requestedBy)}${count} · expires in ${left} min`;
    });
    if (waiting.length > MAX_WAITING) lines.push(`… and ${waiting.length - MAX_WAITING} more`);
    blocks.push(...packed(lines.length > 0 ? lines : ['_Nothing waits for your approval._']));
    blocks.push({ type: 'divider' });
  }

  for (const site of data.sites.slice(0, MAX_SITES)) {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `*Site ${text(site, 63)}*` } });
    blocks.push({
      type: 'context',
      elements: [{ type: 'mrkdwn', text: doctorLine(data.doctor?.get(site)) }],
    });
    const holds = data.holds?.get(site) ?? [];
    if (holds.length > 0) blocks.push(...packed(holdLines(holds, data.links)));
    const here = active.filter((r) => r.site === site);
    const lines = here.slice(0, MAX_ACTIVE_PER_SITE).map((run) => {
      const pending = data.pending.get(run.runId) ?? [];
      const step = run.currentStep !== undefined ? ` · step ${text(run.currentStep, 100)}` : '';
      const asks =
        pending.length > 0
          ? ` · ${pending.length} approval(s) pending: ${text(pending[0]?.request.title ?? '', 100)}`
          : '';
      // The agent writes waiting_approval to the record only after the approval.requested event that
      // republished this tab: an open request is what the run waits for, whatever the record says yet.
      const status = pending.length > 0 && run.status === 'running' ? 'waiting_approval' : run.status;
      return `${STATUS_EMOJI[status] ?? ''} ${runLabel(run, data.links)} · ${status.replace('_', ' ')}${step}${asks} · by ${mention(run.requestedBy)}`;
    });
    if (here.length > MAX_ACTIVE_PER_SITE)
      lines.push(`… and ${here.length - MAX_ACTIVE_PER_SITE} more active`);
    blocks.push(...packed(lines.length > 0 ? lines : ['_No active run._']));
    const done = data.finished.filter((r) => r.site === site).slice(0, MAX_FINISHED_PER_SITE);
    if (done.length > 0) {
      const last = done.map(
        (run) =>
          `${STATUS_EMOJI[run.status] ?? ''} ${runLabel(run, data.links)} · ${run.status}${
            run.finishedAt !== undefined
              ? ` · ${text(run.finishedAt.slice(0, 16).replace('T', ' '), 20)} UTC`
              : ''
          }`,
      );
      blocks.push({
        type: 'context',
        elements: [{ type: 'mrkdwn', text: `Last finished:\n${last.join('\n')}` }],
      });
    }
  }
  if (data.sites.length > MAX_SITES) {
    blocks.push({
      type: 'context',
      elements: [{ type: 'mrkdwn', text: `${data.sites.length - MAX_SITES} more site(s): /capi status` }],
    });
  }
  return { type: 'home', blocks: blocks.slice(0, 100) };
}

export interface HomeTabOptions {
  readonly client: WebClient;
  readonly service: RunService;
  readonly membership: GroupMembership;
  readonly approvers: readonly string[];
  readonly logger: Logger;
  /** The sites a person may see (default: every site). */
  readonly sitesFor?: (userId: string) => Promise<readonly string[]>;
  /** A run's thread permalink (from the poster's cursor), when it has a thread. */
  readonly permalink?: (runId: string) => Promise<string | undefined>;
  /** Who opened Home within this long gets it republished on changes. Default 15 min. */
  readonly recentMs?: number;
  /** At most this many people are kept up to date (the most recent ones). Default 50. */
  readonly maxViewers?: number;
  /** Changes within this long are published together. Default 2000. */
  readonly coalesceMs?: number;
}

/** Publishes the Home tab on open and again, coalesced, for recent viewers when runs change. */
export class HomeTab {
  private readonly viewers = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private publishing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: HomeTabOptions) {}

  /** app_home_opened: remember the viewer and publish for them now. */
  async opened(userId: string): Promise<void> {
    this.viewers.delete(userId);
    this.viewers.set(userId, Date.now());
    const max = this.opts.maxViewers ?? 50;
    while (this.viewers.size > max) {
      const oldest = this.viewers.keys().next().value;
      if (oldest === undefined) break;
      this.viewers.delete(oldest);
    }
    await this.publish([userId]);
  }

  /** A run event: republish for recent viewers, once per coalescing window. */
  runEvent(type: string): void {
    if (HOME_EVENTS.has(type)) this.changed();
  }

  /** Something shown changed (a run, a doctor report): republish for recent viewers, once per coalescing window. */
  changed(): void {
    if (this.closed || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const since = Date.now() - (this.opts.recentMs ?? 15 * 60_000);
      for (const [user, at] of this.viewers) if (at < since) this.viewers.delete(user);
      this.publishing = this.publishing.then(() => this.publish([...this.viewers.keys()]));
    }, this.opts.coalesceMs ?? 2000);
    this.timer.unref();
  }

  /** Stops republishing; resolves when a publish in flight is done. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.publishing;
  }

  private async data(): Promise<Omit<HomeData, 'sites'>> {
    const runs = await this.opts.service.listRuns({ limit: 100 });
    const active = runs.filter((r) => !r.finishedAt);
    const finished = runs.filter((r) => r.finishedAt);
    const pending = new Map<string, StoredApproval[]>();
    for (const run of active) pending.set(run.runId, await this.opts.service.pendingApprovals(run.runId));
    const links = new Map<string, string>();
    for (const run of runs) {
      const link = await this.opts.permalink?.(run.runId);
      if (link !== undefined) links.set(run.runId, link);
    }
    const holds = new Map<string, SiteHold[]>();
    for (const site of this.opts.service.siteNames()) {
      const held = await this.opts.service.holds(site);
      if (held.length > 0) holds.set(site, held);
    }
    return { active, finished, pending, links, doctor: await this.opts.service.lastDoctorReports(), holds };
  }

  private async publish(users: readonly string[]): Promise<void> {
    if (users.length === 0 || this.closed) return;
    try {
      const data = await this.data();
      for (const userId of users) {
        const sites = (await this.opts.sitesFor?.(userId)) ?? this.opts.service.siteNames();
        const isApprover =
          this.opts.approvers.includes(userId) ||
          (await this.opts.membership.groupsOf(userId, this.opts.approvers)).length > 0;
        const view = homeView({ userId, isApprover }, { ...data, sites }, new Date());
        await this.opts.client.views.publish({ user_id: userId, view: view as never });
      }
    } catch (err) {
      this.opts.logger.warn({ err }, 'the Home tab was not published');
    }
  }
}

/** A Slack permalink to a thread's root message (`<workspace>/archives/<channel>/p<ts without the dot>`). */
export function threadPermalink(workspaceUrl: string, channel: string, ts: string): string {
  return `${workspaceUrl.replace(/\/?$/, '/')}archives/${channel}/p${ts.replace('.', '')}`;
}
