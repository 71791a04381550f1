/**
 * The `kubectl` stand-in for the mgmt cluster. It needs a kubeconfig naming a loopback API server
 * and the mgmt k8s to be up: while the VM is off the API refuses connections, during cold-start
 * convergence TLS handshakes time out, afterwards CAPI/CAPO objects answer in kubectl's shapes.
 * Patches and deletes are journalled; acting on a name that does not exist is a violation.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CliExit,
  type CliResult,
  fail,
  flag,
  one,
  opt,
  type ParsedArgs,
  parseArgs,
  Recorder,
} from './cli.js';
import { kubeJson, kubeTable, kubeYaml } from './format.js';
import { JsonPathError, renderJsonPath } from './jsonpath.js';
import { yaml } from './lazy.js';
import { clockOf, clusterAvailability, mgmtView, settle } from './model.js';
import type { CloudState, KubeObject } from './schema.js';
import { withState } from './store.js';
import { humanDuration, siteAgeSeconds, siteIso, siteSecondsToMs, sleep, toSiteMs } from './time.js';
import { workloadAt, workloadKubectl } from './workload.js';

type Obj = Record<string, unknown>;

interface KindInfo {
  readonly kind: string;
  readonly plural: string;
  readonly group: string;
  readonly apiVersion: string;
  readonly namespaced: boolean;
  readonly aliases: readonly string[];
}

const KINDS: readonly KindInfo[] = [
  {
    kind: 'Cluster',
    plural: 'clusters',
    group: 'cluster.x-k8s.io',
    apiVersion: 'cluster.x-k8s.io/v1beta2',
    namespaced: true,
    aliases: ['cluster', 'clusters', 'cl', 'clusters.cluster.x-k8s.io', 'cluster.cluster.x-k8s.io'],
  },
  {
    kind: 'OpenStackCluster',
    plural: 'openstackclusters',
    group: 'infrastructure.cluster.x-k8s.io',
    apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1',
    namespaced: true,
    aliases: [
      'openstackcluster',
      'openstackclusters',
      'osc',
      'openstackclusters.infrastructure.cluster.x-k8s.io',
      'openstackcluster.infrastructure.cluster.x-k8s.io',
    ],
  },
  {
    kind: 'Machine',
    plural: 'machines',
    group: 'cluster.x-k8s.io',
    apiVersion: 'cluster.x-k8s.io/v1beta2',
    namespaced: true,
    aliases: ['machine', 'machines', 'ma', 'machines.cluster.x-k8s.io', 'machine.cluster.x-k8s.io'],
  },
  {
    kind: 'Node',
    plural: 'nodes',
    group: '',
    apiVersion: 'v1',
    namespaced: false,
    aliases: ['node', 'nodes', 'no'],
  },
  {
    kind: 'Pod',
    plural: 'pods',
    group: '',
    apiVersion: 'v1',
    namespaced: true,
    aliases: ['pod', 'pods', 'po'],
  },
  {
    kind: 'Namespace',
    plural: 'namespaces',
    group: '',
    apiVersion: 'v1',
    namespaced: false,
    aliases: ['namespace', 'namespaces', 'ns'],
  },
];

function kindFor(name: string): KindInfo | undefined {
  return KINDS.find((k) => k.aliases.includes(name.toLowerCase()));
}

/** `openstackcluster.infrastructure.cluster.x-k8s.io` as used in `-o name` and messages. */
function qualified(k: KindInfo, plural = false): string {
  const base = plural ? k.plural : k.kind.toLowerCase();
  return k.group === '' ? base : `${base}.${k.group}`;
}

const POD_SPECS: readonly (readonly [string, string, string])[] = [
  ['capi-addon-system', 'cluster-api-addon-provider-5c6d7f8b9-rz6hn', '1/1'],
  ['capi-janitor-system', 'cluster-api-janitor-openstack-6b8f9d7c5-kp3xm', '1/1'],
  ['capi-kubeadm-bootstrap-system', 'capi-kubeadm-bootstrap-controller-manager-5f8d6b9c7d-2xk4p', '1/1'],
  [
    'capi-kubeadm-control-plane-system',
    'capi-kubeadm-control-plane-controller-manager-7b9c5d4f6-8mzqv',
    '1/1',
  ],
  ['capi-system', 'capi-controller-manager-6c7d8f9b5-tq2wn', '1/1'],
  ['capo-system', 'capo-controller-manager-85f9c7b6d4-lx7rj', '1/1'],
  ['cert-manager', 'cert-manager-6d988558d6-v9k2f', '1/1'],
  ['cert-manager', 'cert-manager-cainjector-6976895488-hs4tm', '1/1'],
  ['cert-manager', 'cert-manager-webhook-fcf48cc54-9bq7x', '1/1'],
  ['kube-system', 'cilium-operator-6f7b9c8d5-mw4zt', '1/1'],
  ['kube-system', 'cilium-x8k2n', '1/1'],
  ['kube-system', 'ck-storage-rawfile-csi-controller-0', '2/2'],
  ['kube-system', 'ck-storage-rawfile-csi-node-7hx4d', '4/4'],
  ['kube-system', 'coredns-7d5b8c9f6-qp2lm', '1/1'],
  ['kube-system', 'metrics-server-8694c96fb7-jd9vw', '1/1'],
  ['orc-system', 'orc-controller-manager-7d4b8c9f6-ws5nd', '1/1'],
];

