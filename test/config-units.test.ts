import { describe, expect, it } from 'vitest';
import {
  BYTES,
  byteSizeSchema,
  countSchema,
  MAX_TIMER_MS,
  parseAmount,
  parseDuration,
  RETENTION,
  retentionSchema,
  TIMER,
  timerSchema,
} from '../src/config/units.js';
import { CapiError, ErrorCode } from '../src/errors.js';

/** The one issue message a schema gives for `text`, or undefined when it accepts it. */
function problem(
  schema: { safeParse(v: string): { success: boolean; error?: { issues: { message: string }[] } } },
  text: string,
) {
  const result = schema.safeParse(text);
  return result.success ? undefined : result.error?.issues.map((i) => i.message).join('; ');
}

describe('the units grammar', () => {
  it.each([
    ['500ms', TIMER, 500],
    ['90s', TIMER, 90_000],
    ['2h', TIMER, 7_200_000],
    ['0s', TIMER, 0],
    ['30d', RETENTION, 30 * 86_400_000],
    ['90m', RETENTION, 90 * 60_000],
    ['4mb', BYTES, 4 * 1024 * 1024],
    ['4MB', BYTES, 4 * 1024 * 1024],
    ['16Kb', BYTES, 16 * 1024],
    ['2048', BYTES, 2048],
    ['2048b', BYTES, 2048],
  ])('should read %j as its amount in the base unit', (text, scale, amount) => {
    expect(parseAmount(text, scale)).toBe(amount);
  });

  it.each([
    ['30', TIMER, 'a bare number is no duration'],
    ['2d', TIMER, 'a timer takes no days'],
    ['30M', TIMER, 'M is not minutes'],
    ['30s', RETENTION, 'retention takes no seconds'],
    ['1.5h', TIMER, 'no fractions'],
    ['1h30m', TIMER, 'no compounds'],
    ['5 m', TIMER, 'no space inside'],
    ['-5s', TIMER, 'no sign'],
    ['4gb', BYTES, 'no gigabytes'],
    ['', BYTES, 'empty'],
    ['99999999999999999999h', TIMER, 'past what a number holds exactly'],
  ])('should refuse %j (%s)', (text, scale) => {
    expect(parseAmount(text, scale)).toBeUndefined();
  });
});

describe('parseDuration', () => {
  it('should throw a config error with the accepted forms and no more of the text than it was given', () => {
    let thrown: unknown;
    try {
      parseDuration('2d');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CapiError);
    expect((thrown as CapiError).code).toBe(ErrorCode.ConfigInvalid);
    expect((thrown as CapiError).message).toBe(
      'invalid duration "2d": use a whole number followed by ms, s, m or h, e.g. 500ms, 90s, 30m or 2h',
    );
  });
});

describe('the amount schemas', () => {
  it('should tell a timer that is no duration from one that is out of range', () => {
    const timer = timerSchema('30m');
    expect(timer.parse('30m')).toBe(1_800_000);
    expect(problem(timer, '30 minutes')).toBe(
      'must be a duration: a whole number followed by ms, s, m or h, e.g. 500ms, 90s, 30m or 2h',
    );
    expect(problem(timer, '0ms')).toBe(
      'must be more than 0 and at most 596h (Node timers cannot wait longer), e.g. 30m',
    );
    expect(problem(timer, '597h')).toContain('at most 596h');
    expect(timer.parse(`${MAX_TIMER_MS}ms`)).toBe(MAX_TIMER_MS);
  });

  it('should keep retention between 1h and 3650d and say the forms when it is not', () => {
    expect(retentionSchema.parse('1h')).toBe(3_600_000);
    expect(retentionSchema.parse('3650d')).toBe(3650 * 86_400_000);
    for (const text of ['59m', '3651d', '30', '30s']) {
      expect(problem(retentionSchema, text)).toBe(
        'must be a duration from 1h to 3650d as a whole number followed by m, h or d, e.g. 30d',
      );
    }
  });

  it('should keep sizes between 1kb and 512mb and say the forms when they are not', () => {
    expect(byteSizeSchema.parse('1kb')).toBe(1024);
    expect(byteSizeSchema.parse('512mb')).toBe(512 * 1024 * 1024);
    for (const text of ['1023', '513mb', '4gb', 'big']) {
      expect(problem(byteSizeSchema, text)).toBe(
        'must be a size from 1kb to 512mb: a whole number of bytes, or followed by kb or mb, e.g. 4mb',
      );
    }
  });

  it('should take counts 1-1000 and give the caller its own message otherwise', () => {
    const count = countSchema('must be a whole number 1-1000 of runs (default 2)');
    expect(count.parse('1')).toBe(1);
    expect(count.parse('1000')).toBe(1000);
    for (const text of ['0', '1001', 'ten', '2.5', '-1']) {
      expect(problem(count, text)).toBe('must be a whole number 1-1000 of runs (default 2)');
    }
  });
});
