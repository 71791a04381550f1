/**
 * What `capi-chatops doctor` and `/capi doctor` find: per site, one line per check, each ok / warn / fail
 * with what was seen and, when it is not ok, the fix in words. The shape crosses Redis (the agent's doctor
 * job, the last result per site for the Home tab), so it is a schema, parsed wherever it is read.
 */
import { z } from 'zod';

export const DOCTOR_LEVELS = ['ok', 'warn', 'fail'] as const;
export type DoctorLevel = (typeof DOCTOR_LEVELS)[number];

export const DoctorLineSchema = z.strictObject({
  /** What was checked, short: `jumphost host key`, `tool juju`, `redis persistence`, `slack channel C0123ABCD`. */
  check: z.string().min(1).max(80),
  level: z.enum(DOCTOR_LEVELS),
  /** What was seen (redacted: outputs of the jumphost's commands may be quoted). */
  detail: z.string().max(1500),
  /** What to do about it, when it is not ok. */
  fix: z.string().min(1).max(1500).exactOptional(),
});
export type DoctorLine = z.infer<typeof DoctorLineSchema>;

export const DoctorReportSchema = z.strictObject({
  site: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/),
  /** ISO time the checks finished. */
  at: z.string(),
  lines: z.array(DoctorLineSchema).max(100),
});
export type DoctorReport = z.infer<typeof DoctorReportSchema>;

/** What the agent's doctor job returns: the jumphost's and Redis's lines, or why it could not run. */
export const DoctorResultSchema = z.union([
  z.strictObject({ lines: z.array(DoctorLineSchema).max(80) }),
  z.strictObject({ error: z.string().min(1).max(500) }),
]);
export type DoctorResult = z.infer<typeof DoctorResultSchema>;

const RANK: Readonly<Record<DoctorLevel, number>> = { ok: 0, warn: 1, fail: 2 };

export function worstLevel(lines: readonly DoctorLine[]): DoctorLevel {
  return lines.reduce<DoctorLevel>((w, l) => (RANK[l.level] > RANK[w] ? l.level : w), 'ok');
}

/** 0 all ok, 1 a warning, 2 a failure: for CI and cron. */
export function doctorExitCode(level: DoctorLevel): 0 | 1 | 2 {
  return RANK[level] as 0 | 1 | 2;
}

/** `2 fail, 1 warn, 14 ok`, worst first, zero counts left out. */
export function countsText(lines: readonly DoctorLine[]): string {
  return (['fail', 'warn', 'ok'] as const)
    .map((level) => [level, lines.filter((l) => l.level === level).length] as const)
    .filter(([, n]) => n > 0)
    .map(([level, n]) => `${n} ${level}`)
    .join(', ');
}

export const line = (check: string, level: DoctorLevel, detail: string, fix?: string): DoctorLine => ({
  check: check.slice(0, 80),
  level,
  detail: detail.slice(0, 1500),
  ...(fix !== undefined && level !== 'ok' ? { fix: fix.slice(0, 1500) } : {}),
});
