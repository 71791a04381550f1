/**
 * A recording: what a site's jumphost answered to the read-only runbooks' commands, kept as files a person can
 * review (YAML, outputs as block text). `recording.yaml` says where and when, with which tool versions and the
 * site's public values; `<runbook>.yaml` holds each command's step, exit code and redacted output, in the order
 * they ran. Whatever the redactor would hide was replaced before anything was written (src/redact.ts).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { z } from 'zod';
import { CapiError, ErrorCode } from '../errors.js';
import { JUMPHOST_TOOLS } from '../runbook/tools.js';
import { describeZodIssues } from '../validation.js';

export const RECORDING_FILE = 'recording.yaml';

const ToolSchema = z.strictObject({
  /** Where it was on the PATH commands get; absent when it was not there. */
  path: z.string().exactOptional(),
  version: z.string().exactOptional(),
});

export const RecordingMetaSchema = z.strictObject({
  format: z.literal(1),
  /** The site profile's name. */
  site: z.string().min(1),
  recorded_at: z.string().min(1),
  /** How it was made: `capi-chatops record`, or the document a hand-made one was transcribed from. */
  origin: z.string().min(1),
  tools: z.strictObject(
    Object.fromEntries(JUMPHOST_TOOLS.map((t) => [t, ToolSchema])) as Record<
      (typeof JUMPHOST_TOOLS)[number],
      typeof ToolSchema
    >,
  ),
  /** The site profile's values the runbooks read (no jumphost connection details). */
  profile: z.record(z.string(), z.unknown()),
  /** The runbooks recorded, one `<name>.yaml` each; and those left out, with why. */
  runbooks: z.array(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/)).min(1),
  skipped: z.record(z.string(), z.string()).default({}),
});
export type RecordingMeta = z.infer<typeof RecordingMetaSchema>;

export const RecordedCommandSchema = z.strictObject({
  /** The step that ran it (CAPI_STEP): `mgmt-vm`, or `loop/inner` inside a for_each. */
  step: z.string().min(1),
  /** sha256 of the exact script sent (preamble included): which command of the step it was. */
  script_sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .exactOptional(),
  exit: z.number().int().nullable(),
  timed_out: z.boolean().default(false),
  stdout: z.string().default(''),
  stderr: z.string().default(''),
  /** For a hand-made recording: the passage of the source document this output is transcribed from. */
  source: z.string().exactOptional(),
});
export type RecordedCommand = z.infer<typeof RecordedCommandSchema>;

export const RecordedRunbookSchema = z.strictObject({
  runbook: z.string().min(1),
  /** The runbook's digest when it was recorded (check-recording says when the runbook changed since). */
  digest: z.string().exactOptional(),
  commands: z.array(RecordedCommandSchema),
});
export type RecordedRunbook = z.infer<typeof RecordedRunbookSchema>;

export interface Recording {
  readonly dir: string;
  readonly meta: RecordingMeta;
  readonly runbooks: ReadonlyMap<string, RecordedRunbook>;
}

async function readSchema<T>(file: string, schema: z.ZodType<T>): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `recording file ${file} cannot be read: ${(err as Error).message}`,
    );
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `recording file ${file} is not YAML: ${(err as Error).message}`,
    );
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `recording file ${file} is invalid:\n${describeZodIssues(parsed.error)
        .map((i) => `  - ${i}`)
        .join('\n')}`,
    );
  }
  return parsed.data;
}

export async function readRecording(dir: string): Promise<Recording> {
  const meta = await readSchema(path.join(dir, RECORDING_FILE), RecordingMetaSchema);
  const runbooks = new Map<string, RecordedRunbook>();
  for (const name of meta.runbooks) {
    const file = path.join(dir, `${name}.yaml`);
    const recorded = await readSchema(file, RecordedRunbookSchema);
    if (recorded.runbook !== name) {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        `recording file ${file} holds runbook ${recorded.runbook}, not ${name}`,
      );
    }
    runbooks.set(name, recorded);
  }
  return { dir, meta, runbooks };
}

/** Writes a recording; every output in it must already be redacted. */
export async function writeRecording(
  dir: string,
  meta: RecordingMeta,
  runbooks: readonly RecordedRunbook[],
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const yaml = (v: unknown) => stringify(v, { lineWidth: 0, blockQuote: 'literal' });
  await writeFile(path.join(dir, RECORDING_FILE), yaml(RecordingMetaSchema.parse(meta)));
  for (const rb of runbooks) {
    await writeFile(path.join(dir, `${rb.runbook}.yaml`), yaml(RecordedRunbookSchema.parse(rb)));
  }
}
