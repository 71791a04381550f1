/**
 * The mgmt VM's side of the hop: the k8s-snap `k8s` CLI. Only reachable through the hop `ssh`
 * (its wrapper lives in a separate bin dir that is on the VM's PATH, not the jumphost's).
 */
import type { CliResult } from './cli.js';
import { execUserKubeconfigYaml, FOREIGN_SERVER, kubeconfigYaml } from './kubeconfig.js';
import { runKubectl } from './kubectl.js';
import { mgmtView } from './model.js';
import { readState, withState } from './store.js';
import { siteSecondsToMs, sleep } from './time.js';

/** Set by the fake sudo; k8s-snap refuses to run unprivileged. */
export const VM_ROOT_ENV = 'CAPI_SIM_VM_ROOT';

const controlSocketError = (endpoint: string) =>
  `Error: failed to get cluster status: failed to query endpoint GET ${endpoint}: ` +
  `Get "http://control.socket/1.0/${endpoint.replace(/^\/1\.0\//, '')}": context deadline exceeded\n`;

function statusText(nodeIp: string, ready: boolean): string {
  return [
    `cluster status:           ${ready ? 'ready' : 'not ready'}`,
    `control plane nodes:      ${nodeIp}:6400 (voter)`,
    'high availability:        no',
    'datastore:                k8s-dqlite',
    'network:                  enabled',
    'dns:                      enabled at 127.0.5.53',
    'ingress:                  disabled',
    'load-balancer:            disabled',
    'local-storage:            enabled at /var/snap/k8s/common/rawfile-storage',
    'gateway                   enabled',
    '',
  ].join('\n');
}

export interface K8sOptions {
  readonly dir: string;
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
}

export async function runK8s(opts: K8sOptions): Promise<CliResult> {
  const [sub, ...rest] = opts.argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    return {
      code: 0,
      stdout:
        'Canonical Kubernetes CLI (capi-sim)\n\nUsage:\n  k8s [command]\n\nAvailable Commands:\n  config      Generate an admin kubeconfig\n  kubectl     Integrated Kubernetes kubectl client\n  status      Retrieve the current status of the cluster\n',
      stderr: '',
    };
  }
  if (sub === 'kubectl') return runKubectl({ dir: opts.dir, argv: rest, env: opts.env, local: true });
  if (opts.env[VM_ROOT_ENV] !== '1') {
    return { code: 1, stdout: '', stderr: 'Error: k8s CLI must be run as root (try again with sudo)\n' };
  }
  if (sub === 'status') {
    const waitReady = rest.includes('--wait-ready');
    const timeoutArg = rest.find((a) => a.startsWith('--timeout'))?.split('=')[1];
    let deadline = Number.POSITIVE_INFINITY;
    for (;;) {
      const r = withState(opts.dir, (state): CliResult & { ready: boolean; scale: number } => {
        const now = Date.now();
        const v = mgmtView(state, now);
        const scale = state.timeScale;
        if (!v.apiUp) {
          return {
            code: 1,
            stdout: '',
            stderr: controlSocketError('/1.0/k8sd/cluster'),
            ready: false,
            scale,
          };
        }
        if (!v.k8sReady) {
          state.mgmt.k8sStatusCalls += 1;
          if (state.mgmt.k8sStatusErrorCalls.includes(state.mgmt.k8sStatusCalls)) {
            return {
              code: 1,
              stdout: '',
              stderr: controlSocketError('/1.0/k8sd/cluster'),
              ready: false,
              scale,
            };
          }
        }
        return {
          code: 0,
          stdout: statusText(state.mgmt.nodeIp, v.k8sReady),
          stderr: '',
          ready: v.k8sReady,
          scale,
        };
      });
      if (!waitReady || r.ready) return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      if (deadline === Number.POSITIVE_INFINITY) {
        const secs = timeoutArg === undefined ? 90 : Number.parseFloat(timeoutArg);
        deadline = Date.now() + siteSecondsToMs({ startedAt: 0, timeScale: r.scale }, secs);
      }
      if (Date.now() > deadline) {
        return {
          code: 1,
          stdout: r.stdout,
          stderr: 'Error: timed out waiting for the cluster to become ready\n',
        };
      }
      await sleep(50);
    }
  }
  if (sub === 'config') {
    const state = readState(opts.dir);
    const v = mgmtView(state, Date.now());
    if (!v.apiUp) return { code: 1, stdout: '', stderr: controlSocketError('/1.0/k8sd/kubeconfig') };
    let server = `https://${state.mgmt.nodeIp}:6443`;
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i] ?? '';
      if (a.startsWith('server=')) server = a.slice('server='.length);
      else if (a.startsWith('--server=')) server = a.slice('--server='.length);
      else if (a === '--server' && rest[i + 1] !== undefined) server = rest[++i] ?? server;
    }
    const served = state.mgmt.kubeconfig;
    return {
      code: 0,
      stdout:
        served === 'exec-user'
          ? execUserKubeconfigYaml(server)
          : kubeconfigYaml(served === 'foreign-server' ? FOREIGN_SERVER : server),
      stderr: '',
    };
  }
  return {
    code: 1,
    stdout: '',
    stderr: `Error: unknown command "${sub}" for "k8s"\nRun 'k8s --help' for usage.\n`,
  };
}
