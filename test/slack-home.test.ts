import { describe, expect, it } from 'vitest';
import type { FakeSlack } from '../dev/slack/fake-slack.js';
import { findViewViolations } from '../dev/slack/views.js';
import { TargetLock, targetKey } from '../src/runs/lock.js';
import type { SiteHold } from '../src/service/run-service.js';
import { homeView } from '../src/slack/home.js';
import { ThreadCursors } from '../src/slack/thread-cursors.js';
import { isType, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { useSlackFronts } from './support/slack-front.js';
import { approvalMessageTs, buttonClickBody, slashCommandBody } from './support/slack-requests.js';

/** The App Home tab: published on app_home_opened (a signed Events API request), republished as runs change. */

const CHANNEL = 'C0INCIDENT';
const OPERATOR = 'U0OPERATOR';
const APPROVER = 'U0APPROVER';
const VISITOR = 'U0VISITOR1';

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);

/**
 * `links`: each site's slack_channels, by site index (one site per entry; default one site without any);
 * `members`: who is in each channel, as Slack's conversations.members lists them (default everyone).
 */
async function world(opts: { links?: string[][]; members?: Record<string, string[]> } = {}) {
  const links = opts.links ?? [[]];
  const front = await startSlackFront({
    scenarios: links.map(() => 'healthy'),
    channels: [CHANNEL, ...links.flat().filter((c) => c !== CHANNEL)],
    users: { [OPERATOR]: { groups: [] }, [APPROVER]: { groups: ['S0APPROVERS'] }, [VISITOR]: { groups: [] } },
    ...(opts.members !== undefined ? { fake: { members: opts.members } } : {}),
    approvers: ['S0APPROVERS'],
    operators: [OPERATOR],
    siteChannels: links,
    home: true,
  });
  return {
    slack: front.fake,
    h: front.harness,
    async form(body: string) {
      await front.send(body);
    },
    openHome: front.openHome,
  };
}

const homeText = (slack: FakeSlack, user: string) => JSON.stringify(slack.home(user)?.view.blocks ?? null);

