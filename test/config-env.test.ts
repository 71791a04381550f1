import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { agentOptions } from '../src/cli/agent.js';
import { defaultCommandsDir } from '../src/config/commands-dir.js';
import { DEFAULT_APPROVAL_TIMEOUT_MS, loadConfig } from '../src/config/env.js';
import { mgmtHostKeyTrustNotice, parseSiteProfile, siteEnv } from '../src/config/site.js';
import { parseDuration } from '../src/config/units.js';
import { CapiError, ConfigError, ErrorCode } from '../src/errors.js';
import { createLogger } from '../src/log.js';
import { PEM } from './support/secrets.js';
import { sampleSiteData } from './support/site.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const hostKey = `SHA256:${'uN3q7yH0Vb8kQm2xT5rZp9wL4cJ6dF1sA0gE7hK3nM'.padEnd(43, 'x')}`;

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('loadConfig accepted the environment');
}

describe('loadConfig', () => {
  it('should return the documented defaults when the environment is empty', () => {
    expect(loadConfig({})).toEqual({
      commandsDir: path.join(repoRoot, 'commands'),
      logLevel: 'info',
      jumphost: {},
      redis: { mode: 'single', url: 'redis://127.0.0.1:6379', waitReplicas: 0 },
      queue: { prefix: 'capi' },
      siteLockTtlMs: 60_000,
      threadLeaseTtlMs: 15_000,
      agentConcurrency: 2,
      slackFlood: { refusals: 5, uploads: 3, windowMs: 60_000 },
      readOnlyLimits: { perPerson: 10, perSite: 30, windowMs: 10 * 60_000 },
      approval: {
        timeoutMs: 30 * 60_000,
        approvers: [],
        operators: [],
        allowSelfApproval: false,
        trustSlackGroups: false,
      },
      decisions: {},
      terminalUsers: new Map(),
      slack: { apiUrl: 'https://slack.com/api/', port: 3000 },
      ops: { metricsHost: '127.0.0.1' },
      retention: { runMs: 30 * 86_400_000, maxOutputBytesPerRun: 4 * 1024 * 1024, maxLineBytes: 1024 * 1024 },
    });
  });

  it('should treat a variable as unset when it is empty or only whitespace', () => {
    const config = loadConfig({ JUMPHOST_PORT: '', LOG_LEVEL: '   ', SLACK_BOT_TOKEN: '' });
    expect(config.jumphost).toEqual({});
    expect(config.logLevel).toBe('info');
    expect(config.slack.botToken).toBeUndefined();
  });

  it('should parse every variable when all of them are valid', () => {
    const env = {
      SITE_FILE: '/etc/capi/site.yaml',
      COMMANDS_DIR: '/opt/capi/commands',
      LOG_LEVEL: 'DEBUG',
      JUMPHOST_HOST: 'jumphost.example.org',
      JUMPHOST_PORT: '2222',
      JUMPHOST_USER: 'ubuntu',
      JUMPHOST_PRIVATE_KEY_PATH: '/etc/capi/id_ed25519',
      JUMPHOST_HOST_KEY: hostKey,
      REDIS_URL: 'rediss://:pw@redis.example.org:6380/1',
      QUEUE_PREFIX: 'capi-prod',
      APPROVAL_TIMEOUT: '2h',
      SITE_LOCK_TTL: '90s',
      THREAD_LEASE_TTL: '20s',
      AGENT_CONCURRENCY: '20',
      SLACK_FLOOD_REFUSALS: '10',
      SLACK_FLOOD_UPLOADS: '2',
      SLACK_FLOOD_WINDOW: '30s',
      CAPI_READONLY_PER_PERSON: '3',
      CAPI_READONLY_PER_SITE: '12',
      CAPI_READONLY_WINDOW: '5m',
      CAPI_APPROVERS: 'U0123ABCD, W0456EFGH S0789IJKL,U0123ABCD',
      CAPI_OPERATORS: 'U0999ZZZZ',
      CAPI_ALLOW_SELF_APPROVAL: 'true',
      CAPI_TERMINAL_USERS: 'alice=U0123ABCD, bob.ops=W0456EFGH',
      CAPI_TRUST_SLACK_GROUPS: 'true',
      CAPI_DECISION_SIGNING_KEY: '/etc/capi/decision.key',
      CAPI_DECISION_VERIFY_KEY: '/etc/capi/decision.pub',
      CAPI_ALLOWED_SIGNERS: '/etc/capi/allowed_signers',
      SLACK_TEAM_ID: 'T0123ABCD',
      SLACK_BOT_TOKEN: ['xoxb', '1', 'abc'].join('-'),
      SLACK_SIGNING_SECRET: '0123456789abcdef0123456789abcdef',
      SLACK_APP_TOKEN: ['xapp', '1', 'A01', 'abc'].join('-'),
      SLACK_API_URL: 'http://127.0.0.1:4000/api',
      PORT: '8080',
      METRICS_PORT: '9464',
      METRICS_HOST: '127.0.0.1',
      AUDIT_LOG_FILE: '/var/log/capi/audit.jsonl',
      RUN_RETENTION: '90d',
      RUN_MAX_OUTPUT_BYTES: '512kb',
      RUN_MAX_LINE_BYTES: '16kb',
      REDIS_WAIT_REPLICAS: '1',
      HOST: '127.0.0.1',
    };
    expect(loadConfig(env)).toEqual({
      siteFile: '/etc/capi/site.yaml',
      commandsDir: '/opt/capi/commands',
      logLevel: 'debug',
      jumphost: {
        host: 'jumphost.example.org',
        port: 2222,
        user: 'ubuntu',
        privateKeyPath: '/etc/capi/id_ed25519',
        hostKey,
      },
      redis: { mode: 'single', url: 'rediss://:pw@redis.example.org:6380/1', waitReplicas: 1 },
      queue: { prefix: 'capi-prod' },
      siteLockTtlMs: 90_000,
      threadLeaseTtlMs: 20_000,
      agentConcurrency: 20,
      slackFlood: { refusals: 10, uploads: 2, windowMs: 30_000 },
      readOnlyLimits: { perPerson: 3, perSite: 12, windowMs: 5 * 60_000 },
      approval: {
        timeoutMs: 2 * 3_600_000,
        approvers: ['U0123ABCD', 'W0456EFGH', 'S0789IJKL'],
        operators: ['U0999ZZZZ'],
        allowSelfApproval: true,
        trustSlackGroups: true,
      },
      decisions: {
        signingKeyFile: '/etc/capi/decision.key',
        verifyKeyFile: '/etc/capi/decision.pub',
        allowedSignersFile: '/etc/capi/allowed_signers',
      },
      terminalUsers: new Map([
        ['alice', 'U0123ABCD'],
        ['bob.ops', 'W0456EFGH'],
      ]),
      slack: {
        botToken: env.SLACK_BOT_TOKEN,
        signingSecret: env.SLACK_SIGNING_SECRET,
        appToken: env.SLACK_APP_TOKEN,
        teamId: 'T0123ABCD',
        apiUrl: 'http://127.0.0.1:4000/api/',
        port: 8080,
        host: '127.0.0.1',
      },
      ops: { metricsPort: 9464, metricsHost: '127.0.0.1', auditLogFile: '/var/log/capi/audit.jsonl' },
      retention: { runMs: 90 * 86_400_000, maxOutputBytesPerRun: 512 * 1024, maxLineBytes: 16 * 1024 },
    });
  });

  it('should resolve relative paths against the working directory when SITE_FILE and COMMANDS_DIR are relative', () => {
    const config = loadConfig({ SITE_FILE: 'site.yaml', COMMANDS_DIR: './runbooks' });
    expect(config.siteFile).toBe(path.resolve('site.yaml'));
    expect(config.commandsDir).toBe(path.resolve('runbooks'));
  });

  it.each([
    ['JUMPHOST_PORT', '0', 'must be a TCP port 1-65535, e.g. 22'],
    ['JUMPHOST_PORT', '65536', 'must be a TCP port 1-65535'],
    ['JUMPHOST_PORT', 'ssh', 'must be a TCP port 1-65535'],
    ['PORT', '-1', 'must be a TCP port 1-65535, e.g. 3000'],
    ['HOST', 'http://0.0.0.0', 'must be an address or host name to listen on, e.g. 127.0.0.1'],
    ['JUMPHOST_HOST', 'ubuntu@jumphost', 'put the user name in JUMPHOST_USER'],
    ['JUMPHOST_HOST', 'jumphost:2222', 'put the port in JUMPHOST_PORT'],
    ['JUMPHOST_HOST', 'ssh://jumphost', 'must be a host name or IP address'],
    ['JUMPHOST_USER', 'ubuntu admin', 'must be a Unix user name'],
    ['JUMPHOST_PRIVATE_KEY_PATH', '~/.ssh/id_ed25519', 'use an absolute path'],
    ['JUMPHOST_HOST_KEY', 'SHA256:tooShort', 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub'],
    ['JUMPHOST_HOST_KEY', `${hostKey}=`, 'without trailing "="'],
    ['LOG_LEVEL', 'verbose', 'must be one of fatal, error, warn, info, debug, trace, silent'],
    ['REDIS_URL', 'http://127.0.0.1:6379', 'must be a redis:// or rediss:// URL'],
    ['REDIS_URL', 'localhost:6379', 'must be a redis:// or rediss:// URL'],
    ['QUEUE_PREFIX', 'CAPI_prod', 'must be lowercase letters, digits and dashes'],
    ['APPROVAL_TIMEOUT', '30 minutes', 'must be a duration'],
    ['APPROVAL_TIMEOUT', '0s', 'must be more than 0'],
    ['APPROVAL_TIMEOUT', '1000h', 'at most 596h'],
    ['AGENT_CONCURRENCY', '0', 'must be a whole number of runs 1-1000'],
    ['AGENT_CONCURRENCY', 'many', 'must be a whole number of runs 1-1000'],
    ['CAPI_APPROVERS', 'U0123ABCD @alice', '"@alice" is not a Slack user id'],
    ['CAPI_OPERATORS', 'u0123abcd', '"u0123abcd" is not a Slack user id'],
    ['CAPI_ALLOW_SELF_APPROVAL', 'yes', 'must be true or false'],
    ['SLACK_BOT_TOKEN', 'xoxp-123-456', 'starting with xoxb-'],
    ['SLACK_SIGNING_SECRET', '"0123456789abcdef0123456789abcdef"', 'Signing Secret'],
    ['SLACK_SIGNING_SECRET', '0123456789ABCDEF0123456789ABCDEF', '32 lowercase hex characters'],
    ['SLACK_SIGNING_SECRET', 'f0e1d2c3b4a5968778695a4b3c2d1e0f00', '32 lowercase hex characters'],
    ['SLACK_TEAM_ID', 'acme', 'e.g. T0123ABCD'],
    ['CAPI_TERMINAL_USERS', 'alice', 'is not unixuser=SlackUserId; list them comma separated'],
    ['CAPI_TERMINAL_USERS', 'alice=S0123ABCD', 'alice must map to one person'],
    ['CAPI_TERMINAL_USERS', 'alice=U0123ABCD,alice=U0456EFGH', 'alice is listed twice'],
    ['CAPI_TERMINAL_USERS', 'Alice=U0123ABCD', 'is not unixuser=SlackUserId'],
    ['SLACK_APP_TOKEN', 'xoxb-123', 'starting with xapp-'],
    ['SLACK_API_URL', 'slack.com/api', 'must be an http(s) URL'],
    ['QUEUE_PREFIX', '{capi', 'or such a name in braces (a Redis Cluster hash tag), e.g. {capi}'],
    ['METRICS_PORT', '70000', 'must be a TCP port 1-65535, e.g. 9464'],
    ['RUN_RETENTION', '30', 'e.g. 30d'],
    ['RUN_RETENTION', '5m', 'from 1h to 3650d'],
    ['RUN_MAX_OUTPUT_BYTES', '4gb', 'from 1kb to 512mb'],
    ['RUN_MAX_LINE_BYTES', '10', 'from 1kb to 512mb'],
    ['SLACK_FLOOD_REFUSALS', '0', 'must be a whole number 1-1000 of refused clicks and commands'],
    [
      'CAPI_READONLY_PER_PERSON',
      'ten',
      'must be a whole number 1-1000 of read-only runs one person may start',
    ],
    ['CAPI_READONLY_PER_SITE', '0', 'must be a whole number 1-1000 of read-only runs started on one site'],
    ['CAPI_READONLY_WINDOW', '10', 'must be a duration'],
    ['SLACK_FLOOD_UPLOADS', 'many', 'must be a whole number 1-1000 of /capi timeline uploads'],
    ['SLACK_FLOOD_WINDOW', '1 minute', 'must be a duration'],
    ['REDIS_SENTINELS', 'sentinel-1', '"sentinel-1" is not host:port'],
    ['REDIS_CLUSTER_NODES', 'a:1,b:99999', '"b:99999" is not host:port'],
    ['REDIS_WAIT_REPLICAS', 'all', 'must be a whole number of replicas'],
  ])('should name %s and the fix when it is %j', (name, value, fix) => {
    const error = configError({ [name]: value });
    expect(error.code).toBe(ErrorCode.ConfigInvalid);
    expect(error.source).toBe('environment');
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]).toMatch(new RegExp(`^${name}: `));
    expect(error.issues[0]).toContain(fix);
  });

  it('should report every bad variable in one error when several are wrong', () => {
    const error = configError({
      JUMPHOST_PORT: '99999',
      JUMPHOST_HOST_KEY: 'MD5:aa:bb',
      REDIS_URL: 'mysql://db',
      CAPI_APPROVERS: '@alice @bob',
      CAPI_ALLOW_SELF_APPROVAL: '1',
      LOG_LEVEL: 'loud',
    });
    const names = error.issues.map((issue) => issue.slice(0, issue.indexOf(':')));
    expect(names.sort()).toEqual(
      [
        'CAPI_ALLOW_SELF_APPROVAL',
        'CAPI_APPROVERS',
        'CAPI_APPROVERS',
        'JUMPHOST_HOST_KEY',
        'JUMPHOST_PORT',
        'LOG_LEVEL',
        'REDIS_URL',
      ].sort(),
    );
    expect(error.message).toContain('environment is invalid:');
    expect(error.message).toContain('"@bob"');
  });

  it('should not echo the values when secret variables are malformed', () => {
    const secrets = {
      SLACK_BOT_TOKEN: 'xoxp-9999999999-leakedvalue1',
      SLACK_SIGNING_SECRET: 'short secret with spaces',
      SLACK_APP_TOKEN: 'leakedvalue2-xapp',
      REDIS_URL: 'https://:leakedvalue3@redis:6379',
      JUMPHOST_PRIVATE_KEY_PATH: `${PEM.begin.OPENSSH}\nleakedvalue4\n${PEM.end.OPENSSH}`,
    };
    const error = configError(secrets);
    expect(error.issues).toHaveLength(5);
    expect(error.message).not.toMatch(/leakedvalue|9999999999|short secret/);
    expect(error.issues.find((i) => i.startsWith('JUMPHOST_PRIVATE_KEY_PATH'))).toContain('not its contents');
  });

  it('should keep only the jumphost fields that are set when the site profile may supply the rest', () => {
    expect(loadConfig({ JUMPHOST_HOST: '10.0.0.5' }).jumphost).toEqual({ host: '10.0.0.5' });
    expect(loadConfig({ JUMPHOST_HOST: 'fe80::1' }).jumphost).toEqual({ host: 'fe80::1' });
  });
});

