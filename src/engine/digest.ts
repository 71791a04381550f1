import { createHash } from 'node:crypto';

/**
 * What an approval authorizes, as one hash: the runbook's content, the step and the item's identity (never
 * its position: see slot.ts), the exact script (scope preamble included), every value bound into its
 * environment and the targets the approver saw.
 */
export function actionDigest(action: {
  readonly runbook: string;
  readonly stepId: string;
  readonly item: string | null;
  readonly script: string;
  readonly env: Readonly<Record<string, string>>;
  readonly targets: readonly string[];
}): string {
  const env = Object.fromEntries(Object.entries(action.env).sort(([a], [b]) => a.localeCompare(b)));
  return createHash('sha256')
    .update(JSON.stringify({ ...action, env }))
    .digest('hex');
}