describe('the App Home tab', () => {
  it('should show an approver what waits for them first, with the run, its step and a link to its thread', async () => {
    const w = await world();
    await w.form(slashCommandBody({ user: OPERATOR, channel: CHANNEL, text: 'park', slack: w.slack }));
    const runId = await eventually('a run', async () => (await w.h.service.listRuns({}))[0]?.runId);
    await waitForEvent(w.h.service, runId, isType('approval.requested'));
    await eventually(
      'the thread root',
      async () => (await new ThreadCursors(db.redis, db.prefix).load(runId)).rootTs,
    );

    await w.openHome(APPROVER);
    const text = await eventually('the Home tab of the approver', () => {
      const t = homeText(w.slack, APPROVER);
      return t.includes('Waiting for you') && t.includes('archives/C0INCIDENT/p') ? t : undefined;
    });
    expect(text.indexOf('Waiting for you')).toBeLessThan(text.indexOf('Site site-0'));
    expect(text).toMatch(/Waiting for you.*Stop/);
    expect(text).toContain(runId);
    expect(text).toContain('waiting approval');

    // A visitor sees the run, and nothing waits for them; the requester is not asked to approve their own.
    await w.openHome(VISITOR);
    const visitor = await eventually('the Home tab of the visitor', () =>
      w.slack.home(VISITOR) ? homeText(w.slack, VISITOR) : undefined,
    );
    expect(visitor).not.toContain('Waiting for you');
    expect(visitor).toContain(runId);

    // The run goes on: the approver's tab is published again without opening it, the run now finished.
    const publishes = () =>
      w.slack.calls.filter((c) => c.method === 'views.publish' && c.args.user_id === APPROVER);
    const before = publishes().length;
    const approvalId = (await w.h.service.pendingApprovals(runId))[0]?.approvalId as string;
    await w.form(
      buttonClickBody({
        user: APPROVER,
        channel: CHANNEL,
        actionId: 'capi_approve',
        value: approvalId,
        messageTs: await eventually('the approval message in the channel', () =>
          approvalMessageTs(w.slack, CHANNEL, approvalId),
        ),
      }),
    );
    await waitForEvent(w.h.service, runId, isType('run.finished'));
    const after = await eventually('the approver tab republished with the finished run', () => {
      const t = homeText(w.slack, APPROVER);
      return t.includes('Last finished') && t.includes('Nothing waits for your approval') ? t : undefined;
    });
    expect(after).toContain('succeeded');
    expect(publishes().length).toBeGreaterThan(before);
    // Coalesced: far fewer publishes than the run had events.
    expect(publishes().length).toBeLessThan((await w.h.service.readTimeline(runId)).length);
  });

  it('should publish nothing when the Messages tab is opened', async () => {
    const w = await world();
    await w.openHome(APPROVER, 'messages');
    await w.openHome(VISITOR);
    await eventually('the visitor tab', () => w.slack.home(VISITOR));
    expect(w.slack.home(APPROVER)).toBeUndefined();
  });

  it('should not ask approvers to approve their own run or a request they already approved', () => {
    const run = {
      runId: 'r1home',
      runbook: 'park',
      params: {},
      site: 'site-0',
      requestedBy: OPERATOR,
      queue: 'jobs',
      status: 'waiting_approval' as const,
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    };
    const approval = {
      approvalId: 'approval~r1home~stop',
      runId: 'r1home',
      stepId: 'stop',
      requestedAt: '2026-01-01T00:00:00.000Z',
      expiresAt: '2999-01-01T00:00:00.000Z',
      votes: [{ by: APPROVER, at: '2026-01-01T00:01:00.000Z' }],
      request: {
        runId: 'r1home',
        runbook: 'park',
        step: { stepId: 'stop', index: 1, total: 1 },
        title: 'Stop capi-mgmt-v2',
        summary: 's',
        commands: ['x'],
        targets: ['capi-mgmt-v2'],
        evidence: [],
        requestedBy: OPERATOR,
        quorum: 2,
        digest: 'd',
      },
    };
    const data = {
      sites: ['site-0'],
      active: [run],
      finished: [],
      pending: new Map([['r1home', [approval]]]),
      links: new Map(),
    };
    const waiting = (userId: string) => {
      const text = JSON.stringify(homeView({ userId, isApprover: true }, data, new Date()).blocks);
      return text.slice(text.indexOf('Waiting for you'), text.indexOf('Site site-0'));
    };
    expect(waiting('U0SECOND01')).toMatch(/Stop capi-mgmt-v2.*1 of 2 approvals/);
    expect(waiting(OPERATOR)).toContain('Nothing waits for your approval');
    expect(waiting(APPROVER)).toContain('Nothing waits for your approval');
  });

  it('should show each person only the sites whose incident channels they are in, read from Slack and cached', async () => {
    const OTHER = 'C0OTHERINC';
    // The approver is on the second page of the other channel's members (Slack pages at most 1000).
    const crowd = Array.from({ length: 1200 }, (_, i) => `U0CROWD${String(i).padStart(4, '0')}`);
    const w = await world({
      links: [[CHANNEL], [OTHER]],
      members: { [CHANNEL]: [OPERATOR, APPROVER], [OTHER]: [...crowd, APPROVER] },
    });
    await w.form(slashCommandBody({ user: OPERATOR, channel: CHANNEL, text: 'park', slack: w.slack }));
    const runId = await eventually('a run', async () => (await w.h.service.listRuns({}))[0]?.runId);
    await waitForEvent(w.h.service, runId, isType('approval.requested'));

    const opened = async (user: string) => {
      await w.openHome(user);
      return eventually(`the Home tab of ${user}`, () =>
        w.slack.home(user) ? homeText(w.slack, user) : undefined,
      );
    };
    const approver = await opened(APPROVER);
    expect(approver).toContain('Site site-0');
    expect(approver).toContain('Site site-1');
    expect(approver).toContain(runId);

    const operator = await opened(OPERATOR);
    expect(operator).toContain('Site site-0');
    expect(operator).not.toContain('Site site-1');
    expect(operator).toContain(runId);

    // In neither channel: no site, and not the run either.
    const visitor = await opened(VISITOR);
    expect(visitor).not.toContain('Site site-');
    expect(visitor).not.toContain(runId);

    // One read of each channel served all three (the other channel in two pages).
    const reads = (channel: string) =>
      w.slack.calls.filter((c) => c.method === 'conversations.members' && c.args.channel === channel);
    expect(reads(CHANNEL)).toHaveLength(1);
    expect(reads(OTHER)).toHaveLength(2);
  });

  it('should show a held site with the command that may have landed, and drop it once released in the channel', async () => {
    const w = await world({ links: [[CHANNEL]] });
    // What an agent writes when its run ends not knowing whether a destructive command landed.
    const hold: SiteHold = {
      runId: 'r0held0001',
      step: 'failover#1',
      attemptId: 'a1',
      command: 'openstack loadbalancer failover `lb-a`',
      sentAt: '2026-12-08T00:10:00.000Z',
      heldAt: '2026-12-08T00:11:00.000Z',
      message: 'OUTCOME UNKNOWN',
    };
    const lock = new TargetLock(db.redis, db.prefix);
    await db.redis.hset(lock.holdKey(targetKey('site-0')), hold.runId, JSON.stringify(hold));
    await w.openHome(OPERATOR);
    const held = await eventually('the Home tab saying the site is held', () => {
      const text = homeText(w.slack, OPERATOR);
      return text.includes('Held') ? text : undefined;
    });
    expect(held).toContain('r0held0001');
    expect(held).toContain('failover#1');
    // The command stays one code span: its own backticks cannot end it.
    expect(held).toMatch(/`openstack loadbalancer failover [^`]*lb-a[^`]*`/);

    await w.form(
      slashCommandBody({
        user: OPERATOR,
        channel: CHANNEL,
        text: 'release checked lb-a by hand: ACTIVE',
        slack: w.slack,
      }),
    );
    await eventually('the Home tab republished without the hold', () =>
      homeText(w.slack, OPERATOR).includes('Held') ? undefined : true,
    );
    expect(await w.h.service.holds('site-0')).toEqual([]);
  });

  it('should stay within Slack limits for a Home tab with many sites and runs', () => {
    const runs = Array.from({ length: 300 }, (_, i) => ({
      runId: `r${i}`,
      runbook: 'recover',
      params: {},
      site: `site-${i % 20}`,
      requestedBy: 'U0OPERATOR',
      queue: 'jobs',
      status: i % 2 === 0 ? ('running' as const) : ('succeeded' as const),
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
      ...(i % 2 === 1 ? { finishedAt: '2026-01-01T00:10:00.000Z' } : {}),
    }));
    const view = homeView(
      { userId: APPROVER, isApprover: true },
      {
        sites: Array.from({ length: 20 }, (_, i) => `site-${i}`),
        active: runs.filter((r) => !r.finishedAt),
        finished: runs.filter((r) => r.finishedAt),
        pending: new Map(),
        links: new Map(),
      },
      new Date(),
    );
    expect(findViewViolations(view, 'home')).toEqual([]);
  });
});