describe('loadConfig: Redis topology', () => {
  it('should connect through the sentinels and wait for one replica when REDIS_SENTINELS is set', () => {
    const config = loadConfig({
      REDIS_SENTINELS: 's1.example.org:26379, s2.example.org:26379,[::1]:26380',
      REDIS_SENTINEL_NAME: 'mymaster',
      REDIS_PASSWORD: 'pw',
    });
    expect(config.redis).toEqual({
      mode: 'sentinel',
      sentinels: [
        { host: 's1.example.org', port: 26379 },
        { host: 's2.example.org', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      name: 'mymaster',
      password: 'pw',
      tls: false,
      waitReplicas: 1,
    });
    expect(config.queue.prefix).toBe('capi');
  });

  it('should put the queue prefix in a hash tag by default when REDIS_CLUSTER_NODES is set', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: 'r1:6379,r2:6379,r3:6379' });
    expect(config.redis).toMatchObject({ mode: 'cluster', nodes: [{ host: 'r1', port: 6379 }, {}, {}] });
    expect(config.queue.prefix).toBe('{capi}');
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'r1:6379', QUEUE_PREFIX: '{ops}' }).queue.prefix).toBe('{ops}');
  });

  it.each([
    [
      { REDIS_CLUSTER_NODES: 'r1:6379', QUEUE_PREFIX: 'capi' },
      'must be a hash tag in braces under Redis Cluster, e.g. {capi}',
    ],
    [{ REDIS_SENTINELS: 's1:26379' }, 'REDIS_SENTINEL_NAME: must be set with REDIS_SENTINELS'],
    [{ REDIS_SENTINEL_NAME: 'mymaster' }, 'set without REDIS_SENTINELS'],
    [
      { REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'm', REDIS_CLUSTER_NODES: 'r1:6379' },
      'set one of them',
    ],
    [{ REDIS_CLUSTER_NODES: 'r1:6379', REDIS_URL: 'redis://r1:6379' }, 'unset REDIS_URL'],
    [{ REDIS_PASSWORD: 'pw' }, 'with one server put it in REDIS_URL'],
    [{ REDIS_CLUSTER_NODES: 'r1:6379', REDIS_WAIT_REPLICAS: '1' }, 'not supported with REDIS_CLUSTER_NODES'],
  ])('should refuse %j and say what to change', (env, fix) => {
    const error = configError(env);
    expect(error.issues.join('\n')).toContain(fix);
  });
});

