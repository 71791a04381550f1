/**
 * /healthz, /readyz and /metrics (and, in `serve`, Alertmanager's webhook): on METRICS_PORT, a port of their
 * own bound to METRICS_HOST (loopback by default), never on PORT next to /slack/events, which faces Slack and
 * the internet: /readyz's reasons and /metrics name the deployment's internals.
 *
 * - /healthz: the process answers (liveness: restart it when this fails).
 * - /readyz: every named check passes (readiness: send it no traffic until then); the JSON body names each
 *   check and why it fails, 200 when all pass, 503 otherwise.
 * - /metrics: Prometheus text format.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { RedisClient } from '../redis/connection.js';
import type { Metrics } from './metrics.js';

/** Passes with `true`; fails with the reason an operator reads in the /readyz body. */
export type ReadinessCheck = () => Promise<true | string>;

export interface OpsRoute {
  readonly path: string;
  readonly method: 'GET' | 'POST';
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
}

const CHECK_TIMEOUT_MS = 2000;

export function opsRoutes(opts: {
  readonly metrics: Metrics;
  readonly checks: Readonly<Record<string, ReadinessCheck>>;
}): OpsRoute[] {
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(body)}\n`);
  };
  return [
    { path: '/healthz', method: 'GET', handler: (_req, res) => json(res, 200, { status: 'ok' }) },
    {
      path: '/readyz',
      method: 'GET',
      handler: (_req, res) => {
        void runChecks(opts.checks).then((checks) => {
          const ready = Object.values(checks).every((c) => c.ok);
          json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', checks });
        });
      },
    },
    {
      path: '/metrics',
      method: 'GET',
      handler: (_req, res) => {
        opts.metrics.text().then(
          (text) => {
            res.writeHead(200, { 'content-type': opts.metrics.contentType });
            res.end(text);
          },
          (err: unknown) => json(res, 500, { error: err instanceof Error ? err.message : String(err) }),
        );
      },
    },
  ];
}

async function runChecks(
  checks: Readonly<Record<string, ReadinessCheck>>,
): Promise<Record<string, { ok: boolean; reason?: string }>> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`no answer within ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS);
      });
      try {
        const result = await Promise.race([check(), timeout]);
        return [name, result === true ? { ok: true } : { ok: false, reason: result }] as const;
      } catch (err) {
        return [name, { ok: false, reason: err instanceof Error ? err.message : String(err) }] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return Object.fromEntries(entries);
}

/** Redis answers a PING. */
export function redisCheck(redis: RedisClient): ReadinessCheck {
  return async () => ((await redis.ping()) === 'PONG' ? true : 'Redis did not answer PONG');
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** A small HTTP server for the routes alone (agent processes, Socket Mode). Port 0 picks a free one. */
export async function startOpsServer(
  routes: readonly OpsRoute[],
  where: { readonly host: string; readonly port: number },
  logger: Logger,
): Promise<OpsServer> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const route = routes.find((r) => r.path === path);
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: try /healthz, /readyz or /metrics\n');
    } else if (req.method !== route.method && req.method !== 'HEAD') {
      res.writeHead(405, { allow: route.method });
      res.end();
    } else {
      route.handler(req, res);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ host: where.host, port }, 'serving /healthz, /readyz and /metrics');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
