import type { Logger } from 'pino';
import type { AppConfig } from '../config/env.js';
import type { SiteProfile } from '../config/site.js';
import { readOnlyQueue } from '../queue/queues.js';
import type { RedisClient } from '../redis/connection.js';
import { ApprovalStore } from '../runs/approvals.js';
import { RunRegistry } from '../runs/registry.js';
import { type AuditLog, createAuditLog } from './audit.js';
import { type OpsRoute, type OpsServer, opsRoutes, type ReadinessCheck, startOpsServer } from './http.js';
import { Metrics } from './metrics.js';
import { redisSnapshotSource } from './redis-snapshot.js';

/** What a long-running process (serve, agent) shares: one metrics registry, one audit trail, the routes. */
export interface ProcessOps {
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  /** Serves the routes (and `extra`) on METRICS_PORT at METRICS_HOST when it is set; undefined otherwise. */
  serve(
    checks: Readonly<Record<string, ReadinessCheck>>,
    extra?: readonly OpsRoute[],
  ): Promise<OpsServer | undefined>;
  close(): Promise<void>;
}

export function processOps(opts: {
  readonly config: AppConfig;
  readonly redis: RedisClient;
  readonly sites: ReadonlyMap<string, SiteProfile>;
  readonly logger: Logger;
}): ProcessOps {
  const { config, redis, logger } = opts;
  const prefix = config.queue.prefix;
  const metrics = new Metrics();
  const audit = createAuditLog(
    config.ops.auditLogFile !== undefined ? { file: config.ops.auditLogFile } : {},
  );
  const siteQueues = [...new Set([...opts.sites.values()].map((s) => s.queue))];
  const snapshot = redisSnapshotSource({
    redis,
    prefix,
    queueNames: siteQueues.flatMap((q) => [q, readOnlyQueue(q)]),
    registry: new RunRegistry(redis, prefix),
    approvals: new ApprovalStore(redis, prefix),
  });
  metrics.readFromRedis(snapshot.read);
  let server: OpsServer | undefined;
  return {
    metrics,
    audit,
    async serve(checks, extra = []) {
      const port = config.ops.metricsPort;
      if (port === undefined) {
        logger.info(
          'METRICS_PORT is not set: /healthz, /readyz and /metrics are not served on a port of their own',
        );
        return undefined;
      }
      server = await startOpsServer(
        [...opsRoutes({ metrics, checks }), ...extra],
        { host: config.ops.metricsHost, port },
        logger,
      );
      return server;
    },
    async close() {
      await server?.close();
      await snapshot.close();
    },
  };
}
