/**
 * Alerts start a diagnosis: Alertmanager's webhook (POST /alerts/alertmanager, JSON version 4) on serve's HTTP
 * server. A firing alert group whose labels name a site gets a `diagnose` run (read-only) posted to that
 * site's Slack channel, once per group until the group resolves (or DIAGNOSE_ONCE_TTL passes). Many groups for
 * one site start ONE diagnosis: while it is queued or running the others join it (RunService.start, the same
 * join an identical `/capi diagnose` gets), each shown once in its thread. Nothing the webhook does can start a
 * destructive run. Authenticated with a bearer token compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { SiteProfile } from '../config/site.js';
import { asCodedError, ErrorCode } from '../errors.js';
import type { OpsRoute } from '../ops/http.js';
import type { RunService } from '../service/run-service.js';
import { describeZodIssues } from '../validation.js';

export const ALERT_WEBHOOK_PATH = '/alerts/alertmanager';
/** The runbook an alert starts: read-only by construction (RunService.submitOnce refuses any other kind). */
export const ALERT_RUNBOOK = 'diagnose';
const MAX_BODY_BYTES = 1_000_000;

const labels = z.record(z.string().max(1024), z.string().max(8192));

/** Alertmanager's webhook payload (prometheus.io/docs/alerting/latest/configuration/#webhook_config). */
export const alertmanagerPayloadSchema = z.object({
  version: z.literal('4', { error: 'must be "4" (Alertmanager webhook format version 4)' }),
  groupKey: z.string().min(1).max(4096),
  truncatedAlerts: z.number().int().nonnegative().optional(),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string().max(1024),
  groupLabels: labels,
  commonLabels: labels,
  commonAnnotations: labels,
  externalURL: z.string().max(4096),
  alerts: z
    .array(
      z.object({
        status: z.enum(['firing', 'resolved']),
        labels,
        annotations: labels,
        startsAt: z.string(),
        endsAt: z.string(),
        generatorURL: z.string().max(4096),
        fingerprint: z.string().max(256),
      }),
    )
    .max(1000),
});

export interface AlertWebhookOptions {
  readonly token: string;
  readonly service: RunService;
  readonly sites: ReadonlyMap<string, SiteProfile>;
  readonly logger: Logger;
  /** The label that names the site (group labels first, then labels common to the group). Default `site`. */
  readonly siteLabel?: string;
  /** How long one group's diagnosis stands without a `resolved` (then a firing group gets a new one). */
  readonly onceTtlMs?: number;
  /** The run was started: its Slack thread should start now (the thread poster's watch). */
  readonly onStarted?: (runId: string) => void;
}

/** Equal-time comparison of the presented bearer token with the configured one (hashed: equal lengths). */
function tokenMatches(header: string | undefined, token: string): boolean {
  const presented = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '';
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b) && presented !== '';
}

function readBody(req: IncomingMessage): Promise<Buffer | 'too_large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        resolve('too_large');
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** `CapiClusterNotReady {cluster="c1", site="s1"}`: the group as Alertmanager's own UI names it. */
function alertGroupName(groupLabels: Readonly<Record<string, string>>): string {
  const { alertname, ...rest } = groupLabels;
  const labels = Object.keys(rest)
    .sort()
    .map((k) => `${k}=${JSON.stringify(rest[k])}`)
    .join(', ');
  return `${alertname ?? 'alert'} {${labels}}`.slice(0, 300);
}

export function alertWebhookRoute(opts: AlertWebhookOptions): OpsRoute {
  const siteLabel = opts.siteLabel ?? 'site';
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(body)}\n`);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (!tokenMatches(req.headers.authorization, opts.token)) {
      res.writeHead(401, { 'www-authenticate': 'Bearer' });
      res.end();
      return;
    }
    const body = await readBody(req);
    if (body === 'too_large') return json(res, 413, { error: `the body is over ${MAX_BODY_BYTES} bytes` });
    let data: unknown;
    try {
      data = JSON.parse(body.toString('utf8'));
    } catch {
      return json(res, 400, { error: 'the body is not JSON' });
    }
    const parsed = alertmanagerPayloadSchema.safeParse(data);
    if (!parsed.success) return json(res, 400, { error: describeZodIssues(parsed.error).slice(0, 5) });
    const alert = parsed.data;
    const key = `alertmanager:${alert.receiver}:${alert.groupKey}`;
    if (alert.status === 'resolved') {
      await opts.service.forgetOnce(key);
      return json(res, 200, { status: 'resolved: the next firing of this group gets a new diagnosis' });
    }
    const siteName = alert.groupLabels[siteLabel] ?? alert.commonLabels[siteLabel];
    const site = siteName === undefined ? undefined : opts.sites.get(siteName);
    if (site === undefined) {
      return json(res, 422, {
        error: `the alert group has no ${siteLabel} label naming a known site (group by ${siteLabel} in Alertmanager; known: ${[...opts.sites.keys()].join(', ')})`,
      });
    }
    const channel = site.slack_channels[0];
    if (channel === undefined) {
      return json(res, 422, {
        error: `site ${site.name} has no slack_channels: nowhere to post the diagnosis`,
      });
    }
    let result: Awaited<ReturnType<RunService['submitOnce']>>;
    try {
      result = await opts.service.submitOnce(
        key,
        opts.onceTtlMs ?? 4 * 3600_000,
        { runbook: ALERT_RUNBOOK, args: [], site: site.name, requestedBy: 'alertmanager', channel },
        { note: alertGroupName(alert.groupLabels) },
      );
    } catch (err) {
      const coded = asCodedError(err);
      if (coded.code !== ErrorCode.LimitReached) throw err;
      // The site's read-only limit: Alertmanager retries a failed delivery, by then the window may allow it.
      opts.logger.warn({ site: site.name, err: coded.message }, 'an alert found the site at its limit');
      return json(res, 429, { error: coded.message });
    }
    if (result.kind === 'duplicate')
      return json(res, 200, { status: 'already diagnosed', runId: result.runId });
    if (result.kind === 'joined') {
      opts.logger.info({ runId: result.record.runId, site: site.name }, 'an alert joined a diagnosis');
      return json(res, 200, { status: 'joined the diagnosis going', runId: result.record.runId });
    }
    opts.onStarted?.(result.record.runId);
    opts.logger.info({ runId: result.record.runId, site: site.name }, 'an alert started a diagnosis');
    return json(res, 202, { status: 'diagnosis started', runId: result.record.runId });
  };
  return {
    path: ALERT_WEBHOOK_PATH,
    method: 'POST',
    handler: (req, res) => {
      handle(req, res).catch((err: unknown) => {
        opts.logger.error({ err: asCodedError(err).message }, 'alert webhook failed');
        if (!res.headersSent) json(res, 500, { error: asCodedError(err).message });
      });
    },
  };
}
