import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { deploymentProblems, loadDeployment } from '../src/config/deployment.js';
import { loadConfig } from '../src/config/env.js';
import { parseSiteProfile, type SiteProfile } from '../src/config/site.js';
import { spawnCollecting } from './support/process.js';
import { REDIS_URL } from './support/redis.js';

const BIN = new URL('../bin/capi-chatops.js', import.meta.url).pathname;
const HOST_KEY = `SHA256:${'q'.repeat(43)}`;
const SECRET = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const TOKEN = ['xoxb', '3333333333', '4444444444444', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');

const siteData = (name: string, jumphost?: Record<string, unknown>) => ({
  name,
  openrc: '~/admin-openrc',
  capi_project_id: '0123456789abcdef0123456789abcdef',
  mgmt_server: 'capi-mgmt-v2',
  mgmt_fip: '192.0.2.40',
  mgmt_ssh_user: 'ubuntu',
  mgmt_ssh_key: '~/.ssh/id_ed25519',
  mgmt_kubeconfig: '~/capi-mgmt.kubeconfig',
  workload_cluster: 'capi-test-1',
  ...(jumphost ? { jumphost } : {}),
});
const pinned = { host: '192.0.2.5', user: 'ops', private_key_path: '/etc/capi/id', host_key: HOST_KEY };
const sites = (...list: SiteProfile[]) => new Map(list.map((s) => [s.name, s]));
/** What every agent needs to judge decisions: its approvers and serve's public key. */
const AGENT_ENV = {
  CAPI_APPROVERS: 'U0APPROVER',
  CAPI_DECISION_VERIFY_KEY: '/etc/capi-chatops/decision.pub',
};

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('the deployment checks at start-up', () => {
  it('should find nothing wrong when every list, token and host key is in place', () => {
    const config = loadConfig({
      CAPI_OPERATORS: 'U0OPERATOR',
      CAPI_APPROVERS: 'S0APPROVERS',
      CAPI_TRUST_SLACK_GROUPS: 'true',
      CAPI_DECISION_SIGNING_KEY: '/etc/capi-chatops/decision.key',
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_SIGNING_SECRET: SECRET,
    });
    expect(
      deploymentProblems(config, sites(parseSiteProfile(siteData('lab1', pinned), 't')), 'serve'),
    ).toEqual([]);
  });

  it('should accept Socket Mode without a signing secret and an agent without any Slack settings', () => {
    const socket = loadConfig({
      CAPI_OPERATORS: 'U0OPERATOR',
      CAPI_APPROVERS: 'U0APPROVER',
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_APP_TOKEN: ['xapp', '1', 'A01', 'abc'].join('-'),
      CAPI_DECISION_SIGNING_KEY: '/etc/capi-chatops/decision.key',
    });
    expect(deploymentProblems(socket, new Map(), 'serve')).toEqual([]);
    expect(
      deploymentProblems(
        loadConfig(AGENT_ENV),
        sites(parseSiteProfile(siteData('lab1', pinned), 't')),
        'agent',
      ),
    ).toEqual([]);
  });

  it('should refuse an Alertmanager webhook token without an ops port: the webhook is never served on PORT', () => {
    const env = {
      CAPI_OPERATORS: 'U0OPERATOR',
      CAPI_APPROVERS: 'S0APPROVERS',
      CAPI_TRUST_SLACK_GROUPS: 'true',
      CAPI_DECISION_SIGNING_KEY: '/etc/capi-chatops/decision.key',
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_SIGNING_SECRET: SECRET,
      ALERT_WEBHOOK_TOKEN: 'a'.repeat(32),
    };
    const site = sites(parseSiteProfile(siteData('lab1', pinned), 't'));
    expect(deploymentProblems(loadConfig(env), site, 'serve')).toEqual([
      expect.stringMatching(/^ALERT_WEBHOOK_TOKEN is set but METRICS_PORT is not: .*set METRICS_PORT/),
    ]);
    expect(deploymentProblems(loadConfig({ ...env, METRICS_PORT: '9464' }), site, 'serve')).toEqual([]);
  });

  it('should let JUMPHOST_HOST_KEY pin the host key of a site whose profile does not', () => {
    const config = loadConfig({
      JUMPHOST_HOST: '192.0.2.5',
      JUMPHOST_USER: 'ops',
      JUMPHOST_PRIVATE_KEY_PATH: '/etc/capi/id',
      JUMPHOST_HOST_KEY: HOST_KEY,
      ...AGENT_ENV,
    });
    expect(deploymentProblems(config, sites(parseSiteProfile(siteData('lab1'), 't')), 'agent')).toEqual([]);
  });

  it('should refuse user groups in the rules unless the deployment trusts Slack groups', () => {
    const config = loadConfig({
      ...AGENT_ENV,
      CAPI_APPROVERS: 'U0APPROVER,S0APPROVERS',
      CAPI_OPERATORS: 'S0ONCALL01',
    });
    expect(deploymentProblems(config, new Map(), 'agent')).toEqual([
      expect.stringMatching(
        /^CAPI_APPROVERS names user groups \(S0APPROVERS\) and CAPI_TRUST_SLACK_GROUPS is not true: by default any workspace member can edit a user group/,
      ),
      expect.stringMatching(/^CAPI_OPERATORS names user groups \(S0ONCALL01\)/),
    ]);
    const trusted = loadConfig({
      ...AGENT_ENV,
      CAPI_APPROVERS: 'S0APPROVERS',
      CAPI_TRUST_SLACK_GROUPS: 'true',
    });
    expect(deploymentProblems(trusted, new Map(), 'agent')).toEqual([]);
  });

  it('should refuse an agent that could verify no decision, and one that judges against no approvers', () => {
    expect(deploymentProblems(loadConfig({}), new Map(), 'agent')).toEqual([
      expect.stringMatching(/^CAPI_APPROVERS is empty: this agent judges every decision against it/),
      expect.stringMatching(/^CAPI_DECISION_VERIFY_KEY is not set: this agent could verify no decision/),
    ]);
  });

  it("should refuse serve's decision key when other accounts can read it, at start-up with the rest", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capi-deploy-'));
    const key = path.join(dir, 'decision.key');
    await writeFile(key, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o644,
    });
    await chmod(key, 0o644);
    const err = await loadDeployment('serve', async () => new Map(), {
      CAPI_OPERATORS: 'U0OPERATOR',
      CAPI_APPROVERS: 'U0APPROVER',
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_SIGNING_SECRET: SECRET,
      CAPI_DECISION_SIGNING_KEY: key,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /CAPI_DECISION_SIGNING_KEY: .*decision\.key can be read by other accounts \(mode 644\): chmod 600 it/,
    );
    await chmod(key, 0o600);
    const ok = await loadDeployment('serve', async () => new Map(), {
      CAPI_OPERATORS: 'U0OPERATOR',
      CAPI_APPROVERS: 'U0APPROVER',
      SLACK_BOT_TOKEN: TOKEN,
      SLACK_SIGNING_SECRET: SECRET,
      CAPI_DECISION_SIGNING_KEY: key,
    });
    // serve's own agent verifies with the public half of serve's key.
    expect(ok.keys.signer).toBeDefined();
    expect(ok.keys.verifiers.service?.asymmetricKeyType).toBe('ed25519');
  });

  it('should refuse to start serve and name every problem at once, with exit 2, when the deployment cannot work', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capi-deploy-'));
    const good = path.join(dir, 'good.yaml');
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(good, stringify(siteData('lab1', pinned)));
    await writeFile(bad, stringify(siteData('lab2', { ...pinned, host_key: undefined })));
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir };
    const r = await spawnCollecting(process.execPath, [BIN, 'serve', '--site', good, '--site', bad], {
      env: {
        ...env,
        REDIS_URL,
        SLACK_BOT_TOKEN: TOKEN,
        CAPI_OPERATORS: '',
        LOG_LEVEL: 'silent',
      },
    }).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('this serve deployment is invalid:');
    expect(r.stderr).toMatch(/CAPI_OPERATORS is empty: nobody could start or cancel a run/);
    expect(r.stderr).toMatch(/CAPI_APPROVERS is empty: every destructive step would be refused/);
    expect(r.stderr).toMatch(/SLACK_SIGNING_SECRET is not set: .*or set SLACK_APP_TOKEN/);
    expect(r.stderr).toMatch(
      /CAPI_DECISION_SIGNING_KEY is not set: serve signs every decision taken in Slack with it/,
    );
    expect(r.stderr).toMatch(/site lab2: missing JUMPHOST_HOST_KEY \(or jumphost.host_key\)/);
    expect(r.stderr).not.toMatch(/site lab1/);
    expect(r.stdout).not.toMatch(/capi-chatops ready/);
  });

  it('should name secrets of the wrong shape with every other problem at once, without echoing them', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capi-deploy-'));
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, stringify(siteData('lab2', { ...pinned, host_key: undefined })));
    const r = await spawnCollecting(process.execPath, [BIN, 'serve', '--site', bad], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        SLACK_BOT_TOKEN: 'xoxp-1234-leaked',
        SLACK_SIGNING_SECRET: 'NOT-HEX-leaked',
        SLACK_APP_TOKEN: 'xoxb-leaked',
        CAPI_APPROVERS: 'U0APPROVER',
      },
    }).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('this serve deployment is invalid:');
    expect(r.stderr).toMatch(/SLACK_BOT_TOKEN: must be the Bot User OAuth Token starting with xoxb-/);
    expect(r.stderr).toMatch(/SLACK_SIGNING_SECRET: must be the Signing Secret .* 32 lowercase hex/);
    expect(r.stderr).toMatch(/SLACK_APP_TOKEN: must be an app-level token starting with xapp-/);
    expect(r.stderr).toMatch(/CAPI_OPERATORS is empty/);
    expect(r.stderr).toMatch(/site lab2: missing JUMPHOST_HOST_KEY/);
    // A variable of the wrong shape is named once, not again as missing.
    expect(r.stderr).not.toMatch(/SLACK_BOT_TOKEN is not set|SLACK_SIGNING_SECRET is not set/);
    expect(r.stderr).not.toContain('leaked');
  });

  it('should refuse to start an agent whose site has no pinned jumphost host key', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capi-deploy-'));
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(
      bad,
      stringify(siteData('lab2', { host: '192.0.2.5', user: 'ops', private_key_path: '/k' })),
    );
    const r = await spawnCollecting(process.execPath, [BIN, 'agent', '--site', bad], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', REDIS_URL },
    }).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /this agent deployment is invalid:\n[\s\S]* {2}- site lab2: missing JUMPHOST_HOST_KEY/,
    );
  });
});