describe('defaultCommandsDir', () => {
  it('should find the repository commands directory when run from the TypeScript sources', () => {
    expect(defaultCommandsDir()).toBe(path.join(repoRoot, 'commands'));
    expect(existsSync(path.join(repoRoot, 'package.json'))).toBe(true);
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['30m', DEFAULT_APPROVAL_TIMEOUT_MS],
    ['2h', 7_200_000],
    [' 5m ', 300_000],
  ])('should return milliseconds when the text is %j', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['30', '1.5h', '2d', 'm', '-5s', '1h30m', ''])(
    'should throw with the accepted forms when the text is %j',
    (text) => {
      expect(() => parseDuration(text)).toThrow(CapiError);
      expect(() => parseDuration(text)).toThrow(/ms, s, m or h, e\.g\. 500ms, 90s, 30m or 2h/);
    },
  );
});

describe('agentOptions', () => {
  it('should run as many runs at once as AGENT_CONCURRENCY says, in `agent` and in `serve` alike', () => {
    const runbooks = { runbooks: new Map(), scopes: new Map() } as unknown as Parameters<
      typeof agentOptions
    >[2];
    const logger = createLogger({ level: 'silent', name: 'test' });
    expect(agentOptions(loadConfig({}), new Map(), runbooks, { verifiers: {} }, logger).concurrency).toBe(2);
    expect(
      agentOptions(loadConfig({ AGENT_CONCURRENCY: '20' }), new Map(), runbooks, { verifiers: {} }, logger)
        .concurrency,
    ).toBe(20);
  });
});

