/**
 * Environment configuration, read in one pure step (probot's read-env-options style): `loadConfig(env)` takes
 * the environment as an argument so tests never touch process.env, and it reports every bad variable at once
 * so an operator fixes the whole .env file in one go instead of one restart per mistake.
 *
 * Messages never echo a value: several variables are secrets (tokens, REDIS_URL with a password), and a
 * config error ends up in journald and in CI logs.
 */
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CapiError, ConfigError, ErrorCode } from '../errors.js';
import { DEFAULT_READONLY_LIMITS } from '../runs/readonly-runs.js';
import { FINGERPRINT_PATTERN } from '../ssh/hostkey.js';
import type { JumphostTarget } from '../ssh/types.js';
import { describeZodIssues } from '../validation.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Not folded into `jumphost.port`: a site profile may also set the port, and an env default would silently
 * override it when the two are merged. Apply it after merging.
 */
export const DEFAULT_JUMPHOST_PORT = 22;
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_QUEUE_PREFIX = 'capi';
export const DEFAULT_APPROVAL_TIMEOUT_MS = 30 * 60_000;
export const DEFAULT_SITE_LOCK_TTL_MS = 60_000;
export const DEFAULT_THREAD_LEASE_TTL_MS = 15_000;
export const DEFAULT_SLACK_API_URL = 'https://slack.com/api/';
export const DEFAULT_PORT = 3000;
/** The ops routes answer on loopback only unless METRICS_HOST opens them (readiness reasons name internals). */
export const DEFAULT_METRICS_HOST = '127.0.0.1';
export const DEFAULT_CLUSTER_QUEUE_PREFIX = '{capi}';
export const DEFAULT_RUN_RETENTION_MS = 30 * 86_400_000;
export const DEFAULT_MAX_OUTPUT_BYTES_PER_RUN = 4 * 1024 * 1024;
/** One output line: longer lines keep their first bytes and say how many were cut (RUN_MAX_LINE_BYTES). */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
/** How long the attempt journal waits for its replicas before a destructive command is refused. */
export const DEFAULT_WAIT_REPLICAS_TIMEOUT_MS = 5_000;
export const DEFAULT_AGENT_CONCURRENCY = 2;

