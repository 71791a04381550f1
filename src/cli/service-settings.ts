import type { AppConfig } from '../config/env.js';
import type { RunServiceOptions } from '../service/run-service.js';

/**
 * What the deployment's configuration says about runs, for every front that builds a RunService (serve and the
 * terminal): one place, so that a setting added to the configuration cannot reach one front and not the other.
 */
export function runServiceSettings(
  config: AppConfig,
): Pick<
  RunServiceOptions,
  | 'prefix'
  | 'approvalTimeoutMs'
  | 'approvers'
  | 'allowSelfApproval'
  | 'trustSlackGroups'
  | 'readOnlyLimits'
  | 'waitReplicas'
> {
  return {
    prefix: config.queue.prefix,
    approvalTimeoutMs: config.approval.timeoutMs,
    approvers: config.approval.approvers,
    allowSelfApproval: config.approval.allowSelfApproval,
    trustSlackGroups: config.approval.trustSlackGroups,
    readOnlyLimits: config.readOnlyLimits,
    waitReplicas: config.redis.waitReplicas,
  };
}
