import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { METRIC_NAMES, Metrics } from '../src/ops/metrics.js';

const root = new URL('../', import.meta.url);
const text = (file: string) => readFile(new URL(file, root), 'utf8');

/** PromQL words that are not metric names: functions, aggregations, keywords. */
const PROMQL_WORDS = new Set([
  'sum',
  'max',
  'min',
  'avg',
  'count',
  'rate',
  'irate',
  'increase',
  'absent',
  'histogram_quantile',
  'by',
  'without',
  'and',
  'or',
  'unless',
  'on',
  'ignoring',
  'bool',
  'offset',
]);

/** The metric names an expression reads: label matchers, ranges, groupings and strings taken out first. */
function metricNamesIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, '');
  return [...bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)].map((m) => m[0]).filter((w) => !PROMQL_WORDS.has(w));
}

const alertsSchema = z.object({
  groups: z.array(
    z.object({
      name: z.string(),
      rules: z.array(
        z.object({
          alert: z.string(),
          expr: z.string(),
          for: z.string().regex(/^\d+[smh]$/),
          labels: z.object({ severity: z.enum(['page', 'ticket']) }),
          annotations: z.object({ summary: z.string().min(1), description: z.string().min(1) }),
        }),
      ),
    }),
  ),
});

describe('the product metrics', () => {
  it('should export exactly the metric names it documents in METRIC_NAMES and the README', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const exported = metrics.registry.getMetricsAsArray().map((m) => m.name);
    expect(exported.sort()).toEqual([...METRIC_NAMES].sort());
    const readme = await text('README.md');
    for (const name of METRIC_NAMES) expect(readme, name).toContain(name);
  });
});

describe('deploy/prometheus/alerts.yaml', () => {
  it('should hold the alerts an on-call needs, each reading only metrics the product exports', async () => {
    const alerts = alertsSchema.parse(parse(await text('deploy/prometheus/alerts.yaml')));
    const rules = alerts.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['CapiApprovalWaitingTooLong', 'CapiSlackRateLimited', 'CapiNoAgent']),
    );
    const known = new Set<string>(METRIC_NAMES.flatMap((n) => [n, `${n}_bucket`, `${n}_sum`, `${n}_count`]));
    for (const rule of rules) {
      const names = metricNamesIn(rule.expr);
      expect(names.length, `${rule.alert} reads no metric`).toBeGreaterThan(0);
      for (const name of names) expect(known.has(name), `${rule.alert} reads ${name}`).toBe(true);
    }
  });

  it('should see through label matchers and groupings when it checks an expression', () => {
    expect(metricNamesIn('max by (queue) (capi_queue_workers{queue!~"x|y"}) == 0')).toEqual([
      'capi_queue_workers',
    ]);
    expect(metricNamesIn('sum(rate(up_total{a="b"}[5m])) / sum(rate(capi_x[5m]))')).toEqual([
      'up_total',
      'capi_x',
    ]);
  });
});

describe('docker-compose.yml', () => {
  it('should run Redis with AOF every second and noeviction, and wire the health checks to /readyz', async () => {
    const compose = parse(await text('docker-compose.yml')) as {
      services: Record<
        string,
        {
          command?: string[];
          healthcheck?: { test: string[] };
          depends_on?: Record<string, { condition: string }>;
          environment?: Record<string, string>;
        }
      >;
    };
    const redis = compose.services.redis;
    const flags = (redis?.command ?? []).join(' ');
    expect(flags).toContain('--appendonly yes');
    expect(flags).toContain('--appendfsync everysec');
    expect(flags).toContain('--maxmemory-policy noeviction');
    for (const name of ['capi-chatops', 'agent']) {
      const service = compose.services[name];
      expect(service?.healthcheck?.test, name).toEqual(['CMD', 'node', 'bin/healthcheck.js', '/readyz']);
      expect(service?.depends_on?.redis?.condition, name).toBe('service_healthy');
      expect(service?.environment?.REDIS_URL, name).toBe('redis://redis:6379');
      expect(service?.environment?.METRICS_PORT, name).toBe('9464');
    }
  });
});

describe('Dockerfile', () => {
  it('should run as a non-root numeric user with a HEALTHCHECK on /healthz of the metrics port', async () => {
    const lines = (await text('Dockerfile')).split('\n');
    const finalStage = lines.slice(lines.findLastIndex((l) => l.startsWith('FROM ')));
    const user = finalStage.find((l) => l.startsWith('USER '));
    expect(user).toMatch(/^USER [1-9]\d*:[1-9]\d*$/);
    expect(finalStage.find((l) => l.startsWith('HEALTHCHECK '))).toMatch(
      /"bin\/healthcheck.js", "\/healthz"/,
    );
    expect(finalStage).toContain('ENV METRICS_PORT=9464');
    // The product only: compiled sources, production dependencies, runbooks; no tests, benchmarks or sources.
    const copies = finalStage.filter((l) => l.startsWith('COPY ')).map((l) => l.split(/\s+/).slice(1, -1));
    const fromContext = copies.filter((c) => !c[0]?.startsWith('--from=')).flat();
    expect(fromContext.sort()).toEqual(['bin', 'commands', 'package.json']);
    const fromBuild = copies.filter((c) => c[0] === '--from=build').map((c) => c[1]);
    expect(fromBuild.sort()).toEqual(['/app/dist/src', '/app/node_modules']);
  });
});

describe('deploy/systemd', () => {
  it.each(['capi-chatops.service', 'capi-chatops-agent.service'])(
    'should run %s as its own user, stop it with SIGTERM and give the hand-over time',
    async (unit) => {
      const body = await text(`deploy/systemd/${unit}`);
      expect(body).toMatch(/^User=capi$/m);
      expect(body).toMatch(/^KillSignal=SIGTERM$/m);
      expect(Number(/^TimeoutStopSec=(\d+)$/m.exec(body)?.[1])).toBeGreaterThanOrEqual(15);
      // The shared policy first, the secrets after: the terminal reads the same policy file.
      expect(body).toMatch(
        /^EnvironmentFile=\/etc\/capi-chatops\/policy\.env\nEnvironmentFile=\/etc\/capi-chatops\/env$/m,
      );
      expect(body).toMatch(
        /^ExecStart=\/usr\/bin\/node \/opt\/capi-chatops\/bin\/capi-chatops.js (serve|agent)$/m,
      );
    },
  );
});
