/**
 * Environment configuration, read in one pure step (probot's read-env-options style): `loadConfig(env)` takes
 * the environment as an argument so tests never touch process.env, and it reports every bad variable at once
 * so an operator fixes the whole .env file in one go instead of one restart per mistake.
 *
 * Messages never echo a value: several variables are secrets (tokens, REDIS_URL with a password), and a
 * config error ends up in journald and in CI logs.
 *
 * This file is the composition: the defaults, the one schema and the AppConfig it yields. Amounts (durations,
 * sizes, counts) are read by units.ts, the REDIS_* variables by redis-target.ts, Slack ids and terminal users by
 * slack-ids.ts, and the runbook directory is found by commands-dir.ts.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError, ErrorCode } from '../errors.js';
import { FINGERPRINT_PATTERN } from '../host-key.js';
import type { JumphostTarget } from '../jumphost-target.js';
import { DEFAULT_READONLY_LIMITS } from '../runs/readonly-runs.js';
import { describeZodIssues } from '../validation.js';
import { defaultCommandsDir } from './commands-dir.js';
import { booleanSchema, pathSchema, portSchema } from './env-fields.js';
import { type RedisTarget, redisEnvShape, resolveRedisTarget } from './redis-target.js';
import { slackIdListSchema, terminalUsersSchema } from './slack-ids.js';
import { byteSizeSchema, countSchema, retentionSchema, timerSchema } from './units.js';

export type { RedisNode, RedisTarget } from './redis-target.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Not folded into `jumphost.port`: a site profile may also set the port, and an env default would silently
 * override it when the two are merged. Apply it after merging.
 */
export const DEFAULT_JUMPHOST_PORT = 22;
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

/** A whole number 1-1000 of `what`. */
const countOf = (what: string, fallback: number) =>
  countSchema(`must be a whole number 1-1000 of ${what} (default ${fallback})`);

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

  ...redisEnvShape,
  QUEUE_PREFIX: z
    .string()
    .regex(/^([a-z0-9-]+|\{[a-z0-9-]+\})$/, {
      error: `must be lowercase letters, digits and dashes, e.g. ${DEFAULT_QUEUE_PREFIX}, or such a name in braces (a Redis Cluster hash tag), e.g. ${DEFAULT_CLUSTER_QUEUE_PREFIX}`,
    })
    .optional(),
  APPROVAL_TIMEOUT: timerSchema('30m').optional(),
  SITE_LOCK_TTL: timerSchema('60s').optional(),
  THREAD_LEASE_TTL: timerSchema('15s').optional(),
  SLACK_FLOOD_REFUSALS: countOf('refused clicks and commands per user per window', 5).optional(),
  SLACK_FLOOD_UPLOADS: countOf('/capi timeline uploads per user per window', 3).optional(),
  SLACK_FLOOD_WINDOW: timerSchema('1m').optional(),
  CAPI_READONLY_PER_PERSON: countOf(
    'read-only runs one person may start per CAPI_READONLY_WINDOW',
    DEFAULT_READONLY_LIMITS.perPerson,
  ).optional(),
  CAPI_READONLY_PER_SITE: countOf(
    'read-only runs started on one site per CAPI_READONLY_WINDOW, by anyone or any alert',
    DEFAULT_READONLY_LIMITS.perSite,
  ).optional(),
  CAPI_READONLY_WINDOW: timerSchema('10m').optional(),
  AGENT_CONCURRENCY: countSchema(
    `must be a whole number of runs 1-1000, e.g. 20 for an agent serving 20 sites (default ${DEFAULT_AGENT_CONCURRENCY})`,
  ).optional(),
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
  const redis = resolveRedisTarget(e, e.QUEUE_PREFIX);

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
