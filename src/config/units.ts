/**
 * The one grammar for amounts an operator writes: a whole number followed by a unit (`500ms`, `30m`, `30d`,
 * `4mb`), no spaces, no fractions, no compounds (`1h30m`). Each kind of amount only names which units it takes
 * and the range it allows: a Node timer cannot wait past 24.8 days, so a timer takes no `d`; a Redis expiry
 * takes days. Every error says the accepted forms and an example and never echoes the value (a misplaced secret
 * must not reach a log).
 */
import { z } from 'zod';
import { CapiError, ErrorCode } from '../errors.js';

/** Units of one kind of amount, and how an operator is told about them. */
export interface Scale {
  /** Unit suffix (lowercase) -> how many of the base unit (ms, bytes) it is. */
  readonly units: Readonly<Record<string, number>>;
  /** The unit a bare number means, for kinds that allow one (sizes: bytes). */
  readonly bare?: string;
  /** Whether `4MB` means `4mb`. Not for durations: `M` reads as months as often as minutes. */
  readonly anyCase: boolean;
  /** The accepted forms, as an error message ends with them. */
  readonly forms: string;
}

/** Node timer durations: runbook timeouts and poll intervals, approval timeouts, lock and lease TTLs. */
export const TIMER: Scale = {
  units: { ms: 1, s: 1000, m: 60_000, h: 3_600_000 },
  anyCase: false,
  forms: 'a whole number followed by ms, s, m or h, e.g. 500ms, 90s, 30m or 2h',
};

/** Redis expiries: the scale of days, no sub-minute precision. */
export const RETENTION: Scale = {
  units: { m: 60_000, h: 3_600_000, d: 86_400_000 },
  anyCase: false,
  forms: 'a whole number followed by m, h or d, e.g. 30d',
};

/** Byte sizes, in binary multiples (1kb = 1024 bytes). */
export const BYTES: Scale = {
  units: { b: 1, kb: 1024, mb: 1024 * 1024 },
  bare: 'b',
  anyCase: true,
  forms: 'a whole number of bytes, or followed by kb or mb, e.g. 4mb',
};

/** Node's timers fire at once for delays above this (about 24.8 days), so a longer timeout would never wait. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const AMOUNT = /^(\d+)([A-Za-z]*)$/;

/** The amount in the scale's base unit, or undefined when the text is not one of its forms. */
export function parseAmount(text: string, scale: Scale): number | undefined {
  const match = AMOUNT.exec(text.trim());
  if (match === null) return undefined;
  const [, digits = '', written = ''] = match;
  const unit = written === '' ? scale.bare : scale.anyCase ? written.toLowerCase() : written;
  const factor = unit === undefined ? undefined : scale.units[unit];
  if (factor === undefined) return undefined;
  const amount = Number(digits) * factor;
  return Number.isSafeInteger(amount) ? amount : undefined;
}

/** Parses a timer duration (`500ms`, `90s`, `30m`, `2h`) into milliseconds; throws naming the accepted forms. */
export function parseDuration(text: string): number {
  const ms = parseAmount(text, TIMER);
  if (ms === undefined) {
    throw new CapiError(ErrorCode.ConfigInvalid, `invalid duration "${text}": use ${TIMER.forms}`);
  }
  return ms;
}

/** An amount of the scale within [min, max]; `problem` is the whole message for anything else. */
function amountSchema(scale: Scale, min: number, max: number, problem: (parsed: boolean) => string) {
  return z.string().transform((text, ctx) => {
    const amount = parseAmount(text, scale);
    if (amount === undefined || amount < min || amount > max) {
      ctx.addIssue({ code: 'custom', message: problem(amount !== undefined) });
      return z.NEVER;
    }
    return amount;
  });
}

/** A duration a Node timer can wait for, in ms: more than 0, at most MAX_TIMER_MS. */
export function timerSchema(example: string) {
  return amountSchema(TIMER, 1, MAX_TIMER_MS, (parsed) =>
    parsed
      ? `must be more than 0 and at most 596h (Node timers cannot wait longer), e.g. ${example}`
      : `must be a duration: ${TIMER.forms}`,
  );
}

/** How long Redis keeps a finished run, in ms: Redis expiries, not Node timers, so days and no 24.8-day cap. */
export const retentionSchema = amountSchema(
  RETENTION,
  3_600_000,
  3650 * 86_400_000,
  () => `must be a duration from 1h to 3650d as ${RETENTION.forms}`,
);

/** A size in bytes from 1kb to 512mb. */
export const byteSizeSchema = amountSchema(
  BYTES,
  1024,
  512 * 1024 * 1024,
  () => `must be a size from 1kb to 512mb: ${BYTES.forms}`,
);

/** A whole number 1-1000 (a count of runs, clicks, uploads); `message` says what is counted and the default. */
export function countSchema(message: string) {
  return z
    .string()
    .refine((v) => /^\d{1,4}$/.test(v) && Number(v) >= 1 && Number(v) <= 1000, { error: message })
    .transform(Number);
}
