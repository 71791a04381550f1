/**
 * Environment configuration, read in one pure step (probot's read-env-options style): `loadConfig(env)` takes
 * the environment as an argument so tests never touch process.env, and it reports every bad variable at once
 * so an operator fixes the whole .env file in one go instead of one restart per mistake.
 *
 * Messages never echo a value: several variables are secrets (tokens, REDIS_URL with a password), and a
 * config error ends up in journald and in CI logs.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { CapiError, ConfigError, ErrorCode } from '../errors.js';
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
export const DEFAULT_SLACK_API_URL = 'https://slack.com/api/';
export const DEFAULT_PORT = 3000;
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
  readonly redis: { readonly url: string };
  readonly queue: { readonly prefix: string };
  /** A site's run lock lapses this long after the last agent that could renew it is gone. */
  readonly siteLockTtlMs: number;
  /** Runs one agent process works on at once (AGENT_CONCURRENCY); runs parked at an approval do not count. */
  readonly agentConcurrency: number;
  readonly approval: {
    readonly timeoutMs: number;
    /** Slack user ids (U…, W…) and user-group ids (S…). */
    readonly approvers: readonly string[];
    readonly operators: readonly string[];
    readonly allowSelfApproval: boolean;
  };
  readonly slack: {
    readonly botToken?: string;
    readonly signingSecret?: string;
    readonly appToken?: string;
    /** Always ends with `/`, as Slack's web client joins method names onto it. */
    readonly apiUrl: string;
    /** HTTP port of the Events API receiver (PORT). */
    readonly port: number;
  };
}

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

const booleanSchema = z
  .enum(['true', 'false'], { error: 'must be true or false' })
  .transform((v) => v === 'true');

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
  QUEUE_PREFIX: z
    .string()
    .regex(/^[a-z0-9-]+$/, {
      error: `must be lowercase letters, digits and dashes, e.g. ${DEFAULT_QUEUE_PREFIX}`,
    })
    .optional(),
  APPROVAL_TIMEOUT: timerDuration('30m').optional(),
  SITE_LOCK_TTL: timerDuration('60s').optional(),
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

  SLACK_BOT_TOKEN: z
    .string()
    .regex(/^xoxb-[A-Za-z0-9-]+$/, {
      error:
        'must be the Bot User OAuth Token starting with xoxb- (OAuth & Permissions page; value not shown)',
    })
    .optional(),
  SLACK_SIGNING_SECRET: z
    .string()
    .regex(/^[A-Za-z0-9]{20,}$/, {
      error:
        'must be the Signing Secret from Basic Information > App Credentials, 32 hex characters without ' +
        'quotes or spaces (value not shown)',
    })
    .optional(),
  SLACK_APP_TOKEN: z
    .string()
    .regex(/^xapp-[A-Za-z0-9-]+$/, {
      error:
        'must be an app-level token starting with xapp- (Basic Information > App-Level Tokens; value not shown)',
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
    redis: { url: e.REDIS_URL ?? DEFAULT_REDIS_URL },
    queue: { prefix: e.QUEUE_PREFIX ?? DEFAULT_QUEUE_PREFIX },
    siteLockTtlMs: e.SITE_LOCK_TTL ?? DEFAULT_SITE_LOCK_TTL_MS,
    agentConcurrency: e.AGENT_CONCURRENCY ?? DEFAULT_AGENT_CONCURRENCY,
    approval: {
      timeoutMs: e.APPROVAL_TIMEOUT ?? DEFAULT_APPROVAL_TIMEOUT_MS,
      approvers: e.CAPI_APPROVERS ?? [],
      operators: e.CAPI_OPERATORS ?? [],
      allowSelfApproval: e.CAPI_ALLOW_SELF_APPROVAL ?? false,
    },
    slack: {
      ...(e.SLACK_BOT_TOKEN !== undefined ? { botToken: e.SLACK_BOT_TOKEN } : {}),
      ...(e.SLACK_SIGNING_SECRET !== undefined ? { signingSecret: e.SLACK_SIGNING_SECRET } : {}),
      ...(e.SLACK_APP_TOKEN !== undefined ? { appToken: e.SLACK_APP_TOKEN } : {}),
      apiUrl: e.SLACK_API_URL ?? DEFAULT_SLACK_API_URL,
      port: e.PORT ?? DEFAULT_PORT,
    },
  };
}
