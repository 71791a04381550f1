import { describe, expect, it } from 'vitest';
import { createLineRedactor, REDACTED, REDACTED_PRIVATE_KEY, redactText } from '../src/redact.js';
import { fake, PEM, pem, slackBot } from './support/secrets.js';

// Token-shaped samples are assembled at run time so that secret scanners (GitHub push protection, gitleaks)
// do not flag this file. They are fake: deterministic characters, never issued by any service.
const base64url = (text: string) => Buffer.from(text).toString('base64url');

const slackUser = ['xoxp', '1234567890', '1234567890123', '1234567890123', fake(32, 4)].join('-');
const slackWorkspace = ['xoxa', '2', '1234567890', fake(24, 5)].join('-');
const slackRefresh = ['xoxr', '1234567890', fake(30, 6)].join('-');
const slackLegacy = ['xoxs', '1234567890', fake(20, 7)].join('-');
const slackRotated = `xoxe.${['xoxp', '1', fake(40, 8)].join('-')}`;
const slackApp = ['xapp', '1', 'A0123ABCDEF', '1234567890123', fake(64, 9)].join('-');
const vaultToken = `hv${'s.'}${fake(91, 10)}`;
const legacyVaultToken = `s${'.'}${fake(24, 11)}`;
const jwt = [
  base64url('{"alg":"RS256","kid":"k1"}'),
  base64url('{"iss":"kubernetes/serviceaccount","sub":"system:serviceaccount:kube-system:capi"}'),
  base64url(fake(64, 12)),
].join('.');
const maasKey = `${fake(18, 13)}:${fake(18, 14)}:${fake(32, 15)}`;
const fernet = `gAAAAA${fake(176, 16)}`;

// OpenSSH's own format cannot be produced by node:crypto; this has its shape (header `openssh-key-v1\0`).
const opensshKey = [
  PEM.begin.OPENSSH,
  `b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW${fake(6, 17)}`,
  `QyNTUxOQAAACB${fake(57, 18)}`,
  `AAAEC${fake(65, 19)}`,
  PEM.end.OPENSSH,
].join('\n');

const certificate = [
  '-----BEGIN CERTIFICATE-----',
  `MIIBszCCAVmgAwIBAgIUY${fake(43, 20)}`,
  `BAMMCmt1YmVybmV0ZXMwHhcNMjQwMTAxMDAwMDAwWhcNMzQwMTAxMDAwMDAwWjAV${fake(0)}`,
  '-----END CERTIFICATE-----',
].join('\n');

function bodyLines(key: string): string[] {
  return key
    .trim()
    .split('\n')
    .filter((line) => !line.startsWith('-----'));
}

describe('redactText: PEM private keys', () => {
  it.each(['rsa', 'pkcs8', 'ec', 'encrypted'] as const)(
    'should hide every body line and keep BEGIN/END and the line count when the output holds a %s key',
    (kind) => {
      const key = pem(kind).trim();
      const text = `$ cat ~/.ssh/id\n${key}\n$ echo done`;
      const out = redactText(text);
      for (const line of bodyLines(key)) expect(out).not.toContain(line);
      const outLines = out.split('\n');
      expect(outLines).toHaveLength(text.split('\n').length);
      expect(outLines[0]).toBe('$ cat ~/.ssh/id');
      expect(outLines[1]).toBe(key.split('\n')[0]);
      expect(outLines[2]).toBe(REDACTED_PRIVATE_KEY);
      expect(outLines.at(-2)).toBe(key.split('\n').at(-1));
      expect(outLines.at(-1)).toBe('$ echo done');
    },
  );

  it('should hide the body when the key is in OpenSSH format', () => {
    const out = redactText(opensshKey);
    expect(out).toBe(
      [
        PEM.begin.OPENSSH,
        REDACTED_PRIVATE_KEY,
        REDACTED_PRIVATE_KEY,
        REDACTED_PRIVATE_KEY,
        PEM.end.OPENSSH,
      ].join('\n'),
    );
  });

  it('should leave the text unchanged when the PEM block is a certificate', () => {
    expect(redactText(certificate)).toBe(certificate);
  });

  it('should hide the key and keep the rest of the line when a JSON string holds it with escaped newlines', () => {
    const key = pem('rsa').trim();
    const line = `{"name":"jumphost","private_key":${JSON.stringify(`${key}\n`)},"user":"ubuntu"}`;
    const out = redactText(line);
    for (const body of bodyLines(key)) expect(out).not.toContain(body);
    expect(out).toBe(
      `{"name":"jumphost","private_key":"${PEM.begin.RSA}${REDACTED_PRIVATE_KEY}` +
        `${PEM.end.RSA}\\n","user":"ubuntu"}`,
    );
  });

  it('should hide everything after BEGIN when the output was cut before the END line', () => {
    const key = pem('pkcs8').trim();
    const truncated = key.split('\n').slice(0, 5).join('\n');
    const out = redactText(`${truncated}\nnext line`);
    for (const body of bodyLines(truncated)) expect(out).not.toContain(body);
    expect(out.split('\n').at(-1)).toBe(REDACTED_PRIVATE_KEY);
  });

  it('should keep the indentation when the key is a YAML block scalar', () => {
    const key = pem('ec').trim();
    const yaml = `ssh:\n  key: |\n${key
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n')}\n  user: ubuntu`;
    const out = redactText(yaml).split('\n');
    expect(out[2]).toBe(`    ${PEM.begin.EC}`);
    expect(out[3]).toBe(`    ${REDACTED_PRIVATE_KEY}`);
    expect(out.at(-1)).toBe('  user: ubuntu');
  });
});