describe('site profile: the mgmt VM host key', () => {
  const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

  it('should pin the public key without its comment and hand the mgmt-vm scope the pin and the record file', () => {
    const site = parseSiteProfile(
      sampleSiteData({ name: 'lab1', mgmt_host_key: `${KEY} root@capi-mgmt-v2` }),
      't',
    );
    expect(site.mgmt_host_key).toBe(KEY);
    expect(siteEnv(site)).toMatchObject({
      MGMT_HOST_KEY: KEY,
      MGMT_KNOWN_HOSTS: '~/.capi-chatops/known_hosts/lab1',
    });
    expect(mgmtHostKeyTrustNotice(site)).toBeUndefined();
    const unpinned = parseSiteProfile(sampleSiteData({ name: 'lab1' }), 't');
    expect(siteEnv(unpinned).MGMT_HOST_KEY).toBe('');
    expect(mgmtHostKeyTrustNotice(unpinned)).toMatch(/^site lab1: mgmt_host_key is not pinned/);
  });

  it('should refuse a fingerprint or a key whose data names another type, saying where to find the key', () => {
    for (const bad of [
      `SHA256:${'q'.repeat(43)}`,
      KEY.replace('ssh-ed25519', 'ssh-rsa'),
      'ssh-ed25519 not-base64!',
    ]) {
      expect(() => parseSiteProfile(sampleSiteData({ mgmt_host_key: bad }), 'site.yaml'), bad).toThrow(
        /mgmt_host_key: must be the mgmt VM's public host key on one line, e\.g\. ssh-ed25519 .*ssh_host_ed25519_key\.pub/,
      );
    }
  });
});
