/**
 * Behaviour of the simulated cloud: lazily derived visible status, the time-driven transitions
 * (`settle`), placement headroom and the octavia failover flow. Pure functions over CloudState;
 * the CLIs call `settle` under the state lock before and after every command.
 */
import type { Amphora, CloudState, Hypervisor, KubeObject, LoadBalancer, Server } from './schema.js';
import { type SimClock, siteSecondsToMs } from './time.js';

export function clockOf(state: CloudState): SimClock {
  return { startedAt: state.startedAt, timeScale: state.timeScale };
}

export function siteMs(state: CloudState, seconds: number): number {
  return siteSecondsToMs(clockOf(state), seconds);
}

/** Deterministic ids for objects the simulator creates, so tests can predict them. */
export function mintId(state: CloudState, prefix: string): string {
  state.seq += 1;
  const n = state.seq.toString(16).padStart(4, '0');
  return `${prefix}-0000-4000-8000-0000f000${n}`;
}

// ---------------------------------------------------------------------------------------------
// Nova

export interface ServerView {
  readonly status: 'ACTIVE' | 'SHUTOFF' | 'ERROR' | 'BUILD';
  readonly taskState: string | null;
  readonly vmState: string;
  /** nova's power_state integer: 0 NOSTATE, 1 Running, 4 Shutdown. */
  readonly powerState: number;
}

export function serverView(server: Server, now: number): ServerView {
  const t = server.transition;
  if (t !== null && now < t.until) {
    if (t.kind === 'power-on') {
      return { status: 'SHUTOFF', taskState: 'powering-on', vmState: 'stopped', powerState: 4 };
    }
    return { status: 'BUILD', taskState: 'spawning', vmState: 'building', powerState: 0 };
  }
  switch (server.status) {
    case 'ACTIVE':
      return { status: 'ACTIVE', taskState: null, vmState: 'active', powerState: 1 };
    case 'SHUTOFF':
      return { status: 'SHUTOFF', taskState: null, vmState: 'stopped', powerState: 4 };
    default:
      return { status: 'ERROR', taskState: null, vmState: 'error', powerState: 0 };
  }
}

export const POWER_STATE_NAMES: Readonly<Record<number, string>> = {
  0: 'NOSTATE',
  1: 'Running',
  3: 'Paused',
  4: 'Shutdown',
  6: 'Crashed',
  7: 'Suspended',
};

export function flavorRam(state: CloudState, server: Server): number {
  return state.flavors.find((f) => f.id === server.flavorId)?.ramMb ?? 0;
}

export interface HostUsage {
  readonly memoryMbUsed: number;
  readonly vcpusUsed: number;
  /** physical MB * ram_allocation_ratio - reserved_host_memory_mb: what the scheduler will place up to. */
  readonly ceilingMb: number;
}

/** Stopped and ERROR servers keep their placement allocation, exactly as in nova. */
export function hostUsage(state: CloudState, hyp: Hypervisor): HostUsage {
  let memoryMbUsed = 0;
  let vcpusUsed = 0;
  for (const s of state.servers) {
    if (s.hostId !== hyp.id) continue;
    const flavor = state.flavors.find((f) => f.id === s.flavorId);
    memoryMbUsed += flavor?.ramMb ?? 0;
    vcpusUsed += flavor?.vcpus ?? 0;
  }
  const ceilingMb = Math.floor(
    hyp.memoryMb * state.config.ramAllocationRatio - state.config.reservedHostMemoryMb,
  );
  return { memoryMbUsed, vcpusUsed, ceilingMb };
}

/** The host the scheduler would pick for one more amphora (most free RAM first), or null: NoValidHost. */
export function pickAmphoraHost(state: CloudState): Hypervisor | null {
  const need = state.flavors.find((f) => f.id === state.config.amphoraFlavorId)?.ramMb ?? 1024;
  let best: { hyp: Hypervisor; free: number } | null = null;
  for (const hyp of state.hypervisors) {
    if (hyp.state !== 'up' || hyp.status !== 'enabled') continue;
    const u = hostUsage(state, hyp);
    if (u.memoryMbUsed + need > u.ceilingMb) continue;
    const free = u.ceilingMb - u.memoryMbUsed;
    if (best === null || free > best.free) best = { hyp, free };
  }
  return best?.hyp ?? null;
}

