import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { METRIC_NAMES, Metrics } from '../src/ops/metrics.js';
import { redisSnapshotSource } from '../src/ops/redis-snapshot.js';
import { loadRunbooks } from '../src/runbook/load.js';
import { ApprovalStore } from '../src/runs/approvals.js';
import { checkRedisForProduction } from '../src/runs/redis-checks.js';
import { RunRegistry } from '../src/runs/registry.js';
import { decideNext, isType, startHarness, waitForEvent } from './support/agent.js';
import { scratchDir, startRedisProcess } from './support/redis-servers.js';

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

interface ComposeService {
  user?: string;
  command?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  environment?: Record<string, string>;
  env_file?: string[];
  ports?: string[];
  secrets?: string[];
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
}

const composeFile = async () =>
  parse(await text('docker-compose.yml')) as {
    services: Record<string, ComposeService>;
    secrets?: Record<string, { file: string }>;
  };

describe('docker-compose.yml', () => {
  it('should run Redis with AOF every second and noeviction, and wire the health checks to /readyz', async () => {
    const compose = await composeFile();
    const redis = compose.services.redis;
    const flags = (redis?.command ?? []).join(' ');
    expect(flags).toContain('--appendonly yes');
    expect(flags).toContain('--appendfsync everysec');
    expect(flags).toContain('--maxmemory-policy noeviction');
    for (const name of ['capi-chatops', 'agent']) {
      const service = compose.services[name];
      expect(service?.healthcheck?.test, name).toEqual(['CMD', 'node', 'bin/healthcheck.js', '/readyz']);
      expect(service?.depends_on?.redis?.condition, name).toBe('service_healthy');
      expect(service?.environment?.METRICS_PORT, name).toBe('9464');
    }
  });

  it('should run every container read-only, without capabilities or privilege gain, and Redis as its own user', async () => {
    const compose = await composeFile();
    for (const [name, service] of Object.entries(compose.services)) {
      expect(service.read_only, name).toBe(true);
      expect(service.cap_drop, name).toEqual(['ALL']);
      expect(service.security_opt, name).toContain('no-new-privileges:true');
    }
    // The app's image sets its own numeric user (Dockerfile test); Redis's entrypoint would need capabilities
    // to chown and switch users, so it starts as the image's redis user.
    expect(compose.services.redis?.user).toBe('999:999');
  });

  it('should give Redis users per component, each component only its own password, and no unauthenticated access', async () => {
    const compose = await composeFile();
    const redis = compose.services.redis;
    expect((redis?.command ?? []).join(' ')).toContain('--aclfile /run/secrets/redis_users');
    expect(redis?.secrets).toEqual(['redis_users']);
    expect(compose.secrets?.redis_users?.file).toBe('./secrets/redis-users.acl');
    // Without a password a client may only PING, which is what the health check does.
    expect(redis?.healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
    const acl = (await text('deploy/redis/users.acl')).trim().split('\n');
    expect(acl.find((l) => l.startsWith('user default '))).toBe(
      'user default on nopass resetkeys resetchannels -@all +ping',
    );
    const users = acl.map((l) => l.split(' ')[1]);
    expect(users).toEqual(['default', 'capi-serve', 'capi-agent']);
    // The URL with the password is in a file of each component's own, never in the compose file or .env.
    expect(compose.services['capi-chatops']?.env_file).toEqual(['.env', 'secrets/serve.redis.env']);
    expect(compose.services.agent?.env_file).toEqual(['.env', 'secrets/agent.redis.env']);
    for (const name of ['capi-chatops', 'agent']) {
      expect(compose.services[name]?.environment?.REDIS_URL, name).toBeUndefined();
    }
    expect(await text('.env.example')).not.toMatch(/^REDIS_URL=.*@redis:/m);
  });

  it("should publish the ops port on the host loopback only, and Slack's port alone to the world", async () => {
    const compose = await composeFile();
    expect(compose.services['capi-chatops']?.ports).toEqual(['3000:3000', '127.0.0.1:9464:9464']);
    expect(compose.services.agent?.ports).toBeUndefined();
    expect(compose.services.redis?.ports).toBeUndefined();
  });
});

/**
 * Docker's .dockerignore semantics (moby/patternmatcher): every pattern in order, the last one matching a path
 * or one of its parent directories decides, `!` re-includes; `*` and `?` stay within a path segment, `**`
 * spans segments.
 */
function ignoredByDocker(patterns: readonly string[], file: string): boolean {
  const glob = (part: string) =>
    part
      .split('**')
      .map((piece) =>
        piece
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]'),
      )
      .join('.*');
  const toRegex = (pattern: string) => new RegExp(`^${pattern.split('**/').map(glob).join('(?:.*/)?')}$`);
  const parts = file.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/\/+$/, '');
    const re = toRegex(pattern);
    if (candidates.some((c) => re.test(c))) ignored = !negated;
  }
  return ignored;
}

