import { describe, expect, it } from 'vitest';
import { runServiceSettings } from '../src/cli/service-settings.js';
import { loadConfig } from '../src/config/env.js';

describe('the run settings serve and the terminal both take from the configuration', () => {
  it('should carry every run setting the environment sets', () => {
    const settings = runServiceSettings(
      loadConfig({
        QUEUE_PREFIX: 'capi-site-a',
        APPROVAL_TIMEOUT: '5m',
        CAPI_APPROVERS: 'U0APPROVER',
        CAPI_ALLOW_SELF_APPROVAL: 'true',
        CAPI_TRUST_SLACK_GROUPS: 'true',
        CAPI_READONLY_PER_PERSON: '2',
        CAPI_READONLY_PER_SITE: '7',
        CAPI_READONLY_WINDOW: '90s',
        REDIS_WAIT_REPLICAS: '1',
      }),
    );
    expect(settings).toEqual({
      prefix: 'capi-site-a',
      approvalTimeoutMs: 300_000,
      approvers: ['U0APPROVER'],
      allowSelfApproval: true,
      trustSlackGroups: true,
      readOnlyLimits: { perPerson: 2, perSite: 7, windowMs: 90_000 },
      waitReplicas: 1,
    });
  });
});