// ---------------------------------------------------------------------------------------------
// The management VM

export interface MgmtView {
  readonly server: Server | undefined;
  readonly vmStatus: ServerView['status'] | 'MISSING';
  /** The FIP:22 listener should accept connections. */
  readonly sshdUp: boolean;
  /** kube-apiserver answers TCP (kubectl gets TLS handshake timeouts until k8sReady). */
  readonly apiUp: boolean;
  readonly k8sReady: boolean;
}

export function mgmtView(state: CloudState, now: number): MgmtView {
  const server = state.servers.find((s) => s.id === state.mgmt.serverId);
  if (server === undefined) {
    return { server, vmStatus: 'MISSING', sshdUp: false, apiUp: false, k8sReady: false };
  }
  const view = serverView(server, now);
  const on = view.status === 'ACTIVE';
  const m = state.mgmt;
  return {
    server,
    vmStatus: view.status,
    sshdUp: on && m.sshdAt !== null && now >= m.sshdAt,
    apiUp: on && m.apiAt !== null && now >= m.apiAt,
    k8sReady: on && m.k8sReadyAt !== null && now >= m.k8sReadyAt,
  };
}

/** `server start` on the mgmt VM: schedules ACTIVE, sshd, API and k8s readiness from now. */
export function powerOnMgmt(state: CloudState, server: Server, now: number): void {
  const c = state.config;
  server.status = 'ACTIVE';
  server.transition = { kind: 'power-on', until: now + siteMs(state, c.activeAfterS) };
  if (server.id === state.mgmt.serverId) {
    state.mgmt.sshdAt = now + siteMs(state, Math.max(c.sshdAfterS, c.activeAfterS));
    state.mgmt.apiAt = now + siteMs(state, Math.max(c.apiAfterS, c.sshdAfterS));
    state.mgmt.k8sReadyAt = now + siteMs(state, Math.max(c.k8sReadyAfterS, c.apiAfterS));
    state.mgmt.bootCount += 1;
    state.mgmt.k8sStatusCalls = 0;
  }
}

export function powerOff(state: CloudState, server: Server): void {
  server.status = 'SHUTOFF';
  server.transition = null;
  if (server.id === state.mgmt.serverId) {
    state.mgmt.sshdAt = null;
    state.mgmt.apiAt = null;
    state.mgmt.k8sReadyAt = null;
  }
}

// ---------------------------------------------------------------------------------------------
// Octavia

/** Whether the amphora row is in octavia's DB at this moment (the reappearing-amphora race). */
export function amphoraExists(state: CloudState, amp: Amphora): boolean {
  return amp.appearsAfterReads === null || state.amphoraListReads >= amp.appearsAfterReads - 1;
}

export function visibleAmphorae(state: CloudState): Amphora[] {
  return state.amphorae.filter((a) => amphoraExists(state, a));
}

/** The live octavia row a nova server backs, by compute id or by its `amphora-<id>` name. */
export function liveAmphoraForServer(state: CloudState, server: Server): Amphora | undefined {
  const byName = server.name.startsWith('amphora-') ? server.name.slice('amphora-'.length) : null;
  return visibleAmphorae(state).find((a) => a.computeId === server.id || a.id === byName);
}

export interface FailoverPlan {
  readonly outcome: 'success' | 'error';
  readonly reason: string;
  readonly host: Hypervisor | null;
}

export function planFailover(state: CloudState, lb: LoadBalancer): FailoverPlan {
  const host = pickAmphoraHost(state);
  if (host === null) return { outcome: 'error', reason: 'NoValidHost', host: null };
  if (lb.forcedFailoverOutcome === 'error') return { outcome: 'error', reason: 'forced', host };
  return { outcome: 'success', reason: 'ok', host };
}

/**
 * STANDALONE failover: the replacement amphora is built BEFORE the old one is reaped, so it needs
 * one slot of headroom. Without a host the attempt fast-fails and leaves an ERROR server behind
 * with no octavia row: each blind retry mints another zombie.
 */