describe('createLineRedactor', () => {
  it('should carry the PEM state across calls when lines arrive one at a time', () => {
    const key = pem('rsa').trim();
    const lines = ['before', ...key.split('\n'), 'after OS_PASSWORD=hunter2'];
    const redact = createLineRedactor();
    const streamed = lines.map((line) => redact(line));
    expect(streamed).toHaveLength(lines.length);
    expect(streamed[0]).toBe('before');
    expect(streamed.slice(2, -2).every((line) => line === REDACTED_PRIVATE_KEY)).toBe(true);
    expect(streamed.at(-1)).toBe(`after OS_PASSWORD=${REDACTED}`);
    expect(streamed.join('\n')).toBe(redactText(lines.join('\n')));
  });

  it('should not share state between redactors when two streams are redacted at once', () => {
    const a = createLineRedactor();
    const b = createLineRedactor();
    expect(a(PEM.begin.RSA)).toBe(PEM.begin.RSA);
    expect(b('MIIEpAIBAAKCAQEA plain stdout')).toBe('MIIEpAIBAAKCAQEA plain stdout');
    expect(a('MIIEpAIBAAKCAQEA')).toBe(REDACTED_PRIVATE_KEY);
  });

  it('should keep carriage returns when the output has CRLF line endings', () => {
    expect(redactText('OS_PASSWORD=hunter2\r\nok\r\n')).toBe(`OS_PASSWORD=${REDACTED}\r\nok\r\n`);
  });
});

describe('redactText: Slack tokens', () => {
  it.each([
    ['bot', slackBot],
    ['user', slackUser],
    ['workspace', slackWorkspace],
    ['refresh', slackRefresh],
    ['legacy', slackLegacy],
    ['rotated', slackRotated],
    ['app-level', slackApp],
  ])('should replace the whole token when the text holds a %s token', (_kind, token) => {
    expect(redactText(`posting with ${token} to #ops`)).toBe(`posting with ${REDACTED} to #ops`);
  });
});