// ---------------------------------------------------------------------------------------------
// rendering objects

class View {
  constructor(
    readonly state: CloudState,
    readonly now: number,
  ) {}

  iso(ms: number): string {
    return siteIso(clockOf(this.state), ms);
  }

  age(ms: number): string {
    return humanDuration(siteAgeSeconds(clockOf(this.state), ms, this.now));
  }

  meta(o: KubeObject, extra: Obj = {}): Obj {
    const m: Obj = {
      creationTimestamp: this.iso(o.createdAt),
      finalizers: o.finalizers.length > 0 ? o.finalizers : undefined,
      generation: 2,
      labels: o.labels,
      name: o.name,
      namespace: o.namespace,
      resourceVersion: String(100_000 + this.state.kube.indexOf(o) * 7 + this.state.seq),
      uid: o.uid,
      ...extra,
    };
    if (o.deletionAt !== null) {
      m.deletionGracePeriodSeconds = 0;
      m.deletionTimestamp = this.iso(o.deletionAt);
    }
    return m;
  }

  cond(type: string, status: string, reason: string, since: number, message = ''): Obj {
    return {
      lastTransitionTime: this.iso(since),
      ...(message === '' ? {} : { message }),
      observedGeneration: 2,
      reason,
      status,
      type,
    };
  }

  render(o: KubeObject): Obj {
    const k = KINDS.find((x) => x.kind === o.kind) as KindInfo;
    const status: Obj = { ...o.status };
    const owner = this.state.kube.find((x) => x.kind === 'Cluster' && x.name === o.clusterName);
    const ownerRefs =
      o.kind === 'Cluster' || owner === undefined
        ? undefined
        : [{ apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Cluster', name: owner.name, uid: owner.uid }];
    if (o.kind === 'Cluster') {
      const avail = clusterAvailability(this.state, o, this.now);
      const deleting = o.deletionAt !== null;
      const osc = this.state.kube.find((x) => x.kind === 'OpenStackCluster' && x.clusterName === o.name);
      const infraMsg = deleting
        ? `* OpenStackCluster ${osc?.name ?? o.name}: deleting: failed to get load balancer: Expected HTTP response code [200] when accessing [GET https://127.0.0.1:9876/v2/lbaas/loadbalancers], but got 403 instead`
        : avail.message.replace(/^\* InfrastructureReady: /, '');
      status.conditions = [
        deleting
          ? this.cond(
              'Available',
              'False',
              'Deleting',
              o.deletionAt ?? o.createdAt,
              '* Deleting: Waiting for infrastructure',
            )
          : this.cond('Available', avail.status, avail.reason, avail.since, avail.message),
        this.cond(
          'InfrastructureReady',
          deleting || avail.status === 'False' ? 'False' : 'True',
          deleting || avail.status === 'False' ? 'NotReady' : 'Ready',
          avail.since,
          deleting || avail.status === 'False' ? infraMsg : '',
        ),
        this.cond('ControlPlaneInitialized', 'True', 'Initialized', o.createdAt),
        this.cond('ControlPlaneAvailable', 'True', 'Available', o.createdAt),
        this.cond('WorkersAvailable', 'True', 'Available', o.createdAt),
        this.cond('RemoteConnectionProbe', 'True', 'ProbeSucceeded', o.createdAt),
        deleting
          ? this.cond(
              'Deleting',
              'True',
              'WaitingForInfrastructureDeletion',
              o.deletionAt ?? o.createdAt,
              infraMsg,
            )
          : this.cond('Deleting', 'False', 'NotDeleting', o.createdAt),
        this.cond('Paused', 'False', 'NotPaused', o.createdAt),
      ];
    } else if (o.kind === 'OpenStackCluster') {
      const owning = owner ?? o;
      const avail = clusterAvailability(this.state, { ...owning, lbId: o.lbId }, this.now);
      const deleting = o.deletionAt !== null;
      status.conditions = [
        {
          lastTransitionTime: this.iso(deleting ? (o.deletionAt ?? o.createdAt) : avail.since),
          ...(deleting
            ? {
                message:
                  'failed to delete load balancer: Expected HTTP response code [200 204] but got 403 (Forbidden)',
                reason: 'DeletionFailed',
                severity: 'Error',
              }
            : avail.status === 'False'
              ? {
                  message: avail.message.replace(/^.*?: failed/, 'failed'),
                  reason: 'LoadBalancerNotReady',
                  severity: 'Warning',
                }
              : {}),
          status: deleting || avail.status === 'False' ? 'False' : 'True',
          type: 'Ready',
        },
      ];
    } else {
      status.conditions = [
        this.cond('Ready', 'True', 'Ready', o.createdAt),
        this.cond('Available', 'True', 'Available', o.createdAt),
        this.cond('UpToDate', 'True', 'UpToDate', o.createdAt),
      ];
    }
    return {
      apiVersion: k.apiVersion,
      kind: k.kind,
      metadata: this.meta(o, ownerRefs === undefined ? {} : { ownerReferences: ownerRefs }),
      spec: o.spec,
      status,
    };
  }

  node(): Obj {
    const m = this.state.mgmt;
    const server = this.state.servers.find((s) => s.id === m.serverId);
    const created = server?.createdAt ?? this.state.startedAt;
    const readySince = m.k8sReadyAt ?? created;
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        creationTimestamp: this.iso(created),
        labels: {
          'kubernetes.io/hostname': m.nodeName,
          'kubernetes.io/os': 'linux',
          'node-role.kubernetes.io/control-plane': '',
          'node-role.kubernetes.io/worker': '',
        },
        name: m.nodeName,
        uid: '6b000000-0000-4000-8000-00000000aaaa',
      },
      spec: {},
      status: {
        addresses: [
          { address: m.nodeIp, type: 'InternalIP' },
          { address: m.nodeName, type: 'Hostname' },
        ],
        conditions: [
          {
            lastHeartbeatTime: this.iso(this.now),
            lastTransitionTime: this.iso(readySince),
            message: 'kubelet is posting ready status',
            reason: 'KubeletReady',
            status: 'True',
            type: 'Ready',
          },
        ],
        nodeInfo: {
          architecture: 'amd64',
          containerRuntimeVersion: 'containerd://1.7.27',
          kernelVersion: '6.8.0-57-generic',
          kubeletVersion: m.k8sVersion,
          operatingSystem: 'linux',
          osImage: 'Ubuntu 24.04.2 LTS',
        },
      },
    };
  }