/** Node's timers fire at once for delays above this (about 24.8 days), so a longer timeout would never wait. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface AppConfig {
  /** Absolute path of the site profile YAML, when SITE_FILE is set. */
  readonly siteFile?: string;
  /** Absolute path of the runbook directory. */
  readonly commandsDir: string;
  readonly logLevel: LogLevel;
  /** Only what the environment sets; the site profile may supply the rest. */
  readonly jumphost: Partial<JumphostTarget>;
  readonly redis: RedisTarget;
  /** A hash tag (`{capi}`) under Redis Cluster, so every key of the product lands in one slot. */
  readonly queue: { readonly prefix: string };
  /** A site's run lock lapses this long after the last agent that could renew it is gone. */
  readonly siteLockTtlMs: number;
  /** A `serve` replica's hold on a run's Slack thread; another replica takes over this long after it died. */
  readonly threadLeaseTtlMs: number;
  /** Runs one agent process works on at once (AGENT_CONCURRENCY); runs parked at an approval do not count. */
  readonly agentConcurrency: number;
  /**
   * Read-only runs (diagnose) started per person and per site in a sliding window (CAPI_READONLY_PER_PERSON,
   * CAPI_READONLY_PER_SITE, CAPI_READONLY_WINDOW); an identical one asked for while one goes joins it instead.
   */
  readonly readOnlyLimits: {
    readonly perPerson: number;
    readonly perSite: number;
    readonly windowMs: number;
  };
  /** Per Slack user and window: refused clicks/commands and timeline uploads before one "slow down". */
  readonly slackFlood: { readonly refusals: number; readonly uploads: number; readonly windowMs: number };
  readonly approval: {
    readonly timeoutMs: number;
    /** Slack user ids (U…, W…) and user-group ids (S…). */
    readonly approvers: readonly string[];
    readonly operators: readonly string[];
    readonly allowSelfApproval: boolean;
    /**
     * Whether a Slack user group (S…) in CAPI_APPROVERS or CAPI_OPERATORS grants anything
     * (CAPI_TRUST_SLACK_GROUPS, default false): by default any workspace member can edit a user group.
     */
    readonly trustSlackGroups: boolean;
  };
  /** The keys decisions are signed and verified with (see src/signing). */
  readonly decisions: {
    /** serve's Ed25519 private key (CAPI_DECISION_SIGNING_KEY): it signs every decision taken in Slack. */
    readonly signingKeyFile?: string;
    /** serve's public key (CAPI_DECISION_VERIFY_KEY): an agent verifies Slack decisions with it. */
    readonly verifyKeyFile?: string;
    /** OpenSSH allowed_signers (CAPI_ALLOWED_SIGNERS): Slack user ids -> operators' SSH public keys. */
    readonly allowedSignersFile?: string;
  };
  /**
   * Unix user -> Slack user id (CAPI_TERMINAL_USERS): who a terminal command acts as. The terminal never
   * takes an identity from what is typed.
   */
  readonly terminalUsers: ReadonlyMap<string, string>;
  readonly slack: {
    readonly botToken?: string;
    readonly signingSecret?: string;
    readonly appToken?: string;
    /** The one workspace whose commands and clicks are accepted (SLACK_TEAM_ID); auth.test's team when unset. */
    readonly teamId?: string;
    /** Always ends with `/`, as Slack's web client joins method names onto it. */
    readonly apiUrl: string;
    /** HTTP port of the Events API receiver (PORT). */
    readonly port: number;
    /** The address it listens on (HOST); every interface when unset. */
    readonly host?: string;
  };
  readonly ops: {
    /**
     * Where /healthz, /readyz, /metrics and Alertmanager's webhook listen (METRICS_PORT; 0 picks a free port):
     * a port of their own, never PORT, which faces Slack and the internet. Unset: they are not served.
     */
    readonly metricsPort?: number;
    /** The address they listen on (METRICS_HOST); loopback unless the deployment opens it on purpose. */
    readonly metricsHost: string;
    /** Audit lines are also appended here (AUDIT_LOG_FILE). */
    readonly auditLogFile?: string;
    /** Bearer token Alertmanager's webhook must send (ALERT_WEBHOOK_TOKEN); unset: no webhook is served. */
    readonly alertWebhookToken?: string;
  };
  readonly retention: {
    /** A finished run's keys expire this long after it finished (RUN_RETENTION). */
    readonly runMs: number;
    /** Output stored per run, in bytes; later lines are counted, not stored (RUN_MAX_OUTPUT_BYTES). */
    readonly maxOutputBytesPerRun: number;
    /** Bytes kept of one output line, in memory and storage; the rest is counted (RUN_MAX_LINE_BYTES). */
    readonly maxLineBytes: number;
  };
}

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/**
 * Where Redis is: one server (REDIS_URL), a Sentinel-monitored master (REDIS_SENTINELS + REDIS_SENTINEL_NAME)
 * or a Cluster (REDIS_CLUSTER_NODES). `waitReplicas`: how many replicas must hold a destructive attempt's
 * record before its command is sent (WAIT), so a failover cannot lose it and send the command twice.
 */
export type RedisTarget =
  | { readonly mode: 'single'; readonly url: string; readonly waitReplicas: number }
  | {
      readonly mode: 'sentinel';
      readonly sentinels: readonly RedisNode[];
      readonly name: string;
      readonly password?: string;
      readonly sentinelPassword?: string;
      readonly tls: boolean;
      readonly waitReplicas: number;
    }
  | {
      readonly mode: 'cluster';
      readonly nodes: readonly RedisNode[];
      readonly password?: string;
      readonly tls: boolean;
      readonly waitReplicas: 0;
    };

/** A duration a Node timer can wait for: more than 0, at most MAX_TIMER_MS. */
function timerDuration(example: string) {
  return z.string().transform((v, ctx) => {
    const ms = tryParseDuration(v);
    if (ms === undefined || ms <= 0 || ms > MAX_TIMER_MS) {
      ctx.addIssue({
        code: 'custom',
        message:
          ms === undefined
            ? `must be a duration: ${DURATION_FORMS}`
            : `must be more than 0 and at most 596h (Node timers cannot wait longer), e.g. ${example}`,
      });
      return z.NEVER;
    }
    return ms;
  });
}