describe('redactText: Vault', () => {
  it('should replace the token when the text holds an hvs. service token', () => {
    expect(redactText(`VAULT_TOKEN is ${vaultToken}.`)).toBe(`VAULT_TOKEN is ${REDACTED}.`);
  });

  it('should replace the token when the text holds a legacy s. token', () => {
    expect(redactText(`login ${legacyVaultToken} ok`)).toBe(`login ${REDACTED} ok`);
  });

  it('should leave text unchanged when s. is followed by a short word or a dotted path', () => {
    const text = 'jsonpath s.t and .status.ready and pods.v1 and s.AbCdEfGhIjKlMnOp';
    expect(redactText(text)).toBe(text);
  });

  it('should hide every unseal key and the root token and keep the labels when vault init prints them', () => {
    const keys = [1, 2, 3, 4, 5].map((i) => Buffer.from(fake(33, i * 3)).toString('base64'));
    const output = [
      ...keys.map((key, i) => `Unseal Key ${i + 1}: ${key}`),
      '',
      `Initial Root Token: ${vaultToken}`,
      '',
      'Vault initialized with 5 key shares and a key threshold of 3.',
    ].join('\n');
    const out = redactText(output);
    for (const key of keys) expect(out).not.toContain(key);
    expect(out).not.toContain(vaultToken);
    expect(out.split('\n')).toEqual([
      ...keys.map((_key, i) => `Unseal Key ${i + 1}: ${REDACTED}`),
      '',
      `Initial Root Token: ${REDACTED}`,
      '',
      'Vault initialized with 5 key shares and a key threshold of 3.',
    ]);
  });

  it('should hide the key arrays and the root token when vault init prints JSON', () => {
    const b64 = [1, 2].map((i) => Buffer.from(fake(32, i)).toString('base64'));
    const hex = [1, 2].map((i) => Buffer.from(fake(32, i)).toString('hex'));
    const output = JSON.stringify(
      { unseal_keys_b64: b64, unseal_keys_hex: hex, unseal_shares: 2, root_token: vaultToken },
      null,
      2,
    );
    const out = redactText(output);
    for (const secret of [...b64, ...hex, vaultToken]) expect(out).not.toContain(secret);
    expect(out).toContain('"unseal_shares": 2');
    expect(out).toContain(`    "${REDACTED}",`);
    expect(out.split('\n')).toHaveLength(output.split('\n').length);
  });

  it('should hide the list items when vault init prints YAML', () => {
    const output = 'unseal_keys_hex:\n- 0a1b2c3d4e\n- 5f6a7b8c9d\nunseal_shares: 2\nunseal_threshold: 1';
    expect(redactText(output)).toBe(
      `unseal_keys_hex:\n- ${REDACTED}\n- ${REDACTED}\nunseal_shares: 2\nunseal_threshold: 1`,
    );
  });
});

describe('redactText: OpenStack credentials', () => {
  it('should hide the values and keep the names when an openrc file is printed', () => {
    const openrc = [
      'export OS_AUTH_URL=https://keystone.example.org:5000/v3',
      'export OS_USERNAME="admin"',
      'export OS_PASSWORD="c0rrect horse"',
      "export OS_APPLICATION_CREDENTIAL_SECRET='Zx9-secret_value'",
      'export OS_TOKEN=gAAAAAshort',
      'OS_PASSWORD=hunter2',
      'export OS_PASSWORD=$OS_PASSWORD_INPUT',
    ].join('\n');
    expect(redactText(openrc)).toBe(
      [
        'export OS_AUTH_URL=https://keystone.example.org:5000/v3',
        'export OS_USERNAME="admin"',
        `export OS_PASSWORD="${REDACTED}"`,
        `export OS_APPLICATION_CREDENTIAL_SECRET='${REDACTED}'`,
        `export OS_TOKEN=${REDACTED}`,
        `OS_PASSWORD=${REDACTED}`,
        'export OS_PASSWORD=$OS_PASSWORD_INPUT',
      ].join('\n'),
    );
  });

  it('should hide the value when a command line passes --password or --os-password', () => {
    expect(redactText('+ openstack --os-password hunter2 server list')).toBe(
      `+ openstack --os-password ${REDACTED} server list`,
    );
    expect(redactText("maas login --password='p@ss word' admin")).toBe(
      `maas login --password='${REDACTED}' admin`,
    );
    expect(redactText('kubeadm join --token abcdef.0123456789abcdef 10.0.0.5:6443')).toBe(
      `kubeadm join --token ${REDACTED} 10.0.0.5:6443`,
    );
  });

  it('should leave shell variable references readable when a script passes secrets from the environment', () => {
    const script =
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
      'openstack --os-password "$OS_PASSWORD" --os-token ${OS_TOKEN} && : "${OS_PASSWORD:?unset}"';
    expect(redactText(script)).toBe(script);
  });

  it('should hide the secret cell when openstack prints a table', () => {
    const table = [
      '+--------------+----------------------------------+',
      '| Field        | Value                            |',
      '+--------------+----------------------------------+',
      '| id           | 0f1e2d3c4b5a69788796a5b4c3d2e1f0 |',
      '| name         | capi-ci                          |',
      `| secret       | ${fake(32, 21)} |`,
      '+--------------+----------------------------------+',
    ];
    const out = redactText(table.join('\n')).split('\n');
    expect(out[5]).toBe(`| secret       | ${REDACTED.padEnd(32)} |`);
    expect(out.filter((_l, i) => i !== 5)).toEqual(table.filter((_l, i) => i !== 5));
  });

  it('should hide the Fernet token when openstack token issue prints it under id', () => {
    expect(redactText(`id: ${fernet}\nproject_id: 3f1a7a3c1a8e4f0e9c7d2b5a6e4f3c2d`)).toBe(
      `id: ${REDACTED}\nproject_id: 3f1a7a3c1a8e4f0e9c7d2b5a6e4f3c2d`,
    );
  });
});