export function startFailover(state: CloudState, lb: LoadBalancer, now: number): FailoverPlan {
  const plan = planFailover(state, lb);
  const c = state.config;
  const duration = plan.outcome === 'success' ? c.failoverDurationS : c.failoverFailAfterS;
  const completesAt = now + siteMs(state, duration);
  const newAmphoraId = mintId(state, 'a0000000');
  const newServerId = newAmphoraId.replace(/^a0000000/, '5e000000');
  const image = state.images.find((i) => i.id === c.amphoraImageId);
  const lbMgmtIp = `fc00:1::${state.seq.toString(16)}`;
  const buildUntil =
    plan.outcome === 'success' ? now + siteMs(state, duration * 0.4) : now + siteMs(state, duration * 0.8);
  state.servers.push({
    id: newServerId,
    name: `amphora-${newAmphoraId}`,
    projectId: state.auth.servicesProjectId,
    hostId: plan.host?.id ?? null,
    flavorId: c.amphoraFlavorId,
    imageId: image?.id ?? c.amphoraImageId,
    status: plan.reason === 'NoValidHost' ? 'ERROR' : 'ACTIVE',
    transition: { kind: 'build', until: plan.reason === 'NoValidHost' ? completesAt : buildUntil },
    addresses: plan.host === null ? {} : { [c.amphoraNetworkName]: [lbMgmtIp] },
    availabilityZone: 'nova',
    keyName: null,
    createdAt: now,
    role: 'amphora',
    fault:
      plan.reason === 'NoValidHost' ? 'No valid host was found. There are not enough hosts available.' : null,
  });
  state.amphorae.push({
    id: newAmphoraId,
    loadbalancerId: lb.id,
    computeId: newServerId,
    status: 'BOOTING',
    role: 'STANDALONE',
    lbNetworkIp: lbMgmtIp,
    haIp: lb.vipAddress,
    vrrpIp: null,
    haPortId: lb.vipPortId,
    vrrpPortId: null,
    imageId: c.amphoraImageId,
    computeFlavor: c.amphoraFlavorId,
    createdAt: now,
    updatedAt: now,
    appearsAfterReads: null,
  });
  lb.provisioningStatus = 'PENDING_UPDATE';
  lb.activeSince = null;
  lb.updatedAt = now;
  lb.failover = {
    startedAt: now,
    completesAt,
    outcome: plan.outcome,
    reason: plan.reason,
    newAmphoraId,
    newServerId,
    hostId: plan.host?.id ?? null,
  };
  return plan;
}

function completeFailover(state: CloudState, lb: LoadBalancer): void {
  const f = lb.failover;
  if (f === null) return;
  if (f.outcome === 'success') {
    const old = state.amphorae.filter((a) => a.loadbalancerId === lb.id && a.id !== f.newAmphoraId);
    const oldServers = new Set(old.map((a) => a.computeId).filter((id): id is string => id !== null));
    state.servers = state.servers.filter((s) => !oldServers.has(s.id));
    state.amphorae = state.amphorae.filter((a) => !old.includes(a));
    const fresh = state.amphorae.find((a) => a.id === f.newAmphoraId);
    if (fresh !== undefined) {
      fresh.status = 'ALLOCATED';
      fresh.updatedAt = f.completesAt;
    }
    lb.provisioningStatus = 'ACTIVE';
    lb.operatingStatus = 'ONLINE';
    lb.activeSince = f.completesAt;
  } else {
    // The DB row goes; the nova server stays behind as a zombie.
    state.amphorae = state.amphorae.filter((a) => a.id !== f.newAmphoraId);
    lb.provisioningStatus = 'ERROR';
    lb.activeSince = null;
  }
  lb.updatedAt = f.completesAt;
  lb.failoverHistory.push({ startedAt: f.startedAt, completedAt: f.completesAt, outcome: f.outcome });
  lb.failover = null;
}

export function lastFailoverFailed(lb: LoadBalancer): boolean {
  return lb.failoverHistory.at(-1)?.outcome === 'error';
}

// ---------------------------------------------------------------------------------------------
// Cluster API objects and Magnum