/** A whole number 1-1000 of `what`. */
function countSchema(what: string, fallback: number) {
  return z
    .string()
    .refine((v) => /^\d{1,4}$/.test(v) && Number(v) >= 1 && Number(v) <= 1000, {
      error: `must be a whole number 1-1000 of ${what} (default ${fallback})`,
    })
    .transform(Number);
}

const DURATION = /^(\d+)(ms|s|m|h)$/;
const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_FORMS = 'a whole number followed by ms, s, m or h, e.g. 500ms, 90s, 30m or 2h';

function tryParseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (match === null) return undefined;
  const [, amount = '', unit = ''] = match;
  const ms = Number(amount) * (DURATION_UNITS_MS[unit] ?? Number.NaN);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** Parses `500ms`, `90s`, `30m` or `2h` into milliseconds. */
export function parseDuration(text: string): number {
  const ms = tryParseDuration(text);
  if (ms === undefined) {
    throw new CapiError(ErrorCode.ConfigInvalid, `invalid duration "${text}": use ${DURATION_FORMS}`);
  }
  return ms;
}

/**
 * The runbooks live in `<package root>/commands`. A fixed `../../../commands/` relative to this module only
 * works from `dist/src/config/`: from `src/config/` (vitest) it lands one directory above the package. So walk
 * up to the nearest package.json, which is the same directory from both places and from an installed copy.
 */
export function defaultCommandsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'commands');
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        'cannot find the runbook directory: no package.json above this module; set COMMANDS_DIR',
      );
    }
    dir = parent;
  }
}

const portSchema = (example: number) =>
  z
    .string()
    .refine((v) => /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535, {
      error: `must be a TCP port 1-65535, e.g. ${example}`,
    })
    .transform(Number);

const pathSchema = (what: string) =>
  z
    .string()
    .refine((v) => !/[\r\n]/.test(v) && !v.includes('-----BEGIN'), {
      error: `must be the path of ${what}, not its contents`,
    })
    .refine((v) => !v.startsWith('~'), {
      error: 'must not start with ~: it is not expanded here; use an absolute path such as /home/ubuntu/...',
    })
    .transform((v) => path.resolve(v));

const SLACK_ID = /^[UWS][A-Z0-9]{6,20}$/;

const slackIdListSchema = z.string().transform((value, ctx) => {
  const ids: string[] = [];
  for (const entry of value.split(/[\s,]+/)) {
    if (entry === '') continue;
    if (!SLACK_ID.test(entry)) {
      ctx.addIssue({
        code: 'custom',
        message:
          `"${entry}" is not a Slack user id (U… or W…) or user-group id (S…); ` +
          'use ids, not names: profile > ⋮ > Copy member ID, e.g. U0123ABCD',
      });
      continue;
    }
    if (!ids.includes(entry)) ids.push(entry);
  }
  return ids;
});

const UNIX_USER = /^[a-z_][a-z0-9_.-]{0,31}$/;
const SLACK_USER_ID = /^[UW][A-Z0-9]{6,20}$/;
const TERMINAL_USERS_EXAMPLE = 'alice=U0123ABCD,bob=U0456EFGH';

/** `alice=U0123ABCD,bob=U0456EFGH`: each Unix account that may use the terminal front, and the Slack user it is. */
const terminalUsersSchema = z.string().transform((value, ctx) => {
  const users = new Map<string, string>();
  for (const entry of value.split(/[\s,]+/)) {
    if (entry === '') continue;
    const [unix = '', slack = '', ...extra] = entry.split('=');
    if (extra.length > 0 || !entry.includes('=') || !UNIX_USER.test(unix)) {
      ctx.addIssue({
        code: 'custom',
        message: `"${entry.slice(0, 60)}" is not unixuser=SlackUserId; list them comma separated, e.g. ${TERMINAL_USERS_EXAMPLE}`,
      });
    } else if (!SLACK_USER_ID.test(slack)) {
      ctx.addIssue({
        code: 'custom',
        message: `${unix} must map to one person's Slack user id (U… or W…, not a group), e.g. ${unix}=U0123ABCD (profile > ⋮ > Copy member ID)`,
      });
    } else if (users.has(unix)) {
      ctx.addIssue({ code: 'custom', message: `${unix} is listed twice: keep one entry per Unix user` });
    } else {
      users.set(unix, slack);
    }
  }
  return users;
});