describe('redactText: key/value secrets', () => {
  it.each([
    ['password: hunter2', `password: ${REDACTED}`],
    ['  password: correct horse battery staple', `  password: ${REDACTED}`],
    ['"password": "hunter2",', `"password": "${REDACTED}",`],
    ['{"password":"a\\"b","user":"bob"}', `{"password":"${REDACTED}","user":"bob"}`],
    ['{"token":12345,"user":"bob"}', `{"token":${REDACTED},"user":"bob"}`],
    [
      "{'client_secret': 's3cr3t', 'region': 'RegionOne'}",
      `{'client_secret': '${REDACTED}', 'region': 'RegionOne'}`,
    ],
    ['secret: abc123', `secret: ${REDACTED}`],
    ['token: abc.def', `token: ${REDACTED}`],
    ['api_key: k-123', `api_key: ${REDACTED}`],
    ['apikey=k-123', `apikey=${REDACTED}`],
    ['api-key = k-123', `api-key = ${REDACTED}`],
    ['X-Auth-Token: abc123', `X-Auth-Token: ${REDACTED}`],
    ['SLACK_SIGNING_SECRET=0123abcd', `SLACK_SIGNING_SECRET=${REDACTED}`],
    ['level=info token=abc user=bob', `level=info token=${REDACTED} user=bob`],
  ])('should keep the key and hide the value when the text is %j', (text, expected) => {
    expect(redactText(text)).toBe(expected);
  });

  it('should hide the lines of a block scalar when a secret key uses | or >', () => {
    expect(redactText('password: |\n  line one\n  line two\nuser: bob')).toBe(
      `password: |\n  ${REDACTED}\n  ${REDACTED}\nuser: bob`,
    );
  });

  it('should leave placeholder values alone when a secret key holds a boolean, null or an empty string', () => {
    const text = 'automountServiceAccountToken: false\npassword: null\ntoken: ""\nsecret: ~';
    expect(redactText(text)).toBe(text);
  });

  it('should keep the scheme and hide the credentials when an Authorization header is printed', () => {
    expect(redactText('Authorization: Basic dXNlcjpodW50ZXIy')).toBe(`Authorization: Basic ${REDACTED}`);
    expect(redactText('curl -H "Authorization: Bearer abc123" https://api')).toBe(
      `curl -H "Authorization: Bearer ${REDACTED}" https://api`,
    );
    expect(redactText(`< authorization: token ${fake(40, 22)}`)).toBe(`< authorization: token ${REDACTED}`);
  });

  it('should hide the password when a URL carries user info', () => {
    expect(redactText('connecting to rediss://default:hunter2@redis.example.org:6380/0')).toBe(
      `connecting to rediss://default:${REDACTED}@redis.example.org:6380/0`,
    );
  });
});