  pods(): Obj[] {
    const m = this.state.mgmt;
    const server = this.state.servers.find((s) => s.id === m.serverId);
    const created = server?.createdAt ?? this.state.startedAt;
    return POD_SPECS.map(([ns, name, ready]) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { creationTimestamp: this.iso(created), name, namespace: ns },
      spec: { nodeName: m.nodeName },
      status: {
        phase: 'Running',
        containerStatuses: [{ ready: true, restartCount: m.bootCount }],
        podIP: m.nodeIp,
        startTime: this.iso(m.k8sReadyAt ?? created),
        simReady: ready,
      },
    }));
  }
}

interface Column {
  readonly header: string;
  readonly wide?: boolean;
  readonly get: (o: Obj) => string;
}

function at(o: unknown, ...keys: string[]): unknown {
  let cur = o;
  for (const k of keys) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Obj)[k];
  }
  return cur;
}

function str(v: unknown): string {
  if (v === undefined || v === null) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function condStatus(o: Obj, type: string): string {
  const conds = at(o, 'status', 'conditions');
  if (!Array.isArray(conds)) return '';
  return str((conds as Obj[]).find((c) => c.type === type)?.status);
}

function columnsFor(kind: string, v: View): Column[] {
  // creationTimestamp is site time (see time.ts), so the age is measured against the site clock.
  const ageOf = (o: Obj) => {
    const siteMs = Date.parse(str(at(o, 'metadata', 'creationTimestamp')));
    if (Number.isNaN(siteMs)) return '<unknown>';
    return humanDuration((toSiteMs(clockOf(v.state), v.now) - siteMs) / 1000);
  };
  switch (kind) {
    case 'Cluster':
      return [
        { header: 'CLUSTERCLASS', get: (o) => str(at(o, 'spec', 'topology', 'classRef', 'name')) },
        { header: 'AVAILABLE', get: (o) => condStatus(o, 'Available') },
        { header: 'CP DESIRED', get: (o) => str(at(o, 'status', 'controlPlane', 'desiredReplicas')) },
        { header: 'CP CURRENT', wide: true, get: (o) => str(at(o, 'status', 'controlPlane', 'replicas')) },
        { header: 'CP READY', wide: true, get: (o) => str(at(o, 'status', 'controlPlane', 'readyReplicas')) },
        { header: 'CP AVAILABLE', get: (o) => str(at(o, 'status', 'controlPlane', 'availableReplicas')) },
        { header: 'CP UP-TO-DATE', get: (o) => str(at(o, 'status', 'controlPlane', 'upToDateReplicas')) },
        { header: 'W DESIRED', get: (o) => str(at(o, 'status', 'workers', 'desiredReplicas')) },
        { header: 'W CURRENT', wide: true, get: (o) => str(at(o, 'status', 'workers', 'replicas')) },
        { header: 'W READY', wide: true, get: (o) => str(at(o, 'status', 'workers', 'readyReplicas')) },
        { header: 'W AVAILABLE', get: (o) => str(at(o, 'status', 'workers', 'availableReplicas')) },
        { header: 'W UP-TO-DATE', get: (o) => str(at(o, 'status', 'workers', 'upToDateReplicas')) },
        { header: 'PAUSED', wide: true, get: (o) => condStatus(o, 'Paused') },
        { header: 'PHASE', get: (o) => str(at(o, 'status', 'phase')) },
        { header: 'AGE', get: ageOf },
        { header: 'VERSION', get: (o) => str(at(o, 'spec', 'topology', 'version')) },
      ];
    case 'OpenStackCluster':
      return [
        { header: 'CLUSTER', get: (o) => str(at(o, 'metadata', 'labels', 'cluster.x-k8s.io/cluster-name')) },
        { header: 'READY', get: (o) => str(at(o, 'status', 'ready')) },
        { header: 'NETWORK', get: (o) => str(at(o, 'status', 'network', 'id')) },
        { header: 'ENDPOINT', wide: true, get: (o) => str(at(o, 'spec', 'controlPlaneEndpoint', 'host')) },
        { header: 'BASTION IP', get: (o) => str(at(o, 'status', 'bastion', 'floatingIP')) },
        { header: 'AGE', get: ageOf },
      ];
    case 'Machine':
      return [
        { header: 'CLUSTER', get: (o) => str(at(o, 'spec', 'clusterName')) },
        { header: 'NODE NAME', get: (o) => str(at(o, 'status', 'nodeRef', 'name')) },
        { header: 'PROVIDER ID', wide: true, get: (o) => str(at(o, 'spec', 'providerID')) },
        { header: 'READY', get: (o) => condStatus(o, 'Ready') },
        { header: 'AVAILABLE', get: (o) => condStatus(o, 'Available') },
        { header: 'UP-TO-DATE', get: (o) => condStatus(o, 'UpToDate') },
        {
          header: 'INTERNAL-IP',
          wide: true,
          get: (o) => {
            const a = at(o, 'status', 'addresses');
            return Array.isArray(a) ? str((a as Obj[]).find((x) => x.type === 'InternalIP')?.address) : '';
          },
        },
        { header: 'EXTERNAL-IP', wide: true, get: () => '' },
        { header: 'OS-IMAGE', wide: true, get: () => '' },
        { header: 'PAUSED', wide: true, get: () => 'False' },
        { header: 'PHASE', get: (o) => str(at(o, 'status', 'phase')) },
        { header: 'AGE', get: ageOf },
        { header: 'VERSION', get: (o) => str(at(o, 'spec', 'version')) },
      ];
    case 'Node':
      return [
        { header: 'STATUS', get: () => 'Ready' },
        { header: 'ROLES', get: () => 'control-plane,worker' },
        { header: 'AGE', get: ageOf },
        { header: 'VERSION', get: (o) => str(at(o, 'status', 'nodeInfo', 'kubeletVersion')) },
        {
          header: 'INTERNAL-IP',
          wide: true,
          get: (o) => str((at(o, 'status', 'addresses') as Obj[])[0]?.address),
        },
        { header: 'EXTERNAL-IP', wide: true, get: () => '<none>' },
        { header: 'OS-IMAGE', wide: true, get: (o) => str(at(o, 'status', 'nodeInfo', 'osImage')) },
        {
          header: 'KERNEL-VERSION',
          wide: true,
          get: (o) => str(at(o, 'status', 'nodeInfo', 'kernelVersion')),
        },
        {
          header: 'CONTAINER-RUNTIME',
          wide: true,
          get: (o) => str(at(o, 'status', 'nodeInfo', 'containerRuntimeVersion')),
        },
      ];
    case 'Pod':
      return [
        { header: 'READY', get: (o) => str(at(o, 'status', 'simReady')) },
        { header: 'STATUS', get: () => 'Running' },
        {
          header: 'RESTARTS',
          get: () => {
            const n = v.state.mgmt.bootCount;
            const since = v.state.mgmt.k8sReadyAt;
            return n === 0 || since === null ? '0' : `${n} (${v.age(since)} ago)`;
          },
        },
        { header: 'AGE', get: ageOf },
        { header: 'IP', wide: true, get: (o) => str(at(o, 'status', 'podIP')) },
        { header: 'NODE', wide: true, get: (o) => str(at(o, 'spec', 'nodeName')) },
      ];
    default:
      return [
        { header: 'STATUS', get: () => 'Active' },
        { header: 'AGE', get: ageOf },
      ];
  }
}

function stripSim(o: Obj): Obj {
  if (o.kind !== 'Pod') return o;
  const status = { ...(o.status as Obj) };
  delete status.simReady;
  return { ...o, status };
}

// ---------------------------------------------------------------------------------------------
// connection

export const API_PORT = 6443;

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

interface Endpoint {
  readonly host: string;
  readonly port: number;
}

function kubeconfigEndpoint(env: NodeJS.ProcessEnv, explicit: string | undefined): Endpoint | null {
  let file: string | undefined;
  if (explicit !== undefined) {
    if (!fs.existsSync(explicit)) fail(`error: stat ${explicit}: no such file or directory`);
    file = explicit;
  } else if (env.KUBECONFIG !== undefined && env.KUBECONFIG !== '') {
    // client-go silently skips KUBECONFIG entries that do not exist.
    file = env.KUBECONFIG.split(':').find((f) => f !== '' && fs.existsSync(f));
  } else {
    const home = env.HOME ?? os.homedir();
    const def = path.join(home, '.kube', 'config');
    if (fs.existsSync(def)) file = def;
  }
  if (file === undefined) return null;
  const text = fs.readFileSync(file, 'utf8');
  if (text.trim() === '') return null;
  let doc: unknown;
  try {
    doc = yaml().parse(text);
  } catch {
    doc = undefined;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    const first = text.trim()[0] ?? '';
    fail(
      `error: error loading config file "${file}": couldn't get version/kind; json parse error: invalid character '${first}' looking for beginning of value`,
    );
  }
  const cfg = doc as Obj;
  const clusters = Array.isArray(cfg.clusters) ? (cfg.clusters as Obj[]) : [];
  const contexts = Array.isArray(cfg.contexts) ? (cfg.contexts as Obj[]) : [];
  const ctx = contexts.find((c) => c.name === cfg['current-context']);
  const clusterName = str(at(ctx, 'context', 'cluster'));
  const cluster = clusters.find((c) => c.name === clusterName) ?? clusters[0];
  const server = str(at(cluster, 'cluster', 'server'));
  if (server === '') return null;
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    fail(`error: couldn't parse server URL ${server} in ${file}`);
  }
  const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port };
}