describe('.dockerignore', () => {
  it('should keep secrets, local state and build output out of the build context, and send what the image copies', async () => {
    const patterns = (await text('.dockerignore'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const file of [
      '.env',
      '.env.production',
      'secrets/jumphost_key',
      'secrets/serve.redis.env',
      'id_ed25519',
      'site.yaml',
      'node_modules/bullmq/package.json',
      'dist/src/cli/main.js',
      'test-artifacts/playground.png',
      'test/support/secrets.ts',
      'dev/sim/jumphost.ts',
      '.git/config',
      'src/.env',
      'src/config/id_ed25519',
      'commands/debug.log',
    ]) {
      expect(ignoredByDocker(patterns, file), file).toBe(true);
    }
    // What the Dockerfile copies from the context arrives.
    const copied = (await text('Dockerfile'))
      .split('\n')
      .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(copied.sort()).toEqual(
      [
        'bin',
        'commands',
        'package-lock.json',
        'package.json',
        'package.json',
        'src',
        'tsconfig.build.json',
        'tsconfig.json',
      ].sort(),
    );
    for (const file of [...copied, 'src/cli/main.ts', 'bin/capi-chatops.js', 'commands/recover.yaml']) {
      expect(ignoredByDocker(patterns, file), file).toBe(false);
    }
  });

  it('should see through re-included directories and globs when it checks a path', () => {
    expect(ignoredByDocker(['*', '!src'], 'src/a/b.ts')).toBe(false);
    expect(ignoredByDocker(['*', '!src', '**/*.pem'], 'src/a/k.pem')).toBe(true);
    expect(ignoredByDocker(['*.log'], 'logs/a.log')).toBe(false);
    expect(ignoredByDocker(['**/.env.*'], 'src/.env.production')).toBe(true);
    expect(ignoredByDocker(['**/.env.*'], 'src/.envy')).toBe(false);
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
    // The build installs exactly the lockfile's tree.
    expect(lines.filter((l) => /\bnpm (install|i)\b/.test(l))).toEqual([]);
    expect(lines.find((l) => l.startsWith('RUN ') && l.includes('npm ci'))).toMatch(/^RUN npm ci /);
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

describe('deploy/redis/users.acl on a real redis-server', () => {
  const stops: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  it('should let each component run a recovery with its own user, and no one wipe, list or reconfigure Redis', async () => {
    const scratch = await scratchDir('acl');
    stops.push(() => scratch.remove());
    const password = { serve: randomBytes(24).toString('hex'), agent: randomBytes(24).toString('hex') };
    const sha = (pw: string) => createHash('sha256').update(pw).digest('hex');
    const acl = (await text('deploy/redis/users.acl'))
      .replace('@SERVE_SHA256@', sha(password.serve))
      .replace('@AGENT_SHA256@', sha(password.agent));
    const aclFile = path.join(scratch.dir, 'users.acl');
    // The test's own observer, to read ACL LOG afterwards: not part of the shipped file.
    const observer = randomBytes(24).toString('hex');
    await writeFile(aclFile, `${acl}user test-observer on >${observer} ~* &* +@all\n`);
    const server = await startRedisProcess({ dir: scratch.dir, name: 'acl', config: [`aclfile ${aclFile}`] });
    stops.push(() => server.kill());
    const url = (user: string, pw: string) => `redis://${user}:${pw}@127.0.0.1:${server.port}`;
    const client = (u: string) => {
      // No ready check: it asks INFO, which a client without a password may not.
      const c = new Redis(u, { maxRetriesPerRequest: 1, enableReadyCheck: false });
      stops.push(async () => c.disconnect());
      return c;
    };

    // Without a password: PING (the health check) and nothing else.
    const anonymous = client(`redis://127.0.0.1:${server.port}`);
    expect(await anonymous.ping()).toBe('PONG');
    await expect(anonymous.get('capi:run:x')).rejects.toThrow(/NOPERM/);
    await expect(anonymous.call('AUTH', 'capi-serve', 'wrong')).rejects.toThrow(/WRONGPASS/);
    // A component: its own keys and channels, no administration, no wholesale reads, no wiping.
    const serve = client(url('capi-serve', password.serve));
    for (const refused of [
      () => serve.flushall(),
      () => serve.flushdb(),
      () => serve.keys('*'),
      () => serve.config('SET', 'appendonly', 'no'),
      () => serve.call('ACL', 'LIST'),
      () => serve.set('other:key', '1'),
      () => serve.publish('other:channel', 'x'),
    ]) {
      await expect(refused()).rejects.toThrow(/NOPERM/);
    }
    expect(await checkRedisForProduction(serve)).toEqual([
      expect.stringMatching(/^Redis persistence is off/),
    ]);

    // The refusals above are in ACL LOG; from here on, nothing a component does may be refused.
    const watcher = client(url('test-observer', observer));
    await watcher.call('ACL', 'LOG', 'RESET');

    // A park, approved, through the service as capi-serve and an agent as capi-agent (QUEUE_PREFIX capi).
    const h = await startHarness({
      redis: serve,
      prefix: 'capi',
      redisUrl: url('capi-agent', password.agent),
      runbooks: await loadRunbooks(new URL('../commands/', import.meta.url).pathname),
      scenarios: ['healthy'],
    });
    stops.push(() => h.stop());
    await h.startAgent();
    const run = await h.submit('park');
    await decideNext(h.service, run.runId, true);
    expect((await waitForEvent(h.service, run.runId, isType('run.finished'), 60_000)).status).toBe(
      'succeeded',
    );
    // What a Prometheus scrape reads (CLIENT LIST counts the workers).
    const snapshot = redisSnapshotSource({
      redis: serve,
      prefix: 'capi',
      queueNames: ['jobs', 'jobs-readonly'],
      registry: new RunRegistry(serve, 'capi'),
      approvals: new ApprovalStore(serve, 'capi'),
    });
    stops.push(() => snapshot.close());
    expect((await snapshot.read()).queues.find((q) => q.queue === 'jobs')?.workers).toBe(1);
    // Nothing the components did was refused (CLIENT SETNAME, INFO, the scripts, pub/sub, WAIT, metrics).
    expect(await watcher.call('ACL', 'LOG')).toEqual([]);
  }, 90_000);
});