describe('redactText: kubeconfig and tokens', () => {
  const kubeconfig = [
    'apiVersion: v1',
    'clusters:',
    '- cluster:',
    `    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t${fake(40, 23)}`,
    '    server: https://10.0.0.48:6443',
    '  name: kube-abc12',
    'users:',
    '- name: kube-abc12-admin',
    '  user:',
    `    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t${fake(40, 24)}`,
    `    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo${fake(40, 25)}`,
    '- name: capi-sa',
    '  user:',
    `    token: ${jwt}`,
  ];

  it('should hide client-key-data and the token and keep certificates when a kubeconfig is printed', () => {
    const out = redactText(kubeconfig.join('\n')).split('\n');
    expect(out[3]).toBe(kubeconfig[3]);
    expect(out[9]).toBe(kubeconfig[9]);
    expect(out[10]).toBe(`    client-key-data: ${REDACTED}`);
    expect(out[13]).toBe(`    token: ${REDACTED}`);
    expect(out.slice(0, 3)).toEqual(kubeconfig.slice(0, 3));
  });

  it('should replace a bare JWT when no key names it', () => {
    expect(redactText(`kubectl --token=${jwt} get pods`)).toBe(`kubectl --token=${REDACTED} get pods`);
    expect(redactText(`sa token ${jwt} created`)).toBe(`sa token ${REDACTED} created`);
  });

  it('should keep Bearer and hide the token when a bearer token appears without a header name', () => {
    expect(redactText(`using Bearer ${fake(40, 26)} for the API`)).toBe(
      `using Bearer ${REDACTED} for the API`,
    );
  });
});

describe('redactText: Kubernetes data blocks', () => {
  it("should keep a ConfigMap's plain words and hide a Secret's base64 values", () => {
    const text = [
      'data:',
      '  enabled: "true"',
      '  mode: iptables',
      `  token: ${Buffer.from('s3cr3t-v4lue').toString('base64')}`,
      'kind: ConfigMap',
    ].join('\n');
    expect(redactText(text)).toBe(
      ['data:', '  enabled: "true"', '  mode: iptables', `  token: ${REDACTED}`, 'kind: ConfigMap'].join(
        '\n',
      ),
    );
  });
});

describe('redactText: MAAS and AWS keys', () => {
  it('should hide the API key when maas list prints a profile', () => {
    expect(redactText(`admin http://10.0.0.2:5240/MAAS/api/2.0/ ${maasKey}`)).toBe(
      `admin http://10.0.0.2:5240/MAAS/api/2.0/ ${REDACTED}`,
    );
  });

  it('should hide the access key id when the text holds an AKIA key', () => {
    expect(redactText('aws_access_key_id = AKIAIOSFODNN7EXAMPLE')).toBe(`aws_access_key_id = ${REDACTED}`);
  });
});