const booleanSchema = z
  .enum(['true', 'false'], { error: 'must be true or false' })
  .transform((v) => v === 'true');

const nodeListSchema = (example: string) =>
  z.string().transform((value, ctx) => {
    const nodes: RedisNode[] = [];
    let bad = false;
    for (const entry of value.split(/[\s,]+/)) {
      if (entry === '') continue;
      const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
      const port = Number(m?.[2]);
      if (!m || port < 1 || port > 65535) {
        bad = true;
        ctx.addIssue({
          code: 'custom',
          message: `"${entry}" is not host:port; list them comma separated, e.g. ${example}`,
        });
        continue;
      }
      nodes.push({ host: (m[1] as string).replace(/^\[|\]$/g, ''), port });
    }
    if (nodes.length === 0 && !bad) {
      ctx.addIssue({ code: 'custom', message: `lists no host:port, e.g. ${example}` });
    }
    return nodes;
  });

const RETENTION = /^(\d+)(m|h|d)$/;
const RETENTION_UNITS_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Redis expiries, not Node timers: days are allowed and there is no 24.8-day ceiling. */
const retentionSchema = z.string().transform((v, ctx) => {
  const m = RETENTION.exec(v);
  const ms = m ? Number(m[1]) * (RETENTION_UNITS_MS[m[2] as string] ?? Number.NaN) : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < 60 * 60_000 || ms > 3650 * 86_400_000) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a duration from 1h to 3650d as a whole number followed by m, h or d, e.g. 30d',
    });
    return z.NEVER;
  }
  return ms;
});

const SIZE = /^(\d+)(b|kb|mb)?$/i;
const SIZE_UNITS: Readonly<Record<string, number>> = { b: 1, kb: 1024, mb: 1024 * 1024 };

const byteSizeSchema = z.string().transform((v, ctx) => {
  const m = SIZE.exec(v);
  const bytes = m ? Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? Number.NaN) : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1024 || bytes > 512 * 1024 * 1024) {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a size from 1kb to 512mb: a whole number of bytes, or followed by kb or mb, e.g. 4mb',
    });
    return z.NEVER;
  }
  return bytes;
});

function validUrl(value: string, protocols: readonly string[]): URL | undefined {
  try {
    const url = new URL(value);
    return protocols.includes(url.protocol) && url.hostname !== '' ? url : undefined;
  } catch {
    return undefined;
  }
}

