import { describe, expect, it } from 'vitest';
import { createLineRedactor, REDACTED, redactText } from '../src/redact.js';
import { SECRET_CORPUS } from './support/secret-corpus.js';

describe('redactText: the corpus of real-shaped outputs', () => {
  it.each(SECRET_CORPUS.map((e) => [e.name, e] as const))(
    'should hide every secret and keep what operators need when the output is %s',
    (_name, entry) => {
      const out = redactText(entry.output);
      for (const secret of entry.secrets) expect(out, `secret ${secret} in\n${out}`).not.toContain(secret);
      for (const keep of entry.keep) expect(out, `${keep} lost in\n${out}`).toContain(keep);
      if (entry.secrets.length > 0) expect(out).toContain(REDACTED);
      else expect(out).toBe(entry.output);
      expect(out.split('\n')).toHaveLength(entry.output.split('\n').length);
    },
  );

  it.each(SECRET_CORPUS.map((e) => [e.name, e] as const))(
    'should hide the same things when %s arrives one line at a time',
    (_name, entry) => {
      const redact = createLineRedactor();
      const streamed = entry.output
        .split('\n')
        .map((line) => redact(line))
        .join('\n');
      expect(streamed).toBe(redactText(entry.output));
    },
  );

  it('should hide every secret when all the outputs arrive one after another in one stream', () => {
    const all = SECRET_CORPUS.map((e) => e.output).join('\n');
    const redact = createLineRedactor();
    const out = all
      .split('\n')
      .map((line) => redact(line))
      .join('\n');
    for (const secret of SECRET_CORPUS.flatMap((e) => e.secrets)) expect(out).not.toContain(secret);
    for (const keep of SECRET_CORPUS.flatMap((e) => e.keep)) expect(out).toContain(keep);
    expect(out).toContain('| Type |');
  });

  it.each(SECRET_CORPUS.map((e) => [e.name, e] as const))('should be idempotent on %s', (_name, entry) => {
    const once = redactText(entry.output);
    expect(redactText(once)).toBe(once);
  });
});