export interface ConditionView {
  readonly status: 'True' | 'False';
  readonly reason: string;
  readonly message: string;
  readonly since: number;
}

/** CAPO reports the kube-api LB through InfrastructureReady; Cluster Available follows it. */
export function clusterAvailability(state: CloudState, obj: KubeObject, now: number): ConditionView {
  const lb = obj.lbId === null ? undefined : state.loadbalancers.find((l) => l.id === obj.lbId);
  if (lb === undefined) {
    return { status: 'True', reason: 'Available', message: '', since: obj.createdAt };
  }
  const resyncAt = lb.activeSince === null ? null : lb.activeSince + siteMs(state, state.config.capoResyncS);
  if (lb.provisioningStatus === 'ACTIVE' && resyncAt !== null && now >= resyncAt) {
    return { status: 'True', reason: 'Available', message: '', since: resyncAt };
  }
  const osc = state.kube.find((o) => o.kind === 'OpenStackCluster' && o.clusterName === obj.clusterName);
  const oscName = osc?.name ?? obj.clusterName;
  return {
    status: 'False',
    reason: 'NotAvailable',
    message:
      `* InfrastructureReady: OpenStackCluster ${oscName}: failed to reconcile load balancer: ` +
      `timed out waiting for load balancer ${lb.id} to become ACTIVE (provisioning_status ${lb.provisioningStatus})`,
    since: lb.updatedAt,
  };
}

export type HealthStatus = 'HEALTHY' | 'UNHEALTHY';

export function coeHealth(
  state: CloudState,
  name: string,
  now: number,
): { status: HealthStatus; reason: Record<string, string> } {
  if (!mgmtView(state, now).k8sReady) return { status: 'UNHEALTHY', reason: {} };
  // A real component failure the conductor reads from the mgmt cluster: not the D-042 signature.
  const reported = state.coeClusters.find((c) => c.name === name)?.healthReason ?? null;
  if (reported !== null) return { status: 'UNHEALTHY', reason: reported };
  const ready = {
    [`${name}.cluster`]: 'Ready',
    [`${name}.controlplane`]: 'Ready',
    [`${name}.nodegroup.default-worker`]: 'Ready',
  };
  if (state.config.magnumDriverFixed) {
    return { status: 'HEALTHY', reason: { ...ready, [`${name}.infrastructure`]: 'Ready' } };
  }
  return {
    status: 'UNHEALTHY',
    reason: { ...ready, [`${name}.infrastructure`]: 'Infrastructure resource not found.' },
  };
}

// ---------------------------------------------------------------------------------------------
// settle: apply every transition whose time has come

export function settle(state: CloudState, now: number): void {
  for (const lb of state.loadbalancers) {
    if (lb.failover !== null && now >= lb.failover.completesAt) completeFailover(state, lb);
  }
  for (const s of state.servers) {
    if (s.transition !== null && now >= s.transition.until) s.transition = null;
  }
  settleKube(state, now);
}

function settleKube(state: CloudState, now: number): void {
  // An object marked for deletion goes as soon as its last finalizer is cleared.
  state.kube = state.kube.filter((o) => !(o.deletionAt !== null && o.finalizers.length === 0));
  for (const cluster of state.kube) {
    if (cluster.kind !== 'Cluster' || cluster.deletionAt === null || cluster.finalizeAt !== null) continue;
    const dependents = state.kube.some(
      (o) =>
        o !== cluster &&
        o.kind !== 'Cluster' &&
        o.clusterName === cluster.name &&
        o.namespace === cluster.namespace,
    );
    if (!dependents) cluster.finalizeAt = now + siteMs(state, state.config.clusterFinalizeAfterS);
  }
  const gone = state.kube.filter((o) => o.kind === 'Cluster' && o.finalizeAt !== null && now >= o.finalizeAt);
  if (gone.length === 0) return;
  const goneNames = new Set(gone.map((o) => o.name));
  state.kube = state.kube.filter((o) => !gone.includes(o));
  // The magnum conductor sees the CAPI Cluster vanish and completes its own delete.
  state.coeClusters = state.coeClusters.filter(
    (c) => !(c.status === 'DELETE_IN_PROGRESS' && goneNames.has(c.capiCluster)),
  );
}