type Reach = { ok: true } | { ok: false; message: string; delayMs: number };

function reachApi(state: CloudState, ep: Endpoint | null, now: number): Reach {
  if (ep === null) {
    return {
      ok: false,
      message:
        'The connection to the server localhost:8080 was refused - did you specify the right host or port?',
      delayMs: 0,
    };
  }
  const hostPort = `${ep.host}:${ep.port}`;
  if (!isLoopbackHost(ep.host)) {
    // Never dial a non-loopback address: answer the way an unroutable server times out.
    return {
      ok: false,
      message: `Unable to connect to the server: dial tcp ${hostPort}: i/o timeout`,
      delayMs: 0,
    };
  }
  const refused = `The connection to the server ${hostPort} was refused - did you specify the right host or port?`;
  if (ep.port !== API_PORT) return { ok: false, message: refused, delayMs: 0 };
  const v = mgmtView(state, now);
  if (!v.apiUp) return { ok: false, message: refused, delayMs: 0 };
  if (!v.k8sReady) {
    return {
      ok: false,
      message: 'Unable to connect to the server: net/http: TLS handshake timeout',
      delayMs: Math.min(2000, siteSecondsToMs(clockOf(state), 10)),
    };
  }
  return { ok: true };
}

// ---------------------------------------------------------------------------------------------
// verbs