const envSchema = z.object({
  SITE_FILE: pathSchema('the site profile YAML file').optional(),
  COMMANDS_DIR: pathSchema('the runbook directory').optional(),
  LOG_LEVEL: z
    .string()
    .transform((v) => v.toLowerCase())
    .pipe(z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}; the default is info` }))
    .optional(),

  JUMPHOST_HOST: z
    .string()
    .superRefine((v, ctx) => {
      if (/\s/.test(v) || v.includes('/')) {
        ctx.addIssue({
          code: 'custom',
          message: 'must be a host name or IP address, e.g. jumphost.example.org',
        });
      } else if (v.includes('@')) {
        ctx.addIssue({
          code: 'custom',
          message: 'must be the host only; put the user name in JUMPHOST_USER',
        });
      } else if (/^[^:]+:\d+$/.test(v)) {
        ctx.addIssue({ code: 'custom', message: 'must be the host only; put the port in JUMPHOST_PORT' });
      }
    })
    .optional(),
  JUMPHOST_PORT: portSchema(DEFAULT_JUMPHOST_PORT).optional(),
  JUMPHOST_USER: z
    .string()
    .regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, { error: 'must be a Unix user name, e.g. ubuntu' })
    .optional(),
  JUMPHOST_PRIVATE_KEY_PATH: pathSchema('the SSH private key file').optional(),
  JUMPHOST_HOST_KEY: z
    .string()
    .regex(FINGERPRINT_PATTERN, {
      error:
        'must be the SHA256 fingerprint of the jumphost host key, "SHA256:" and 43 base64 characters without ' +
        'trailing "="; print it on the jumphost with ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub',
    })
    .optional(),

  REDIS_URL: z
    .string()
    .refine((v) => validUrl(v, ['redis:', 'rediss:']) !== undefined, {
      error: `must be a redis:// or rediss:// URL, e.g. ${DEFAULT_REDIS_URL} (with a password: redis://:PASSWORD@host:6379)`,
    })
    .optional(),
  REDIS_SENTINELS: nodeListSchema('sentinel-1:26379,sentinel-2:26379,sentinel-3:26379').optional(),
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/, { error: 'must be the master name the sentinels monitor, e.g. mymaster' })
    .optional(),
  REDIS_SENTINEL_PASSWORD: z.string().optional(),
  REDIS_CLUSTER_NODES: nodeListSchema('redis-1:6379,redis-2:6379,redis-3:6379').optional(),
  REDIS_PASSWORD: z.string().optional(),
  REDIS_TLS: booleanSchema.optional(),
  REDIS_WAIT_REPLICAS: z
    .string()
    .regex(/^\d{1,2}$/, { error: 'must be a whole number of replicas, e.g. 1 (0 turns the wait off)' })
    .transform(Number)
    .optional(),
  QUEUE_PREFIX: z
    .string()
    .regex(/^([a-z0-9-]+|\{[a-z0-9-]+\})$/, {
      error: `must be lowercase letters, digits and dashes, e.g. ${DEFAULT_QUEUE_PREFIX}, or such a name in braces (a Redis Cluster hash tag), e.g. ${DEFAULT_CLUSTER_QUEUE_PREFIX}`,
    })
    .optional(),
  APPROVAL_TIMEOUT: timerDuration('30m').optional(),
  SITE_LOCK_TTL: timerDuration('60s').optional(),
  THREAD_LEASE_TTL: timerDuration('15s').optional(),
  SLACK_FLOOD_REFUSALS: countSchema('refused clicks and commands per user per window', 5).optional(),
  SLACK_FLOOD_UPLOADS: countSchema('/capi timeline uploads per user per window', 3).optional(),
  SLACK_FLOOD_WINDOW: timerDuration('1m').optional(),
  CAPI_READONLY_PER_PERSON: countSchema(
    'read-only runs one person may start per CAPI_READONLY_WINDOW',
    DEFAULT_READONLY_LIMITS.perPerson,
  ).optional(),
  CAPI_READONLY_PER_SITE: countSchema(
    'read-only runs started on one site per CAPI_READONLY_WINDOW, by anyone or any alert',
    DEFAULT_READONLY_LIMITS.perSite,
  ).optional(),
  CAPI_READONLY_WINDOW: timerDuration('10m').optional(),
  AGENT_CONCURRENCY: z
    .string()
    .refine((v) => /^\d{1,4}$/.test(v) && Number(v) >= 1 && Number(v) <= 1000, {
      error: `must be a whole number of runs 1-1000, e.g. 20 for an agent serving 20 sites (default ${DEFAULT_AGENT_CONCURRENCY})`,
    })
    .transform(Number)
    .optional(),
  CAPI_APPROVERS: slackIdListSchema.optional(),
  CAPI_OPERATORS: slackIdListSchema.optional(),
  CAPI_ALLOW_SELF_APPROVAL: booleanSchema.optional(),
  CAPI_TERMINAL_USERS: terminalUsersSchema.optional(),
  CAPI_TRUST_SLACK_GROUPS: booleanSchema.optional(),
  CAPI_DECISION_SIGNING_KEY: pathSchema("serve's Ed25519 private key (PEM)").optional(),
  CAPI_DECISION_VERIFY_KEY: pathSchema("serve's Ed25519 public key (PEM)").optional(),
  CAPI_ALLOWED_SIGNERS: pathSchema('the allowed_signers file').optional(),

  SLACK_BOT_TOKEN: z
    .string()
    .regex(/^xoxb-[A-Za-z0-9-]+$/, {
      error:
        'must be the Bot User OAuth Token starting with xoxb- (OAuth & Permissions page; value not shown)',
    })
    .optional(),
  SLACK_SIGNING_SECRET: z
    .string()
    .regex(/^[0-9a-f]{32}$/, {
      error:
        'must be the Signing Secret from Basic Information > App Credentials, 32 lowercase hex characters ' +
        'without quotes or spaces (value not shown)',
    })
    .optional(),
  SLACK_APP_TOKEN: z
    .string()
    .regex(/^xapp-[A-Za-z0-9-]+$/, {
      error:
        'must be an app-level token starting with xapp- (Basic Information > App-Level Tokens; value not shown)',
    })
    .optional(),
  SLACK_TEAM_ID: z
    .string()
    .regex(/^T[A-Z0-9]{4,20}$/, {
      error:
        'must be the workspace id, T followed by capitals and digits, e.g. T0123ABCD (auth.test reports it as team_id)',
    })
    .optional(),
  SLACK_API_URL: z
    .string()
    .refine((v) => validUrl(v, ['https:', 'http:']) !== undefined, {
      error: `must be an http(s) URL, e.g. ${DEFAULT_SLACK_API_URL}`,
    })
    .transform((v) => (v.endsWith('/') ? v : `${v}/`))
    .optional(),
  PORT: portSchema(DEFAULT_PORT).optional(),
  METRICS_PORT: z
    .string()
    .refine((v) => /^\d{1,5}$/.test(v) && Number(v) <= 65535, {
      error: 'must be a TCP port 1-65535, e.g. 9464 (0 picks a free one, logged at start)',
    })
    .transform(Number)
    .optional(),
  METRICS_HOST: z
    .string()
    .regex(/^[A-Za-z0-9.:-]+$/, {
      error: 'must be the address to listen on, e.g. 127.0.0.1 (the default) or 0.0.0.0',
    })
    .optional(),
  AUDIT_LOG_FILE: pathSchema('the audit log file').optional(),
  ALERT_WEBHOOK_TOKEN: z
    .string()
    .regex(/^[A-Za-z0-9._~+/=-]{32,512}$/, {
      error:
        'must be at least 32 characters of letters, digits and ._~+/=- (e.g. openssl rand -hex 32); value not shown',
    })
    .optional(),
  RUN_RETENTION: retentionSchema.optional(),
  RUN_MAX_OUTPUT_BYTES: byteSizeSchema.optional(),
  RUN_MAX_LINE_BYTES: byteSizeSchema.optional(),
  HOST: z
    .string()
    .refine((v) => isIP(v) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(v), {
      error: 'must be an address or host name to listen on, e.g. 127.0.0.1 (unset: every interface)',
    })
    .optional(),
});