describe('redactText: ordinary runbook output', () => {
  const outputs: Record<string, string> = {
    'openstack loadbalancer list -f yaml': [
      '- id: 0b2f6c2e-3c4f-4a8e-9a59-6d7b1f2e8c11',
      '  name: k8s-clusterapi-cluster-magnum-system-kube-abc12-kubeapi',
      '  operating_status: ONLINE',
      '  project_id: 3f1a7a3c1a8e4f0e9c7d2b5a6e4f3c2d',
      '  provider: amphora',
      '  provisioning_status: ERROR',
      '  vip_address: 10.0.0.48',
      '- id: 7c9e6679-7425-40de-944b-e07fc1f90ae7',
      '  name: kube-abc12-ingress',
      '  provisioning_status: ACTIVE',
    ].join('\n'),
    'kubectl get pods -A': [
      'NAMESPACE       NAME                                        READY   STATUS             RESTARTS       AGE',
      'capi-system     capi-controller-manager-7d9c8b8f5b-x2k9p    1/1     Running            0              3d',
      'capo-system     capo-controller-manager-6b9d7c9f8-qm4lt     0/1     CrashLoopBackOff   12 (2m ago)    3d',
      'kube-system     coredns-5d78c9869d-8xq2w                    1/1     Running            0              10d',
      'magnum-system   magnum-cluster-api-proxy-5f7b9c6d4-kk2hz    1/1     Running            1 (4h ago)     10d',
    ].join('\n'),
    'openstack server list': [
      '+--------------------------------------+--------------------------------+--------+----------------------------------+--------------------------+-----------+',
      '| ID                                   | Name                           | Status | Networks                         | Image                    | Flavor    |',
      '+--------------------------------------+--------------------------------+--------+----------------------------------+--------------------------+-----------+',
      '| 5c1d3f2a-8e7b-4c6d-9f0a-1b2c3d4e5f60 | kube-abc12-control-plane-x7k2p | ACTIVE | k8s-clusterapi-cluster=10.0.0.12 | ubuntu-2204-kube-v1.30.4 | m1.medium |',
      '| 9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d | kube-abc12-default-worker-q8w  | ERROR  |                                  | ubuntu-2204-kube-v1.30.4 | m1.large  |',
      '+--------------------------------------+--------------------------------+--------+----------------------------------+--------------------------+-----------+',
    ].join('\n'),
    'k8s status': [
      'cluster status:           ready',
      'control plane nodes:      10.10.0.11:6400 (voter), 10.10.0.12:6400 (voter)',
      'high availability:        yes',
      'datastore:                k8s-dqlite',
      'network:                  enabled',
      'dns:                      enabled at 10.152.183.10',
      'load-balancer:            enabled, L2 mode',
      'local-storage:            enabled at /var/snap/k8s/common/rawfile-storage',
    ].join('\n'),
    'kubectl get pod -o yaml': [
      'spec:',
      '  automountServiceAccountToken: false',
      '  serviceAccountName: capo-manager',
      '  containers:',
      '  - image: registry.k8s.io/capi-openstack/capi-openstack-controller@sha256:5f2b8c0d9e1a4b7c6d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c',
      '    name: manager',
      '  volumes:',
      '  - name: cert',
      '    secret:',
      '      defaultMode: 420',
      '      secretName: capo-webhook-service-cert',
      'status:',
      '  phase: Running',
    ].join('\n'),
    'kubectl get secrets': [
      'NAME                     TYPE                            DATA   AGE',
      'bootstrap-token-abcdef   bootstrap.kubernetes.io/token   4      10d',
      'kube-abc12-kubeconfig    cluster.x-k8s.io/secret         1      10d',
    ].join('\n'),
    'uuids and timestamps': [
      'cluster 0b2f6c2e-3c4f-4a8e-9a59-6d7b1f2e8c11 deleted at 2024-05-01T10:22:33Z',
      'request req-7c9e6679-7425-40de-944b-e07fc1f90ae7 took 1.234s',
      'see https://docs.openstack.org/octavia/latest/ for status.ready and s.t',
      'the token expired; re-run the login step',
    ].join('\n'),
  };

  it.each(Object.entries(outputs))('should leave the text unchanged when it is %s output', (_name, text) => {
    expect(redactText(text)).toBe(text);
  });
});

describe('redactText: idempotence and cost', () => {
  it('should give the same text when redacting a second time', () => {
    const samples = [
      pem('rsa'),
      opensshKey,
      `{"private_key":${JSON.stringify(pem('ec'))}}`,
      `${slackBot} ${slackApp} ${slackRotated}`,
      `Unseal Key 1: abc=\nInitial Root Token: ${vaultToken}`,
      JSON.stringify({ unseal_keys_b64: ['a', 'b'], root_token: legacyVaultToken }, null, 2),
      'export OS_PASSWORD="x y"\n--os-password z\n| password | hunter2 |',
      'password: |\n  one\n  two',
      `Authorization: Bearer ${jwt}\nclient-key-data: abc\n${maasKey} AKIAIOSFODNN7EXAMPLE`,
      'redis://:pw@host:6379 {"token":123,"x":1} "password": "unterminated',
    ];
    for (const sample of samples) {
      const once = redactText(sample);
      expect(redactText(once)).toBe(once);
    }
  });

  it('should return the line unchanged when it is 1 MB of one letter', () => {
    const line = 'a'.repeat(1_000_000);
    expect(redactText(line)).toBe(line);
  });

  it('should still find a trailing secret when it follows 1 MB of random characters', () => {
    let seed = 20240501;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-:=/"\'|@$[]{},\t';
    let line = '';
    for (let i = 0; i < 1_000_000; i++) line += alphabet[Math.floor(next() * alphabet.length)];
    const out = redactText(`${line} OS_PASSWORD=hunter2`);
    // Random text holds long runs mixing cases and digits, which look like opaque secrets and are hidden too.
    expect(out.endsWith(` OS_PASSWORD=${REDACTED}`)).toBe(true);
    expect(out).not.toContain('hunter2');
  });
});
