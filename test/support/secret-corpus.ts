import { createHash } from 'node:crypto';
import { fake, pem } from './secrets.js';

/**
 * Real-shaped outputs of the commands an operator runs on a jumphost, each with the secrets it holds (which must
 * never reach Slack, a log, the timeline, an uploaded file or a checkpoint) and the values around them that must
 * stay readable (ids, names, fingerprints: what operators act on). The redaction unit test and the end-to-end
 * run test both read this table, so a new entry is checked on every path at once.
 *
 * Secret-shaped samples are derived at run time (hashes of fixed seeds) so that secret scanners do not flag the
 * repository; none was ever issued by a service.
 */
export interface CorpusEntry {
  /** The command whose output this is. */
  readonly name: string;
  readonly output: string;
  /** Every one must be gone from whatever shows or stores the output. */
  readonly secrets: readonly string[];
  /** Every one must still be there. */
  readonly keep: readonly string[];
}

const digest = (seed: string, alg: 'sha256' | 'sha512' = 'sha256') => createHash(alg).update(seed).digest();
const hex32 = (seed: string) => digest(seed).toString('hex').slice(0, 32);
const b64 = (seed: string) => digest(seed).toString('base64');
const b64url = (seed: string, alg: 'sha256' | 'sha512' = 'sha512') => digest(seed, alg).toString('base64url');
const uuid = (seed: string) => {
  const h = digest(seed).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

// Values operators need: they must survive every redaction.
export const PROJECT_ID = hex32('project');
export const USER_ID = hex32('user');
export const LB_ID = uuid('lb');
export const AMPHORA_ID = uuid('amphora');
export const SERVER_NAME = 'kube-abc12-control-plane-x7k2p';
export const MGMT_SERVER = 'capi-mgmt-v2';
export const LB_NAME = 'k8s-clusterapi-cluster-magnum-system-kube-abc12-kubeapi';
/** mktemp names mix cases and digits, like secrets do; a path is not one. */
export const TEMP_PATH = '/tmp/capi-sim-Ab3dEf9hIj2kLm4nOpQ7rS/home/ops/no-such-file.csv';
export const HOST_KEY = `SHA256:${digest('hostkey').toString('base64').replace(/=+$/, '')}`;
const CERT_B64 = Buffer.from(
  `-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU${fake(40, 20)}\n-----END CERTIFICATE-----\n`,
).toString('base64');
const SSH_PUBLIC = `ssh-ed25519 ${Buffer.concat([
  Buffer.from([0, 0, 0, 11]),
  Buffer.from('ssh-ed25519'),
  Buffer.from([0, 0, 0, 32]),
  digest('ssh-public'),
]).toString('base64')} ops@jumphost`;

const appcredSecret = b64url('appcred');
const ec2Access = hex32('ec2-access');
const ec2Secret = hex32('ec2-secret');
const totpSeed = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const unsealKeys = [1, 2, 3, 4, 5].map((i) => b64(`unseal-${i}`));
const rootToken = `hv${'s.'}${b64url('root').slice(0, 90)}`;
const maasKey = `${fake(18, 13)}:${fake(18, 14)}:${fake(32, 15)}`;
const jwt = [
  Buffer.from('{"alg":"RS256","kid":"capi"}').toString('base64url'),
  Buffer.from('{"iss":"kubernetes/serviceaccount","sub":"system:serviceaccount:capi:sa"}').toString(
    'base64url',
  ),
  b64url('jwt-signature'),
].join('.');
const clientKey = pem('ec').trim();
const kubeconfig = [
  'apiVersion: v1',
  'clusters:',
  '- cluster:',
  `    certificate-authority-data: ${CERT_B64}`,
  '    server: https://10.0.0.48:6443',
  '  name: capi-test-1',
  'users:',
  '- name: capi-test-1-admin',
  '  user:',
  `    client-key-data: ${Buffer.from(clientKey).toString('base64')}`,
  '',
].join('\n');
const kubeconfigB64 = Buffer.from(kubeconfig).toString('base64');
const wrapped = kubeconfigB64.match(/.{1,76}/g) ?? [];
const secretPassword = `Pw-${fake(12, 30)}`;
const dollarPassword = `$ecr3t-${fake(8, 31)}`;
const spacedPassword = `c0rrect horse ${fake(6, 32)}`;
const atPassword = `p@ss${fake(6, 33)}`;
const traceKey = b64('trace-unseal');
const traceToken = `hv${'s.'}${b64url('trace-login').slice(0, 40)}`;
const curlPassword = `cUrl${fake(10, 34)}`;
const shellJoined = `it'"'"'s-${fake(6, 35)}`;

const border = (widths: readonly number[]) => `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
const row = (widths: readonly number[], cells: readonly string[]) =>
  `|${cells.map((c, i) => ` ${c.padEnd(widths[i] ?? 0)} `).join('|')}|`;
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [
    border(widths),
    row(widths, header),
    border(widths),
    ...rows.map((r) => row(widths, r)),
    border(widths),
  ].join('\n');
}

export const SECRET_CORPUS: readonly CorpusEntry[] = [
  {
    name: 'openstack application credential create capi-ci -f value',
    output: [
      'None',
      'None',
      hex32('appcred-id'),
      'capi-ci',
      PROJECT_ID,
      `[{'id': '${hex32('role')}', 'name': 'load-balancer_member'}]`,
      appcredSecret,
      'None',
      'False',
      USER_ID,
    ].join('\n'),
    secrets: [appcredSecret],
    keep: [PROJECT_ID, USER_ID, 'capi-ci', 'load-balancer_member'],
  },
  {
    name: 'openstack ec2 credentials list',
    output: table(
      ['Access', 'Secret', 'Project ID', 'User ID'],
      [[ec2Access, ec2Secret, PROJECT_ID, USER_ID]],
    ),
    secrets: [ec2Secret],
    keep: [ec2Access, PROJECT_ID, USER_ID],
  },
  {
    name: 'openstack credential list',
    output: table(
      ['ID', 'Type', 'User ID', 'Data', 'Project ID'],
      [
        [hex32('cred-1'), 'ec2', USER_ID, `{"access": "${ec2Access}", "secret": "${ec2Secret}"}`, PROJECT_ID],
        [hex32('cred-2'), 'totp', USER_ID, totpSeed, ''],
      ],
    ),
    secrets: [ec2Secret, totpSeed],
    keep: [hex32('cred-1'), USER_ID, PROJECT_ID, 'totp'],
  },
  {
    name: 'vault operator init -key-shares=5 -key-threshold=3 2>&1 | tee ~/vault-init/init.txt',
    output: [
      ...unsealKeys.map((k, i) => `Unseal Key ${i + 1}: ${k}`),
      '',
      `Initial Root Token: ${rootToken}`,
      '',
      'Vault initialized with 5 key shares and a key threshold of 3. Please securely',
      'distribute the key shares printed above.',
    ].join('\n'),
    secrets: [...unsealKeys, rootToken],
    keep: ['Vault initialized with 5 key shares'],
  },
  {
    name: "vault operator init -format=json | jq -r '.unseal_keys_b64[], .root_token'",
    output: [...unsealKeys, rootToken].join('\n'),
    secrets: [...unsealKeys, rootToken],
    keep: [],
  },
  {
    name: 'maas apikey --username=admin; maas list',
    output: [maasKey, `admin http://10.0.0.2:5240/MAAS/api/2.0/ ${maasKey}`].join('\n'),
    secrets: [maasKey, maasKey.split(':')[2] as string],
    keep: ['http://10.0.0.2:5240/MAAS/api/2.0/'],
  },
  {
    name: 'kubectl -n capi create token capi-sa',
    output: jwt,
    secrets: [jwt, jwt.split('.')[1] as string],
    keep: [],
  },
  {
    name: "kubectl get secret capi-test-1-kubeconfig -o jsonpath='{.data.value}'",
    output: kubeconfigB64,
    secrets: [kubeconfigB64, kubeconfigB64.slice(-40)],
    keep: [],
  },
  {
    name: 'base64 ~/capi-mgmt.kubeconfig (wrapped at 76)',
    output: wrapped.join('\n'),
    secrets: wrapped.filter((l) => l.length >= 8),
    keep: [],
  },
  {
    name: 'kubectl -n magnum-system get secret capi-test-1-kubeconfig -o yaml',
    output: [
      'apiVersion: v1',
      'data:',
      `  ca.crt: ${CERT_B64}`,
      `  value: ${kubeconfigB64}`,
      `  password: ${Buffer.from(secretPassword).toString('base64')}`,
      `  namespace: ${Buffer.from('magnum-system').toString('base64')}`,
      'kind: Secret',
      'metadata:',
      '  name: capi-test-1-kubeconfig',
      '  namespace: magnum-system',
      `  uid: ${uuid('secret-uid')}`,
      'type: cluster.x-k8s.io/secret',
    ].join('\n'),
    secrets: [
      kubeconfigB64,
      Buffer.from(secretPassword).toString('base64'),
      Buffer.from('magnum-system').toString('base64'),
    ],
    keep: [CERT_B64, 'capi-test-1-kubeconfig', uuid('secret-uid'), 'cluster.x-k8s.io/secret'],
  },
  {
    name: 'kubectl -n capi get secret capi-sa-token -o json',
    output: JSON.stringify(
      {
        apiVersion: 'v1',
        data: { 'ca.crt': CERT_B64, token: Buffer.from(jwt).toString('base64'), 'api-key': b64('json-api') },
        kind: 'Secret',
        metadata: { name: 'capi-sa-token', uid: uuid('json-uid') },
      },
      null,
      4,
    ),
    secrets: [Buffer.from(jwt).toString('base64'), b64('json-api')],
    keep: [CERT_B64, 'capi-sa-token', uuid('json-uid')],
  },
  {
    name: 'set -x; . ~/admin-openrc (shell trace of an openrc that prompts)',
    output: [
      "+ echo 'Please enter your OpenStack Password for project admin as user admin: '",
      `+ OS_PASSWORD_INPUT=${secretPassword}`,
      `+ export OS_PASSWORD=${secretPassword}`,
      '+ export OS_PASSWORD=$OS_PASSWORD_INPUT',
      `OS_PASSWORD_INPUT='${secretPassword}'`,
    ].join('\n'),
    secrets: [secretPassword],
    keep: ['$OS_PASSWORD_INPUT', 'Please enter your OpenStack Password'],
  },
  {
    name: 'env | grep OS_ (values starting with $, with spaces, shell-joined quotes)',
    output: [
      `OS_PASSWORD=${dollarPassword}`,
      `export OS_APPLICATION_CREDENTIAL_SECRET="${spacedPassword}"`,
      `export DB_PASSWORD='${shellJoined}' # quoted the shell way`,
      `password = '${spacedPassword}'`,
      'OS_AUTH_URL=https://127.0.0.1:5000/v3',
    ].join('\n'),
    secrets: [
      dollarPassword,
      dollarPassword.slice(1),
      spacedPassword,
      spacedPassword.split(' ')[2] as string,
      shellJoined.slice(-6),
    ],
    keep: ['OS_AUTH_URL=https://127.0.0.1:5000/v3', 'quoted the shell way'],
  },
  {
    name: 'connection URLs with @ in the password',
    output: [
      `transport_url = rabbit://openstack:${atPassword}@127.0.0.1:5672/`,
      `connection = mysql+pymysql://keystone:${atPassword}@127.0.0.1/keystone`,
    ].join('\n'),
    secrets: [atPassword, atPassword.slice(2)],
    keep: ['127.0.0.1:5672', '127.0.0.1/keystone'],
  },
  {
    name: 'bash -x (a trace of commands taking a secret as an argument)',
    output: [
      `+ vault operator unseal ${traceKey}`,
      `+ vault login ${traceToken}`,
      `+ curl -sf -u admin:${curlPassword} https://127.0.0.1:8200/v1/sys/health`,
      '+ vault operator unseal',
    ].join('\n'),
    secrets: [traceKey, traceToken, curlPassword],
    keep: ['https://127.0.0.1:8200/v1/sys/health', '+ vault operator unseal'],
  },
  {
    name: 'ordinary output: ids and names operators need',
    output: [
      `| ${LB_ID} | ${LB_NAME} | ${PROJECT_ID} | 10.0.0.48 | ERROR | amphora |`,
      `amphora-${AMPHORA_ID} ${SERVER_NAME} ${MGMT_SERVER} ACTIVE`,
      `The ED25519 key fingerprint is ${HOST_KEY}.`,
      SSH_PUBLIC,
      `image: registry.k8s.io/capi-openstack/capi-openstack-controller@sha256:${digest('image').toString('hex')}`,
      'OpenStackMachineTemplate capi-test-1-control-plane-v1-30-4 Ready',
      `grep: ${TEMP_PATH}: No such file or directory`,
    ].join('\n'),
    secrets: [],
    keep: [
      LB_ID,
      LB_NAME,
      PROJECT_ID,
      AMPHORA_ID,
      SERVER_NAME,
      MGMT_SERVER,
      HOST_KEY,
      SSH_PUBLIC,
      digest('image').toString('hex'),
      TEMP_PATH,
    ],
  },
];

/** Every secret of the corpus, for scanning what a run stored and posted. */
export const CORPUS_SECRETS: readonly string[] = [...new Set(SECRET_CORPUS.flatMap((e) => e.secrets))];
/** Every value that must stay readable. */
export const CORPUS_KEEP: readonly string[] = [...new Set(SECRET_CORPUS.flatMap((e) => e.keep))];