type EnvName = keyof typeof envSchema.shape;

/**
 * Reads and validates the environment. Empty and whitespace-only variables count as unset, as `FOO=` in an
 * env file usually means "no value". Throws ConfigError listing every invalid variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const raw: Partial<Record<EnvName, string>> = {};
  for (const name of Object.keys(envSchema.shape) as EnvName[]) {
    const value = env[name]?.trim();
    if (value !== undefined && value !== '') raw[name] = value;
  }
  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(ErrorCode.ConfigInvalid, 'environment', describeZodIssues(parsed.error));
  }
  const e = parsed.data;
  const redis = redisTarget(e, raw);

  const jumphost: { -readonly [K in keyof JumphostTarget]?: JumphostTarget[K] } = {};
  if (e.JUMPHOST_HOST !== undefined) jumphost.host = e.JUMPHOST_HOST;
  if (e.JUMPHOST_PORT !== undefined) jumphost.port = e.JUMPHOST_PORT;
  if (e.JUMPHOST_USER !== undefined) jumphost.user = e.JUMPHOST_USER;
  if (e.JUMPHOST_PRIVATE_KEY_PATH !== undefined) jumphost.privateKeyPath = e.JUMPHOST_PRIVATE_KEY_PATH;
  if (e.JUMPHOST_HOST_KEY !== undefined) jumphost.hostKey = e.JUMPHOST_HOST_KEY;

  return {
    ...(e.SITE_FILE !== undefined ? { siteFile: e.SITE_FILE } : {}),
    commandsDir: e.COMMANDS_DIR ?? defaultCommandsDir(),
    logLevel: e.LOG_LEVEL ?? 'info',
    jumphost,
    redis,
    queue: {
      prefix:
        e.QUEUE_PREFIX ?? (redis.mode === 'cluster' ? DEFAULT_CLUSTER_QUEUE_PREFIX : DEFAULT_QUEUE_PREFIX),
    },
    siteLockTtlMs: e.SITE_LOCK_TTL ?? DEFAULT_SITE_LOCK_TTL_MS,
    threadLeaseTtlMs: e.THREAD_LEASE_TTL ?? DEFAULT_THREAD_LEASE_TTL_MS,
    slackFlood: {
      refusals: e.SLACK_FLOOD_REFUSALS ?? 5,
      uploads: e.SLACK_FLOOD_UPLOADS ?? 3,
      windowMs: e.SLACK_FLOOD_WINDOW ?? 60_000,
    },
    readOnlyLimits: {
      perPerson: e.CAPI_READONLY_PER_PERSON ?? DEFAULT_READONLY_LIMITS.perPerson,
      perSite: e.CAPI_READONLY_PER_SITE ?? DEFAULT_READONLY_LIMITS.perSite,
      windowMs: e.CAPI_READONLY_WINDOW ?? DEFAULT_READONLY_LIMITS.windowMs,
    },
    agentConcurrency: e.AGENT_CONCURRENCY ?? DEFAULT_AGENT_CONCURRENCY,
    approval: {
      timeoutMs: e.APPROVAL_TIMEOUT ?? DEFAULT_APPROVAL_TIMEOUT_MS,
      approvers: e.CAPI_APPROVERS ?? [],
      operators: e.CAPI_OPERATORS ?? [],
      allowSelfApproval: e.CAPI_ALLOW_SELF_APPROVAL ?? false,
      trustSlackGroups: e.CAPI_TRUST_SLACK_GROUPS ?? false,
    },
    decisions: {
      ...(e.CAPI_DECISION_SIGNING_KEY !== undefined ? { signingKeyFile: e.CAPI_DECISION_SIGNING_KEY } : {}),
      ...(e.CAPI_DECISION_VERIFY_KEY !== undefined ? { verifyKeyFile: e.CAPI_DECISION_VERIFY_KEY } : {}),
      ...(e.CAPI_ALLOWED_SIGNERS !== undefined ? { allowedSignersFile: e.CAPI_ALLOWED_SIGNERS } : {}),
    },
    terminalUsers: e.CAPI_TERMINAL_USERS ?? new Map(),
    slack: {
      ...(e.SLACK_BOT_TOKEN !== undefined ? { botToken: e.SLACK_BOT_TOKEN } : {}),
      ...(e.SLACK_SIGNING_SECRET !== undefined ? { signingSecret: e.SLACK_SIGNING_SECRET } : {}),
      ...(e.SLACK_APP_TOKEN !== undefined ? { appToken: e.SLACK_APP_TOKEN } : {}),
      ...(e.SLACK_TEAM_ID !== undefined ? { teamId: e.SLACK_TEAM_ID } : {}),
      apiUrl: e.SLACK_API_URL ?? DEFAULT_SLACK_API_URL,
      port: e.PORT ?? DEFAULT_PORT,
      ...(e.HOST !== undefined ? { host: e.HOST } : {}),
    },
    ops: {
      ...(e.METRICS_PORT !== undefined ? { metricsPort: e.METRICS_PORT } : {}),
      metricsHost: e.METRICS_HOST ?? DEFAULT_METRICS_HOST,
      ...(e.AUDIT_LOG_FILE !== undefined ? { auditLogFile: e.AUDIT_LOG_FILE } : {}),
      ...(e.ALERT_WEBHOOK_TOKEN !== undefined ? { alertWebhookToken: e.ALERT_WEBHOOK_TOKEN } : {}),
    },
    retention: {
      runMs: e.RUN_RETENTION ?? DEFAULT_RUN_RETENTION_MS,
      maxOutputBytesPerRun: e.RUN_MAX_OUTPUT_BYTES ?? DEFAULT_MAX_OUTPUT_BYTES_PER_RUN,
      maxLineBytes: e.RUN_MAX_LINE_BYTES ?? DEFAULT_MAX_LINE_BYTES,
    },
  };
}

type ParsedEnv = z.infer<typeof envSchema>;

/** One Redis topology, chosen by which variables are set; mixing them is an error naming both. */
function redisTarget(e: ParsedEnv, raw: Partial<Record<EnvName, string>>): RedisTarget {
  const issues: string[] = [];
  const chosen = (['REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const).filter((n) => raw[n] !== undefined);
  if (chosen.length === 2)
    issues.push('REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set: set one of them');
  if (chosen.length > 0 && raw.REDIS_URL !== undefined) {
    issues.push(`REDIS_URL and ${chosen[0]} are both set: unset REDIS_URL (it names a single server)`);
  }
  const sentinels = e.REDIS_SENTINELS;
  const clusterNodes = e.REDIS_CLUSTER_NODES;
  if (sentinels !== undefined && e.REDIS_SENTINEL_NAME === undefined) {
    issues.push(
      'REDIS_SENTINEL_NAME: must be set with REDIS_SENTINELS: the master name the sentinels monitor, e.g. mymaster',
    );
  }
  if (sentinels === undefined && e.REDIS_SENTINEL_NAME !== undefined) {
    issues.push('REDIS_SENTINEL_NAME is set without REDIS_SENTINELS: list the sentinels as host:port,...');
  }
  if (clusterNodes !== undefined) {
    if (e.QUEUE_PREFIX !== undefined && !e.QUEUE_PREFIX.startsWith('{')) {
      issues.push(
        `QUEUE_PREFIX: must be a hash tag in braces under Redis Cluster, e.g. {${e.QUEUE_PREFIX}}, so that every key (BullMQ's and the run store's) lands in one slot and every multi-key script works`,
      );
    }
    if ((e.REDIS_WAIT_REPLICAS ?? 0) > 0) {
      issues.push('REDIS_WAIT_REPLICAS: is not supported with REDIS_CLUSTER_NODES; leave it unset');
    }
  }
  if (chosen.length === 0) {
    for (const n of ['REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD', 'REDIS_TLS'] as const) {
      if (raw[n] !== undefined) {
        issues.push(
          `${n} is only used with REDIS_SENTINELS or REDIS_CLUSTER_NODES; with one server put it in REDIS_URL`,
        );
      }
    }
  }
  if (issues.length > 0) throw new ConfigError(ErrorCode.ConfigInvalid, 'environment', issues);

  const auth = e.REDIS_PASSWORD !== undefined ? { password: e.REDIS_PASSWORD } : {};
  if (sentinels !== undefined) {
    return {
      mode: 'sentinel',
      sentinels,
      name: e.REDIS_SENTINEL_NAME as string,
      ...auth,
      ...(e.REDIS_SENTINEL_PASSWORD !== undefined ? { sentinelPassword: e.REDIS_SENTINEL_PASSWORD } : {}),
      tls: e.REDIS_TLS ?? false,
      // Replication is asynchronous: a failover may lose the last writes unless a replica confirmed them.
      waitReplicas: e.REDIS_WAIT_REPLICAS ?? 1,
    };
  }
  if (clusterNodes !== undefined) {
    return { mode: 'cluster', nodes: clusterNodes, ...auth, tls: e.REDIS_TLS ?? false, waitReplicas: 0 };
  }
  return { mode: 'single', url: e.REDIS_URL ?? DEFAULT_REDIS_URL, waitReplicas: e.REDIS_WAIT_REPLICAS ?? 0 };
}
