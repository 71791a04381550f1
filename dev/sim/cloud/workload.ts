/**
 * The workload cluster's own API server, as `kubectl --kubeconfig ~/<cluster>-kc/config` reaches it
 * through the kube-api load balancer's VIP. It keeps serving while the mgmt cluster is down (no
 * runtime dependency), which is exactly when new nodes keep node.cluster.x-k8s.io/uninitialized:
 * only the mgmt cluster's CAPI machine controller removes that taint (appendix A uninitialized-taint).
 */
import type { CliResult } from './cli.js';
import { kubeJson, kubeTable } from './format.js';
import { clockOf } from './model.js';
import type { CloudState, WorkloadNode } from './schema.js';
import { humanDuration, siteAgeSeconds, siteIso } from './time.js';

export const UNINITIALIZED_TAINT = 'node.cluster.x-k8s.io/uninitialized';

/** The workload API whose VIP is `host`, if a Magnum cluster's api_address names it. */
export function workloadAt(state: CloudState, host: string, port: number): boolean {
  return state.coeClusters.some((c) => {
    try {
      const u = new URL(c.apiAddress);
      return u.hostname === host && Number(u.port || 443) === port;
    } catch {
      return false;
    }
  });
}

function nodeObject(state: CloudState, n: WorkloadNode, now: number): Record<string, unknown> {
  const iso = (ms: number) => siteIso(clockOf(state), ms);
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      creationTimestamp: iso(n.createdAt),
      labels: {
        'kubernetes.io/hostname': n.name,
        'kubernetes.io/os': 'linux',
        ...(n.role === 'control-plane' ? { 'node-role.kubernetes.io/control-plane': '' } : {}),
      },
      name: n.name,
    },
    spec: {
      ...(n.uninitialized ? { taints: [{ effect: 'NoSchedule', key: UNINITIALIZED_TAINT }] } : {}),
    },
    status: {
      addresses: [
        { address: n.ip, type: 'InternalIP' },
        { address: n.name, type: 'Hostname' },
      ],
      conditions: [
        {
          lastHeartbeatTime: iso(now),
          lastTransitionTime: iso(n.createdAt),
          message: n.ready ? 'kubelet is posting ready status' : 'container runtime network not ready',
          reason: n.ready ? 'KubeletReady' : 'KubeletNotReady',
          status: n.ready ? 'True' : 'False',
          type: 'Ready',
        },
      ],
      nodeInfo: { kubeletVersion: 'v1.32.13', operatingSystem: 'linux', architecture: 'amd64' },
    },
  };
}

/** `kubectl get nodes [-o json|wide]` against the workload cluster; other verbs are not simulated. */
export function workloadKubectl(
  state: CloudState,
  now: number,
  verb: string,
  words: readonly string[],
  output: string | undefined,
): CliResult {
  const resource = words[0] ?? '';
  if (verb !== 'get' || !['nodes', 'node', 'no'].includes(resource)) {
    return {
      code: 1,
      stdout: '',
      stderr: `capi-sim: only \`kubectl get nodes\` is simulated on the workload cluster (got ${verb} ${resource})\n`,
    };
  }
  const nodes = state.workload.nodes.map((n) => nodeObject(state, n, now));
  if (output === 'json') {
    return {
      code: 0,
      stdout: kubeJson({ apiVersion: 'v1', items: nodes, kind: 'List', metadata: { resourceVersion: '' } }),
      stderr: '',
    };
  }
  const rows = state.workload.nodes.map((n) => [
    n.name,
    n.ready ? 'Ready' : 'NotReady',
    n.role === 'control-plane' ? 'control-plane' : '<none>',
    humanDuration(siteAgeSeconds(clockOf(state), n.createdAt, now)),
    'v1.32.13',
    ...(output === 'wide' ? [n.ip] : []),
  ]);
  const headers = [
    'NAME',
    'STATUS',
    'ROLES',
    'AGE',
    'VERSION',
    ...(output === 'wide' ? ['INTERNAL-IP'] : []),
  ];
  return { code: 0, stdout: kubeTable(headers, rows), stderr: '' };
}