const SPECS = [
  opt(['-n', '--namespace'], 'namespace'),
  flag(['-A', '--all-namespaces'], 'all-namespaces'),
  opt(['--kubeconfig']),
  opt(['--context']),
  opt(['--cluster']),
  opt(['--user']),
  opt(['--server', '-s'], 'server'),
  opt(['--request-timeout']),
  opt(['-o', '--output'], 'output'),
  opt(['-l', '--selector'], 'selector'),
  opt(['--field-selector']),
  flag(['--no-headers']),
  flag(['--show-labels']),
  flag(['--insecure-skip-tls-verify']),
  opt(['--type']),
  opt(['-p', '--patch'], 'patch'),
  flag(['--wait']),
  flag(['--wait=false'], 'no-wait'),
  flag(['--wait=true'], 'wait'),
  opt(['--timeout']),
  flag(['--ignore-not-found']),
  flag(['--ignore-not-found=true'], 'ignore-not-found'),
  flag(['--ignore-not-found=false'], 'not-ignore-not-found'),
  opt(['--grace-period']),
  flag(['--now']),
  flag(['--force']),
  flag(['--client']),
  opt(['-v', '--v'], 'verbosity'),
];

interface Ctx {
  readonly state: CloudState;
  readonly now: number;
  readonly view: View;
  readonly args: ParsedArgs;
  readonly namespace: string;
  readonly rec: Recorder;
}

interface Target {
  readonly kind: KindInfo;
  readonly names: string[];
}

function parseTargets(words: readonly string[]): Target[] {
  const first = words[0];
  if (first === undefined) {
    fail(
      'You must specify the type of resource to get. Use "kubectl api-resources" for a complete list of supported resources.\n\nerror: Required resource not specified.',
    );
  }
  if (first.includes('/')) {
    const out: Target[] = [];
    for (const w of words) {
      const [t = '', n = ''] = w.split('/');
      const kind = kindFor(t);
      if (kind === undefined) fail(`error: the server doesn't have a resource type "${t}"`);
      const existing = out.find((x) => x.kind === kind);
      if (existing !== undefined) existing.names.push(n);
      else out.push({ kind, names: [n] });
    }
    return out;
  }
  const kinds = first.split(',').map((t) => {
    const kind = kindFor(t);
    if (kind === undefined) fail(`error: the server doesn't have a resource type "${t}"`);
    return kind;
  });
  return kinds.map((kind) => ({ kind, names: [...words.slice(1)] }));
}

function selectorMatches(labels: Record<string, string>, selector: string | undefined): boolean {
  if (selector === undefined) return true;
  return selector.split(',').every((term) => {
    const t = term.trim();
    const neq = t.split('!=');
    if (neq.length === 2) return labels[neq[0] ?? ''] !== neq[1];
    const eq = t.split(/==?/);
    if (eq.length === 2) return labels[eq[0] ?? ''] === eq[1];
    return t in labels;
  });
}

function listObjects(c: Ctx, kind: KindInfo, allNs: boolean): Obj[] {
  const inNs = (ns: string) => allNs || ns === c.namespace;
  switch (kind.kind) {
    case 'Node':
      return [c.view.node()];
    case 'Pod':
      return c.view.pods().filter((p) => inNs(str(at(p, 'metadata', 'namespace'))));
    case 'Namespace': {
      const names = new Set([
        'default',
        'kube-system',
        'kube-public',
        c.state.config.magnumNamespace,
        ...POD_SPECS.map(([ns]) => ns),
      ]);
      return [...names].sort().map((name) => ({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { creationTimestamp: c.view.iso(c.state.startedAt - 1), name },
        status: { phase: 'Active' },
      }));
    }
    default:
      // The API server lists in key order: namespace, then name.
      return [...c.state.kube]
        .sort(
          (a, b) =>
            a.namespace.localeCompare(b.namespace) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
        )
        .filter((o) => o.kind === kind.kind && inNs(o.namespace))
        .filter((o) => selectorMatches(o.labels, one(c.args, 'selector')))
        .map((o) => c.view.render(o));
  }
}

function notFound(kind: KindInfo, name: string): string {
  return `Error from server (NotFound): ${qualified(kind, true)} "${name}" not found`;
}

