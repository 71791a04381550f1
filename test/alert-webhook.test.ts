import { afterEach, describe, expect, it } from 'vitest';
import { CapiError } from '../src/errors.js';
import { ALERT_WEBHOOK_PATH, alertWebhookRoute } from '../src/fronts/alert-webhook.js';
import { startOpsServer } from '../src/ops/http.js';
import { isType, quietLogger, waitForEvent } from './support/agent.js';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { useSlackFronts } from './support/slack-front.js';

/** Alertmanager's webhook on serve's ops server (METRICS_PORT, as serve wires it). */

const WEBHOOK_TOKEN = 'alertmanager-token-0123456789abcdef0123456789';
const CHANNEL = 'C0INCIDENT';

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);
const stops: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** `agent: false` leaves the runs queued (the thread starts once an agent is started with `h.startAgent`). */
async function world(opts: { readonly agent?: boolean } = {}) {
  // The webhook shares serve's thread poster; Bolt is not needed here.
  const front = await startSlackFront({
    channels: [CHANNEL],
    siteFields: { slack_channels: [CHANNEL] },
    agent: opts.agent ?? true,
    app: false,
  });
  const { fake: slack, harness: h, poster } = front;
  const server = await startOpsServer(
    [
      alertWebhookRoute({
        token: WEBHOOK_TOKEN,
        service: h.service,
        sites: h.sites,
        logger: quietLogger,
        onStarted: (runId) => poster.watch(runId),
      }),
    ],
    { host: '127.0.0.1', port: 0 },
    quietLogger,
  );
  stops.push(() => server.close());
  const url = `http://127.0.0.1:${server.port}${ALERT_WEBHOOK_PATH}`;
  const deliver = async (body: unknown, token: string | null = WEBHOOK_TOKEN) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>),
    };
  };
  return { slack, h, poster, deliver };
}

/** An Alertmanager webhook delivery (format version 4) for one alert group. */
function group(
  over: { groupKey?: string; status?: 'firing' | 'resolved'; site?: string; alertname?: string } = {},
) {
  const status = over.status ?? 'firing';
  const alertname = over.alertname ?? 'CapiClusterNotReady';
  const labels = { alertname, site: over.site ?? 'site-0', severity: 'page' };
  return {
    version: '4',
    groupKey: over.groupKey ?? `{}:{alertname="${alertname}", site="site-0"}`,
    truncatedAlerts: 0,
    status,
    receiver: 'capi-chatops',
    groupLabels: { alertname: labels.alertname, site: labels.site },
    commonLabels: labels,
    commonAnnotations: { summary: 'capi-test-1 is not Ready' },
    externalURL: 'http://alertmanager.example:9093',
    alerts: [
      {
        status,
        labels,
        annotations: { summary: 'capi-test-1 is not Ready' },
        startsAt: '2026-12-01T20:00:00Z',
        endsAt: status === 'resolved' ? '2026-12-01T20:30:00Z' : '0001-01-01T00:00:00Z',
        generatorURL: 'http://prometheus.example:9090/graph',
        fingerprint: 'c0ffee00c0ffee00',
      },
    ],
  };
}

