/**
 * A run finishes with the runbook it started with: at submit the run stores a copy of its runbook (the file's
 * text, the scopes and known errors it was compiled with, and its digest), and every resume compiles that
 * copy, never what is on disk now. A runbook deployed in the middle of an incident (a step inserted, renamed
 * or reordered) then changes only the runs started after it.
 */
import { z } from 'zod';
import { CapiError, ErrorCode } from '../errors.js';
import { describeZodIssues } from '../validation.js';
import { compileKnownError, parseRunbook, type RunbookSet } from './load.js';
import type { Runbook } from './model.js';

const FORMAT = 'capi-chatops-runbook/1';

const runbookCopySchema = z.strictObject({
  format: z.literal(FORMAT),
  file: z.string().min(1),
  text: z.string().min(1),
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  scopes: z.array(z.strictObject({ name: z.string(), description: z.string(), preamble: z.string() })),
  knownErrors: z.array(
    z.strictObject({ id: z.string(), source: z.string(), match: z.string(), message: z.string() }),
  ),
});
export type RunbookCopy = z.infer<typeof runbookCopySchema>;

/** What a run stores of its runbook at submit (JSON text). */
export function copyOfRunbook(set: RunbookSet, runbook: Runbook): string {
  const copy: RunbookCopy = {
    format: FORMAT,
    file: runbook.file,
    text: runbook.text,
    digest: runbook.digest,
    scopes: [...set.scopes.values()].map((s) => ({
      name: s.name,
      description: s.description,
      preamble: s.preamble,
    })),
    knownErrors: set.knownErrors.map((k) => ({
      id: k.id,
      source: k.source,
      match: k.match.source,
      message: k.message,
    })),
  };
  return JSON.stringify(copy);
}

/**
 * The runbook a run started with, compiled again from its stored copy. Throws StoredDataInvalid saying why
 * when the copy is not readable, does not compile, or compiles to another digest than the one it was
 * stored with: a run never goes on with a runbook it did not start with.
 */
export function restoreRunbook(stored: string): Runbook {
  let raw: unknown;
  try {
    raw = JSON.parse(stored);
  } catch {
    throw new CapiError(ErrorCode.StoredDataInvalid, 'the stored runbook copy is not JSON');
  }
  const parsed = runbookCopySchema.safeParse(raw);
  if (!parsed.success) {
    throw new CapiError(
      ErrorCode.StoredDataInvalid,
      `the stored runbook copy is not valid: ${describeZodIssues(parsed.error).join('; ')}`,
    );
  }
  const copy = parsed.data;
  let runbook: Runbook;
  try {
    runbook = parseRunbook(
      copy.file,
      copy.text,
      new Map(copy.scopes.map((s) => [s.name, s])),
      copy.knownErrors.map(compileKnownError),
    );
  } catch (err) {
    throw new CapiError(
      ErrorCode.StoredDataInvalid,
      `the stored runbook copy does not compile: ${(err as Error).message}`,
    );
  }
  if (runbook.digest !== copy.digest) {
    throw new CapiError(
      ErrorCode.StoredDataInvalid,
      `the stored runbook copy compiles to digest ${runbook.digest.slice(0, 12)}, not the ${copy.digest.slice(0, 12)} it was stored with`,
    );
  }
  return runbook;
}