function nameOf(o: Obj): string {
  return str(at(o, 'metadata', 'name'));
}

function printGet(c: Ctx, groups: { kind: KindInfo; items: Obj[]; named: boolean }[]): string {
  const output = one(c.args, 'output') ?? '';
  const all = groups.flatMap((g) => g.items);
  const single = groups.length === 1 && groups[0]?.named === true && all.length === 1;
  if (output === 'json' || output === 'yaml') {
    const data = single
      ? stripSim(all[0] as Obj)
      : {
          apiVersion: 'v1',
          items: all.map(stripSim),
          kind: 'List',
          metadata: { resourceVersion: '' },
        };
    return output === 'json' ? kubeJson(data) : kubeYaml(data);
  }
  if (output === 'name') {
    return groups.flatMap((g) => g.items.map((o) => `${qualified(g.kind)}/${nameOf(o)}\n`)).join('');
  }
  if (output.startsWith('jsonpath=') || output.startsWith('jsonpath-as-json=')) {
    const template = output.slice(output.indexOf('=') + 1);
    const data = single
      ? all[0]
      : { apiVersion: 'v1', items: all, kind: 'List', metadata: { resourceVersion: '' } };
    try {
      return renderJsonPath(template, data);
    } catch (err) {
      if (err instanceof JsonPathError) fail(`error: error parsing jsonpath ${template}, ${err.message}`);
      throw err;
    }
  }
  if (output.startsWith('custom-columns=')) {
    const specs = output
      .slice('custom-columns='.length)
      .split(',')
      .map((s) => {
        const i = s.indexOf(':');
        return { header: s.slice(0, i), path: s.slice(i + 1) };
      });
    const rows = all.map((o) =>
      specs.map((s) => {
        const v = renderJsonPath(`{${s.path}}`, o);
        return v === '' ? '<none>' : v;
      }),
    );
    return kubeTable(
      specs.map((s) => s.header),
      rows,
    );
  }
  if (output !== '' && output !== 'wide')
    fail(`error: unable to match a printer suitable for the output format "${output}"`);
  const wide = output === 'wide';
  const allNs = c.args.flags.has('all-namespaces');
  const nonEmpty = groups.filter((g) => g.items.length > 0);
  const blocks = nonEmpty.map((g) => {
    const cols = columnsFor(g.kind.kind, c.view).filter((col) => wide || col.wide !== true);
    const prefix = groups.length > 1 ? `${qualified(g.kind)}/` : '';
    const nsCol = allNs && g.kind.namespaced;
    const headers = [...(nsCol ? ['NAMESPACE'] : []), 'NAME', ...cols.map((col) => col.header)];
    const rows = g.items.map((o) => [
      ...(nsCol ? [str(at(o, 'metadata', 'namespace'))] : []),
      `${prefix}${nameOf(o)}`,
      ...cols.map((col) => col.get(o)),
    ]);
    const table = kubeTable(headers, rows);
    return c.args.flags.has('no-headers') ? table.split('\n').slice(1).join('\n') : table;
  });
  return blocks.join('\n');
}

function verbGet(c: Ctx, words: readonly string[]): CliResult {
  const targets = parseTargets(words);
  const allNs = c.args.flags.has('all-namespaces');
  const groups: { kind: KindInfo; items: Obj[]; named: boolean }[] = [];
  const errors: string[] = [];
  for (const t of targets) {
    const objs = listObjects(c, t.kind, allNs);
    if (t.names.length === 0) {
      groups.push({ kind: t.kind, items: objs, named: false });
      continue;
    }
    const items: Obj[] = [];
    for (const n of t.names) {
      const o = objs.find((x) => nameOf(x) === n);
      if (o === undefined) {
        if (!c.args.flags.has('ignore-not-found')) errors.push(notFound(t.kind, n));
      } else items.push(o);
    }
    groups.push({ kind: t.kind, items, named: true });
  }
  const total = groups.reduce((n, g) => n + g.items.length, 0);
  const structured = /^(json|yaml)$/.test(one(c.args, 'output') ?? '');
  const stderr = errors.map((e) => `${e}\n`).join('');
  if (total > 0) return { code: errors.length > 0 ? 1 : 0, stdout: printGet(c, groups), stderr };
  if (errors.length > 0) return { code: 1, stdout: '', stderr };
  // An empty list is still a List document in json/yaml; tables say so on stderr instead.
  if (structured) return { code: 0, stdout: printGet(c, groups), stderr: '' };
  if (groups.some((g) => g.named)) return { code: 0, stdout: '', stderr: '' };
  const where = allNs || groups.every((g) => !g.kind.namespaced) ? '' : ` in ${c.namespace} namespace`;
  return { code: 0, stdout: '', stderr: `No resources found${where}.\n` };
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Obj =
    target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Obj) } : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function jsonPatch(doc: Obj, ops: unknown): Obj {
  if (!Array.isArray(ops)) fail('error: unable to parse "json" patch: expected an array of operations');
  const out = structuredClone(doc);
  for (const raw of ops as Obj[]) {
    const op = str(raw.op);
    const ptr = str(raw.path)
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = ptr.pop();
    let parent: unknown = out;
    for (const seg of ptr) parent = (parent as Obj)?.[seg];
    if (last === undefined || parent === null || typeof parent !== 'object') {
      fail(
        `The request is invalid: the server rejected our request due to an error in our request: path ${str(raw.path)} not found`,
      );
    }
    if (Array.isArray(parent)) {
      const idx = last === '-' ? parent.length : Number(last);
      if (op === 'remove') parent.splice(idx, 1);
      else if (op === 'add') parent.splice(idx, 0, raw.value);
      else if (op === 'replace') parent[idx] = raw.value;
    } else {
      const p = parent as Obj;
      if (op === 'remove') {
        if (!(last in p))
          fail(
            `The request is invalid: the server rejected our request due to an error in our request: path ${str(raw.path)} not found`,
          );
        delete p[last];
      } else if (op === 'add' || op === 'replace') p[last] = raw.value;
    }
  }
  return out;
}

