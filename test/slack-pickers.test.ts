import { describe, expect, it } from 'vitest';
import type { FakeSlack, FakeView } from '../dev/slack/fake-slack.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { ephemeralTo, useSlackFronts } from './support/slack-front.js';
import { slashCommandBody, viewSubmissionBody } from './support/slack-requests.js';

/**
 * Pick, don't type: `/capi failover` and `/capi stuck-delete` without their argument list the candidates
 * (read by an agent on the jumphost of the simulated site) in a dialog; the choice starts the run as typed.
 */

const CHANNEL = 'C0INCIDENT';
const OPERATOR = 'U0OPERATOR';
const STRANGER = 'U0STRANGER';
const LB = '1b000000-0000-4000-8000-000000000001';

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);

async function world(scenario: string) {
  const front = await startSlackFront({
    scenarios: [scenario],
    channels: [CHANNEL],
    users: [OPERATOR, STRANGER],
    operators: [OPERATOR],
    poster: false,
  });
  const { fake: slack, harness: h, send } = front;
  return {
    slack,
    h,
    send,
    /** Types `/capi <text>` as `user` with a fresh trigger_id. */
    slash: (user: string, text: string) =>
      send(slashCommandBody({ user, channel: CHANNEL, text, slack, triggerId: slack.issueTrigger(user) })),
    choose: (user: string, view: FakeView, value: string) =>
      send(viewSubmissionBody({ user, view, values: { capi_pick: { value: { selected: value } } } })),
  };
}

/** The dialog once the list (or why there is none) replaced "reading…". */
const loaded = (slack: FakeSlack) =>
  eventually('the picker with its list', () => slack.modals().find((m) => m.updates > 0), {
    timeoutMs: 30_000,
  });

describe('pickers', () => {
  it('should list the load balancers in ERROR and start the failover with the one chosen, as if typed', async () => {
    const w = await world('lb-error');
    await w.slash(OPERATOR, 'failover');
    // Opened at once (within the trigger's 3 s), before the list is read.
    const first = await eventually('the picker', () => w.slack.modals()[0]);
    expect(JSON.stringify(first.view)).toMatch(/Reading load balancers in provisioning error/);
    const picker = await loaded(w.slack);
    const options = JSON.stringify(picker.view.blocks);
    expect(options).toContain(`"value":"${LB}"`);
    expect(await w.h.service.listRuns({})).toEqual([]);

    await w.choose(OPERATOR, picker, LB);
    const run = await eventually('the failover run', async () => (await w.h.service.listRuns({}))[0]);
    expect(run).toMatchObject({
      runbook: 'failover',
      params: { lb: LB },
      requestedBy: OPERATOR,
      channel: CHANNEL,
    });
  });

  it('should list the clusters stuck in DELETE_IN_PROGRESS for stuck-delete', async () => {
    const w = await world('stuck-delete');
    await w.slash(OPERATOR, 'stuck-delete');
    const picker = await loaded(w.slack);
    const values = [...JSON.stringify(picker.view.blocks).matchAll(/"value":"([^"]+)"/g)].map((m) => m[1]);
    expect(values).toEqual(['capi-test-2']);
  });

  it('should say there is nothing to pick when no load balancer is in ERROR', async () => {
    const w = await world('healthy');
    await w.slash(OPERATOR, 'failover');
    const picker = await loaded(w.slack);
    expect(JSON.stringify(picker.view)).toMatch(/No load balancers in provisioning error on site \*site-0\*/);
    expect(picker.view.submit).toBeUndefined();
  });

  it('should check a choice as a typed command: operators only, and the value against its type', async () => {
    const w = await world('lb-error');
    let mark = w.slack.calls.length;
    await w.slash(STRANGER, 'failover');
    expect(await ephemeralTo(w.slack, STRANGER, mark)).toMatch(
      /Only CAPI_OPERATORS may start or cancel runs/,
    );
    expect(w.slack.modals()).toEqual([]);

    await w.slash(OPERATOR, 'failover');
    const picker = await loaded(w.slack);
    // The operator's dialog submitted by someone else: checked as that person.
    mark = w.slack.calls.length;
    await w.choose(STRANGER, picker, LB);
    expect(await ephemeralTo(w.slack, STRANGER, mark)).toMatch(
      /Only CAPI_OPERATORS may start or cancel runs/,
    );
    // A value that is not in the list's type is refused as if typed.
    mark = w.slack.calls.length;
    await w.choose(OPERATOR, picker, 'not-a-uuid');
    expect(await ephemeralTo(w.slack, OPERATOR, mark)).toMatch(
      /Nothing was started: lb must be a lowercase UUID/,
    );
    expect(await w.h.service.listRuns({})).toEqual([]);
  });
});
