import { pino } from 'pino';
import { isSecretKey, REDACTED, redactText } from './redact.js';

export interface LoggerOptions {
  /** A pino level name; defaults to `info`. */
  readonly level?: string;
  /** Where JSON lines go; defaults to stdout. */
  readonly destination?: pino.DestinationStream;
  readonly name?: string;
}

/** Field names that always hold a secret, wherever a caller puts them. */
const SECRET_FIELDS = [
  'password',
  'passphrase',
  'token',
  'secret',
  'privateKey',
  'apiKey',
  'botToken',
  'appToken',
  'signingSecret',
  'clientSecret',
  'authorization',
  'cookie',
] as const;

const SECRET_ENV = [
  'OS_PASSWORD',
  'OS_TOKEN',
  'OS_APPLICATION_CREDENTIAL_SECRET',
  'SLACK_BOT_TOKEN',
  'SLACK_SIGNING_SECRET',
  'SLACK_APP_TOKEN',
  'VAULT_TOKEN',
  'MAAS_API_KEY',
  'REDIS_URL',
  'REDIS_PASSWORD',
  'REDIS_SENTINEL_PASSWORD',
] as const;

/**
 * pino's path redaction is the cheap first line for fields we know by name. It only reaches the depths listed,
 * which is why every string is also run through redactText below.
 */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => `*.${field}`),
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  ...SECRET_ENV.map((name) => `env.${name}`),
  ...SECRET_ENV.map((name) => `*.env.${name}`),
];

/**
 * A JSON logger that cannot print a secret: known secret fields are censored by name, and every string (the
 * message after formatting, every field at any depth, error messages and stacks) goes through redactText,
 * because command output may carry a secret under any key.
 */
export function createLogger(opts: LoggerOptions = {}): pino.Logger {
  const options: pino.LoggerOptions = {
    level: opts.level ?? 'info',
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    formatters: {
      log: (object) => redactValue(object, new WeakSet()) as Record<string, unknown>,
      bindings: (bindings) => redactValue(bindings, new WeakSet()) as pino.Bindings,
    },
    serializers: {
      // The message serializer sees the message after `%s` interpolation, so a secret split between a format
      // string and its argument (`'OS_PASSWORD=%s', pw`) is still caught.
      msg: (msg: unknown) => (typeof msg === 'string' ? redactText(msg) : msg),
      // formatters.log has already turned errors into redacted plain objects; running the std serializer again
      // would rename their type to "Object".
      err: (err: unknown) => (err instanceof Error ? redactValue(err, new WeakSet()) : err),
    },
  };
  const logger = opts.destination === undefined ? pino(options) : pino(options, opts.destination);
  redactChildBindings(logger);
  return logger;
}

/**
 * pino does not pass child bindings through formatters.bindings (children get an identity formatter), so a
 * binding such as `{ step: 'export OS_PASSWORD=...' }` would be printed verbatim on every line. Children are
 * created with Object.create(parent), so the override set here is inherited by every descendant, and `this`
 * is always the logger whose child is being made.
 */
function redactChildBindings(logger: pino.Logger): void {
  const child = logger.child;
  const redactingChild = function (
    this: pino.Logger,
    bindings: pino.Bindings,
    options?: pino.ChildLoggerOptions,
  ) {
    return Reflect.apply(child, this, [redactValue(bindings, new WeakSet()), options]) as pino.Logger;
  };
  logger.child = redactingChild as unknown as pino.Logger['child'];
}

const MAX_DEPTH = 20;

/** The prototype of what pino's error serializer returns, nested errors (`original`, `errors`) included. */
const SERIALIZED_ERROR = Object.getPrototypeOf(pino.stdSerializers.err(new Error('probe'))) as object;

/**
 * A redacted copy of `value` shaped like what JSON.stringify would print. The caller's object is not touched.
 * An error is printed as pino's standard serializer has it (type, message and stack, with their causes, and its
 * own fields), with two limits on those fields (`inError`), which libraries fill with more than data:
 * ioredis puts the failed command's arguments there (an AUTH password, a stored run's text), so `args` is
 * censored; an HTTP client puts its request, response and sockets there, so an object that is neither plain
 * data nor an error is only named.
 */
function redactValue(value: unknown, seen: WeakSet<object>, depth = 0, inError = false): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value !== 'object' || value === null) return value;
  if (seen.has(value)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Too deep]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => redactValue(item, seen, depth + 1, inError));
    if (value instanceof Error) return redactValue(pino.stdSerializers.err(value), seen, depth + 1, true);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return redactValue(toJSON.call(value), seen, depth + 1, inError);
    if (inError && !isPlainData(value)) return `[${value.constructor?.name ?? 'Object'}]`;
    const out: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) {
      out[key] =
        (isSecretKey(key) || (inError && key === 'args')) && isCensorable(field)
          ? REDACTED
          : redactValue(field, seen, depth + 1, inError);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

function isPlainData(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as object | null;
  return proto === null || proto === Object.prototype || proto === SERIALIZED_ERROR;
}

/** Booleans and nulls under a secret-looking key (`{ password: null }`) carry no secret and help debugging. */
function isCensorable(value: unknown): boolean {
  if (value === null || value === undefined || typeof value === 'boolean') return false;
  return value !== '';
}