function findKube(c: Ctx, kind: KindInfo, name: string): KubeObject | undefined {
  return c.state.kube.find((o) => o.kind === kind.kind && o.name === name && o.namespace === c.namespace);
}

function singleTarget(words: readonly string[], verb: string): { kind: KindInfo; name: string } {
  const targets = parseTargets(words);
  const t = targets[0];
  const name = t?.names[0];
  if (t === undefined || name === undefined || name === '') {
    fail(`error: you must specify a resource name to ${verb}`);
  }
  if (!['Cluster', 'OpenStackCluster', 'Machine'].includes(t.kind.kind)) {
    fail(`error: capi-sim does not simulate ${verb} on ${t.kind.plural}`);
  }
  return { kind: t.kind, name };
}

function verbPatch(c: Ctx, words: readonly string[]): CliResult {
  const { kind, name } = singleTarget(words, 'patch');
  const target = `${kind.kind.toLowerCase()}/${name}`;
  const raw = one(c.args, 'patch');
  if (raw === undefined) fail('error: must specify -p to patch');
  const type = one(c.args, 'type') ?? 'strategic';
  const o = findKube(c, kind, name);
  if (o === undefined) {
    const msg = notFound(kind, name);
    c.rec.journal('kubectl.patch', target, false, msg);
    c.rec.violation(
      'patch-not-found',
      target,
      `patch on ${c.namespace}/${name}, which does not exist (name-guard: list first)`,
    );
    fail(msg);
  }
  if (type === 'strategic') {
    const msg = `error: application/strategic-merge-patch+json is not supported by ${kind.apiVersion}, Kind=${kind.kind}: the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`;
    c.rec.journal('kubectl.patch', target, false, msg);
    fail(msg);
  }
  let patch: unknown;
  try {
    patch = JSON.parse(raw);
  } catch {
    const msg = `error: unable to parse "${raw}": yaml: did not find expected node content`;
    c.rec.journal('kubectl.patch', target, false, msg);
    fail(msg);
  }
  const doc: Obj = { metadata: { finalizers: o.finalizers, labels: o.labels }, spec: o.spec };
  const next = (type === 'json' ? jsonPatch(doc, patch) : mergePatch(doc, patch)) as Obj;
  const finalizers = at(next, 'metadata', 'finalizers');
  const labels = at(next, 'metadata', 'labels');
  const newFinalizers = Array.isArray(finalizers) ? finalizers.map(String) : [];
  const changed =
    JSON.stringify(newFinalizers) !== JSON.stringify(o.finalizers) ||
    JSON.stringify(labels ?? {}) !== JSON.stringify(o.labels) ||
    JSON.stringify(next.spec ?? {}) !== JSON.stringify(o.spec);
  if (o.deletionAt === null && JSON.stringify(newFinalizers) !== JSON.stringify(o.finalizers)) {
    c.rec.violation(
      'patched-live-object',
      target,
      `finalizers changed on ${c.namespace}/${name}, which is not being deleted`,
    );
  }
  o.finalizers = newFinalizers;
  o.labels = (labels ?? {}) as Record<string, string>;
  o.spec = (next.spec ?? {}) as Record<string, unknown>;
  c.rec.journal('kubectl.patch', target, true);
  return {
    code: 0,
    stdout: `${qualified(kind)}/${name} patched${changed ? '' : ' (no change)'}\n`,
    stderr: '',
  };
}

function verbDelete(
  c: Ctx,
  words: readonly string[],
): CliResult & { waitFor?: { kind: KindInfo; name: string } } {
  const { kind, name } = singleTarget(words, 'delete');
  const target = `${kind.kind.toLowerCase()}/${name}`;
  const o = findKube(c, kind, name);
  if (o === undefined) {
    if (c.args.flags.has('ignore-not-found')) return { code: 0, stdout: '', stderr: '' };
    const msg = notFound(kind, name);
    c.rec.journal('kubectl.delete', target, false, msg);
    c.rec.violation(
      'patch-not-found',
      target,
      `delete on ${c.namespace}/${name}, which does not exist (name-guard: list first)`,
    );
    fail(msg);
  }
  if (o.deletionAt === null) {
    c.rec.violation(
      'patched-live-object',
      target,
      `delete issued on ${c.namespace}/${name}, which was not being deleted`,
    );
    o.deletionAt = c.now;
  }
  c.rec.journal('kubectl.delete', target, true);
  const wait = !c.args.flags.has('no-wait');
  return {
    code: 0,
    stdout: `${qualified(kind)} "${name}" deleted\n`,
    stderr: '',
    ...(wait ? { waitFor: { kind, name } } : {}),
  };
}