describe('the Alertmanager webhook', () => {
  it('should refuse a delivery without the bearer token, or with another, and start nothing', async () => {
    const w = await world();
    expect((await w.deliver(group(), null)).status).toBe(401);
    expect((await w.deliver(group(), `${WEBHOOK_TOKEN}x`)).status).toBe(401);
    expect((await w.deliver(group(), '')).status).toBe(401);
    expect(await w.h.service.listRuns({})).toEqual([]);
  });

  it('should refuse a body that is not Alertmanager webhook JSON, naming the field', async () => {
    const w = await world();
    expect(await w.deliver('{not json')).toMatchObject({
      status: 400,
      body: { error: 'the body is not JSON' },
    });
    const { groupKey: _, ...withoutKey } = group();
    const res = await w.deliver(withoutKey);
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('groupKey');
    expect((await w.deliver({ ...group(), site: undefined, groupLabels: {}, commonLabels: {} })).status).toBe(
      422,
    );
    expect((await w.deliver(group({ site: 'nowhere' }))).status).toBe(422);
    expect(await w.h.service.listRuns({})).toEqual([]);
  });

  it('should post one diagnosis per firing group to the site channel until the group resolves', async () => {
    const w = await world();
    const first = await w.deliver(group());
    expect(first.status).toBe(202);
    const runId = String(first.body?.runId);
    expect(await w.h.service.getRun(runId)).toMatchObject({
      runbook: 'diagnose',
      site: 'site-0',
      channel: CHANNEL,
      requestedBy: 'alertmanager',
    });
    // Alertmanager repeats a firing group (repeat_interval, several replicas): one run, deliveries at once too.
    const again = await Promise.all([w.deliver(group()), w.deliver(group())]);
    expect(again.map((r) => r.status)).toEqual([200, 200]);
    expect(again.map((r) => r.body?.runId)).toEqual([runId, runId]);
    expect(await w.h.service.listRuns({})).toHaveLength(1);

    // Its thread starts in the site's channel at once (the report follows as the run goes on).
    const root = await eventually('the diagnosis in the site channel', () =>
      w.slack.messages(CHANNEL).find((m) => m.thread_ts === undefined),
    );
    expect(root.text).toMatch(/diagnose on site-0/);

    expect((await w.deliver(group({ status: 'resolved' }))).status).toBe(200);
    // Firing again once the first diagnosis ended: a new one (while it went, the group would join it).
    await waitForEvent(w.h.service, runId, isType('run.finished'), 60_000);
    const next = await w.deliver(group());
    expect(next.status).toBe(202);
    expect(next.body?.runId).not.toBe(runId);
  });

  it('should start ONE diagnosis for ten alert groups of one site, the others joining it, each shown in its thread', async () => {
    const w = await world({ agent: false });
    const names = Array.from({ length: 10 }, (_, i) => `CapiAlert${i}`);
    // An alert storm: the ten groups arrive at once.
    const answers = await Promise.all(names.map((alertname) => w.deliver(group({ alertname }))));
    const runs = await w.h.service.listRuns({});
    expect(runs).toHaveLength(1);
    const runId = runs[0]?.runId as string;
    expect(answers.map((a) => a.body?.runId)).toEqual(names.map(() => runId));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 202]);
    expect(answers.filter((a) => a.status === 200).map((a) => a.body?.status)).toEqual(
      Array(9).fill('joined the diagnosis going'),
    );
    // A group firing again is the same group: it neither starts nor joins anything again.
    expect((await w.deliver(group({ alertname: 'CapiAlert3' }))).body).toEqual({
      status: 'already diagnosed',
      runId,
    });
    const joins = (await w.h.service.readTimeline(runId)).flatMap((e) =>
      e.event.type === 'run.joined' ? [e.event.note] : [],
    );
    expect(joins).toHaveLength(9);

    // The diagnosis runs; its thread shows each alert that joined it, once.
    await w.h.startAgent();
    await waitForEvent(w.h.service, runId, isType('run.finished'), 60_000);
    await w.poster.settled(runId);
    const thread = w.slack
      .messages(CHANNEL)
      .filter((m) => m.thread_ts !== undefined && m.text.includes('joined it'))
      .map((m) => JSON.stringify(m.blocks));
    expect(thread).toHaveLength(9);
    for (const note of joins) {
      const name = /^CapiAlert\d/.exec(note ?? '')?.[0];
      expect(thread.filter((t) => t.includes(`${name} {site=`))).toHaveLength(1);
    }
    expect(joins.every((n) => /^CapiAlert\d \{site="site-0"\}$/.test(n ?? ''))).toBe(true);
    expect(await w.h.service.listRuns({})).toHaveLength(1);
  });

  it('should never let automation start a runbook that can change anything', async () => {
    const w = await world();
    await expect(
      w.h.service.submitOnce(
        'k',
        60_000,
        {
          runbook: 'park',
          args: [],
          site: 'site-0',
          requestedBy: 'alertmanager',
        },
        { note: 'test' },
      ),
    ).rejects.toThrow(CapiError);
    await expect(
      w.h.service.submitOnce(
        'k',
        60_000,
        {
          runbook: 'park',
          args: [],
          site: 'site-0',
          requestedBy: 'alertmanager',
        },
        { note: 'test' },
      ),
    ).rejects.toThrow(/only a read-only runbook can be started automatically/);
    expect(await w.h.service.listRuns({})).toEqual([]);
    await eventually('no dedup key left behind', async () =>
      (await db.redis.keys(`${db.prefix}:once:*`)).length === 0 ? true : undefined,
    );
  });
});