function parseTimeout(s: string | undefined): number | null {
  if (s === undefined || s === '0' || s === '0s') return null;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s);
  if (m === null) fail(`error: invalid argument "${s}" for "--timeout" flag: time: invalid duration "${s}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return n * (unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000);
}

export interface KubectlOptions {
  readonly dir: string;
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  /** `k8s kubectl` on the VM itself: talks to the local API without a kubeconfig. */
  readonly local?: boolean;
}

export async function runKubectl(opts: KubectlOptions): Promise<CliResult> {
  const parsed = parseArgs(opts.argv, SPECS);
  if (!parsed.ok) {
    const bad = parsed.error.replace(/^unrecognized arguments: /, '');
    return {
      code: 1,
      stdout: '',
      stderr: `error: unknown flag: ${bad.split(' ')[0]}\nSee 'kubectl --help' for usage.\n`,
    };
  }
  const args = parsed.args;
  const [verb, ...words] = args.positionals;
  if (verb === undefined) {
    return { code: 0, stdout: 'kubectl controls the Kubernetes cluster manager (capi-sim).\n', stderr: '' };
  }
  if (verb === 'version' && args.flags.has('client')) {
    return { code: 0, stdout: 'Client Version: v1.32.3\nKustomize Version: v5.5.0\n', stderr: '' };
  }
  if (!['get', 'patch', 'delete', 'version', 'cluster-info'].includes(verb)) {
    return { code: 1, stdout: '', stderr: `error: unknown command "${verb}" for "kubectl"\n` };
  }
  let endpoint: Endpoint | null;
  try {
    endpoint =
      opts.local === true
        ? { host: '127.0.0.1', port: API_PORT }
        : kubeconfigEndpoint(opts.env, one(args, 'kubeconfig'));
  } catch (err) {
    if (err instanceof CliExit) return { code: err.code, stdout: '', stderr: err.stderr };
    throw err;
  }
  let delayMs = 0;
  let waitFor: { kind: KindInfo; name: string } | undefined;
  let result: CliResult;
  try {
    result = withState(opts.dir, (state): CliResult => {
      const now = Date.now();
      settle(state, now);
      if (endpoint !== null && workloadAt(state, endpoint.host, endpoint.port)) {
        return workloadKubectl(state, now, verb, words, one(args, 'output'));
      }
      const reach = reachApi(state, endpoint, now);
      if (!reach.ok) {
        delayMs = reach.delayMs;
        if (verb === 'patch' || verb === 'delete') {
          new Recorder(opts.dir, 'kubectl', ['kubectl', ...opts.argv], {
            projectId: null,
            namespace: one(args, 'namespace') ?? 'default',
          }).journal(`kubectl.${verb}`, words.join(' '), false, reach.message);
        }
        return { code: 1, stdout: '', stderr: `${reach.message}\n` };
      }
      const namespace = one(args, 'namespace') ?? 'default';
      const c: Ctx = {
        state,
        now,
        view: new View(state, now),
        args,
        namespace,
        rec: new Recorder(opts.dir, 'kubectl', ['kubectl', ...opts.argv], { projectId: null, namespace }),
      };
      try {
        if (verb === 'get') return verbGet(c, words);
        if (verb === 'patch') return verbPatch(c, words);
        if (verb === 'delete') {
          const r = verbDelete(c, words);
          waitFor = r.waitFor;
          return { code: r.code, stdout: r.stdout, stderr: r.stderr };
        }
        if (verb === 'version') {
          return {
            code: 0,
            stdout: `Client Version: v1.32.3\nKustomize Version: v5.5.0\nServer Version: ${state.mgmt.k8sVersion}\n`,
            stderr: '',
          };
        }
        return {
          code: 0,
          stdout: `Kubernetes control plane is running at https://${endpoint?.host ?? '127.0.0.1'}:${API_PORT}\nCoreDNS is running at https://${endpoint?.host ?? '127.0.0.1'}:${API_PORT}/api/v1/namespaces/kube-system/services/coredns:udp-53/proxy\n\nTo further debug and diagnose cluster problems, use 'kubectl cluster-info dump'.\n`,
          stderr: '',
        };
      } catch (err) {
        if (err instanceof CliExit) return { code: err.code, stdout: err.stdout, stderr: err.stderr };
        throw err;
      } finally {
        settle(state, now);
      }
    });
  } catch (err) {
    if (err instanceof CliExit) return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    throw err;
  }
  if (delayMs > 0) await sleep(delayMs);
  if (waitFor !== undefined) {
    let timeoutMs: number | null;
    try {
      timeoutMs = parseTimeout(one(args, 'timeout'));
    } catch (err) {
      if (err instanceof CliExit) return { code: err.code, stdout: result.stdout, stderr: err.stderr };
      throw err;
    }
    const target = waitFor;
    const deadline = timeoutMs === null ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
    const namespace = one(args, 'namespace') ?? 'default';
    for (;;) {
      const gone = withState(opts.dir, (state) => {
        settle(state, Date.now());
        return !state.kube.some(
          (o) => o.kind === target.kind.kind && o.name === target.name && o.namespace === namespace,
        );
      });
      if (gone) break;
      if (Date.now() > deadline) {
        return {
          code: 1,
          stdout: result.stdout,
          stderr: `error: timed out waiting for the condition on ${target.kind.plural}/${target.name}\n`,
        };
      }
      await sleep(100);
    }
  }
  return result;
}
