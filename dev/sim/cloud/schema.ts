/**
 * The simulated cloud's persisted state (CAPI_SIM_DIR/state.json). Validated on every read so a
 * hand-edited or half-written file fails loudly instead of producing plausible nonsense.
 * All timestamps are absolute real-clock milliseconds (see time.ts).
 */
import { z } from 'zod';
import { JujuStateSchema } from './juju-model.js';

const Id = z.string().min(1);
const Ms = z.number();
const Int = z.number().int();
const Loopback = z.string().regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/, 'must be a 127.0.0.0/8 address');

export const ProjectSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{32}$/, 'project ids are 32 lowercase hex characters'),
  name: z.string(),
  domain: z.string(),
  description: z.string(),
});

export const FlavorSchema = z.object({ id: Id, name: z.string(), ramMb: Int, vcpus: Int, diskGb: Int });
export const ImageSchema = z.object({
  id: Id,
  name: z.string(),
  status: z.enum(['active', 'queued', 'saving', 'importing', 'deactivated']),
  visibility: z.enum(['public', 'private', 'shared', 'community']),
  ownerId: z.string(),
  /** Glance's free-form properties: kube_version and os_distro drive the magnum-capi-helm driver (L-P6-3). */
  properties: z.record(z.string(), z.string()),
  diskFormat: z.string(),
  sizeBytes: Int.nullable(),
  tags: z.array(z.string()),
  createdAt: Ms,
});

export const KeystoneSchema = z.object({
  users: z.array(z.object({ id: Id, name: z.string(), domain: z.string() })),
  roles: z.array(z.object({ id: Id, name: z.string() })),
  assignments: z.array(z.object({ userId: z.string(), projectId: z.string(), roleId: z.string() })),
  /** Roles are copied in when a credential is minted and never change afterwards (D-039). */
  appCredentials: z.array(
    z.object({
      id: Id,
      name: z.string(),
      description: z.string(),
      userId: z.string(),
      projectId: z.string(),
      roleIds: z.array(z.string()),
      unrestricted: z.boolean(),
      expiresAt: Ms.nullable(),
    }),
  ),
});

/** The workload cluster's nodes as its own API server reports them (reached through the kube-api LB). */
export const WorkloadNodeSchema = z.object({
  name: z.string(),
  role: z.enum(['control-plane', 'worker']),
  ip: z.string(),
  ready: z.boolean(),
  /** node.cluster.x-k8s.io/uninitialized: only the mgmt cluster's CAPI controller removes it. */
  uninitialized: z.boolean(),
  createdAt: Ms,
});

export const HypervisorSchema = z.object({
  id: Id,
  hostname: z.string(),
  hostIp: Loopback,
  type: z.string(),
  state: z.enum(['up', 'down']),
  status: z.enum(['enabled', 'disabled']),
  vcpus: Int,
  memoryMb: Int,
});

export const ServerSchema = z.object({
  id: Id,
  name: z.string(),
  projectId: z.string(),
  hostId: z.string().nullable(),
  flavorId: z.string(),
  imageId: z.string(),
  /** The status the server settles in once `transition` (if any) has passed. */
  status: z.enum(['ACTIVE', 'SHUTOFF', 'ERROR']),
  /** power-on: shows SHUTOFF/powering-on until `until`; build: shows BUILD/spawning until `until`. */
  transition: z.object({ kind: z.enum(['power-on', 'build']), until: Ms }).nullable(),
  addresses: z.record(z.string(), z.array(z.string())),
  availabilityZone: z.string(),
  keyName: z.string().nullable(),
  createdAt: Ms,
  role: z.enum(['mgmt', 'amphora', 'workload', 'other']),
  fault: z.string().nullable(),
});

export const MgmtSchema = z.object({
  serverId: Id,
  /** Boot milestones of the current power-on; null while the VM is off. */
  sshdAt: Ms.nullable(),
  apiAt: Ms.nullable(),
  k8sReadyAt: Ms.nullable(),
  /** The loopback port standing in for "FIP:22"; set by the harness. */
  sshPort: Int.nullable(),
  sshHost: Loopback,
  sshUser: z.string(),
  nodeName: z.string(),
  nodeIp: Loopback,
  k8sVersion: z.string(),
  bootCount: Int,
  k8sStatusCalls: Int,
  /** 1-based `k8s status` call numbers (before ready) that hit the k8sd control.socket deadline. */
  k8sStatusErrorCalls: z.array(Int),
  /** The ed25519 host key (base64 blob) of whatever answers on the VM's address (cloud/hostkey.ts). */
  hostKey: z.string(),
  /**
   * What `k8s config` prints: the admin kubeconfig, or one a machine that is not the mgmt VM would hand out
   * (a user whose `exec` runs a command on the jumphost, or a server that is not the mgmt endpoint).
   */
  kubeconfig: z.enum(['admin', 'exec-user', 'foreign-server']),
  /** Sessions the hop opened on the VM (commands run there). */
  hopSessions: Int,
});

export const FailoverSchema = z.object({
  startedAt: Ms,
  completesAt: Ms,
  outcome: z.enum(['success', 'error']),
  reason: z.string(),
  newAmphoraId: Id,
  newServerId: Id,
  hostId: z.string().nullable(),
});

export const LoadBalancerSchema = z.object({
  id: Id,
  name: z.string(),
  description: z.string(),
  projectId: z.string(),
  vipAddress: z.string(),
  vipPortId: z.string(),
  vipSubnetId: z.string(),
  vipNetworkId: z.string(),
  provider: z.string(),
  provisioningStatus: z.enum(['ACTIVE', 'ERROR', 'PENDING_UPDATE', 'PENDING_CREATE', 'PENDING_DELETE']),
  operatingStatus: z.enum(['ONLINE', 'OFFLINE', 'DEGRADED', 'ERROR', 'NO_MONITOR']),
  createdAt: Ms,
  updatedAt: Ms,
  /** When provisioning last became ACTIVE (drives the CAPO resync delay); null while not ACTIVE. */
  activeSince: Ms.nullable(),
  listeners: z.array(z.string()),
  pools: z.array(z.string()),
  forcedFailoverOutcome: z.enum(['success', 'error']).nullable(),
  failover: FailoverSchema.nullable(),
  failoverHistory: z.array(
    z.object({ startedAt: Ms, completedAt: Ms, outcome: z.enum(['success', 'error']) }),
  ),
});

export const AmphoraSchema = z.object({
  id: Id,
  loadbalancerId: z.string().nullable(),
  computeId: z.string().nullable(),
  status: z.enum(['ALLOCATED', 'BOOTING', 'READY', 'ERROR', 'PENDING_CREATE', 'PENDING_DELETE']),
  role: z.enum(['STANDALONE', 'MASTER', 'BACKUP']).nullable(),
  lbNetworkIp: z.string(),
  haIp: z.string(),
  vrrpIp: z.string().nullable(),
  haPortId: z.string().nullable(),
  vrrpPortId: z.string().nullable(),
  imageId: z.string(),
  computeFlavor: z.string(),
  createdAt: Ms,
  updatedAt: Ms,
  /** Row exists only once `amphoraListReads >= appearsAfterReads - 1` (the reappearing-amphora race). */
  appearsAfterReads: Int.nullable(),
});

export const CoeClusterSchema = z.object({
  uuid: Id,
  name: z.string(),
  projectId: z.string(),
  status: z.enum([
    'CREATE_COMPLETE',
    'CREATE_IN_PROGRESS',
    'UPDATE_COMPLETE',
    'DELETE_IN_PROGRESS',
    'CREATE_FAILED',
  ]),
  statusReason: z.string().nullable(),
  /** Who created it: the magnum-capi-helm driver mints the cluster's application credential as them. */
  userId: z.string(),
  /** A health reason the conductor reports instead of the computed one (a real component failure). */
  healthReason: z.record(z.string(), z.string()).nullable(),
  capiCluster: z.string(),
  stackId: z.string(),
  templateId: z.string(),
  keypair: z.string(),
  masterCount: Int,
  nodeCount: Int,
  apiAddress: z.string(),
  coeVersion: z.string(),
  labels: z.record(z.string(), z.string()),
  createdAt: Ms,
});

export const CoeTemplateSchema = z.object({
  uuid: Id,
  name: z.string(),
  projectId: z.string(),
  /** The Glance image the driver reads kube_version and os_distro from (L-P6-3). */
  imageId: z.string(),
  networkDriver: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  createdAt: Ms,
});

export const KubeObjectSchema = z.object({
  kind: z.enum(['Cluster', 'OpenStackCluster', 'Machine']),
  name: z.string(),
  namespace: z.string(),
  uid: z.string(),
  createdAt: Ms,
  deletionAt: Ms.nullable(),
  finalizers: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
  /** The CAPI Cluster this object belongs to (cluster.x-k8s.io/cluster-name). */
  clusterName: z.string(),
  /** Cluster / OpenStackCluster: the kube-api LB whose state drives the Available condition. */
  lbId: z.string().nullable(),
  /** Cluster: when it finishes deleting once nothing blocks it any more. */
  finalizeAt: Ms.nullable(),
  spec: z.record(z.string(), z.unknown()),
  status: z.record(z.string(), z.unknown()),
});

export const NetworkSchema = z.object({
  id: Id,
  name: z.string(),
  projectId: z.string(),
  external: z.boolean(),
  shared: z.boolean(),
  mtu: Int,
  createdAt: Ms,
});

export const SubnetSchema = z.object({
  id: Id,
  name: z.string(),
  networkId: z.string(),
  projectId: z.string(),
  cidr: z.string(),
  gatewayIp: z.string().nullable(),
  ipVersion: z.union([z.literal(4), z.literal(6)]),
  enableDhcp: z.boolean(),
  createdAt: Ms,
});

export const RouterSchema = z.object({
  id: Id,
  name: z.string(),
  projectId: z.string(),
  externalGateway: z.object({ networkId: z.string(), subnetId: z.string(), ip: z.string() }).nullable(),
  createdAt: Ms,
});

export const PortSchema = z.object({
  id: Id,
  name: z.string(),
  networkId: z.string(),
  projectId: z.string(),
  deviceOwner: z.string(),
  deviceId: z.string(),
  fixedIps: z.array(z.object({ subnetId: z.string(), ip: z.string() })),
  securityGroupIds: z.array(z.string()),
  macAddress: z.string(),
});

export const SecurityGroupSchema = z.object({
  id: Id,
  name: z.string(),
  projectId: z.string(),
  description: z.string(),
  createdAt: Ms,
});

export const CloudStateSchema = z.object({
  version: z.literal(1),
  scenario: z.string(),
  description: z.string(),
  startedAt: Ms,
  timeScale: z.number().positive(),
  /** Monotonic counter for ids minted by the simulator (failover amphorae, request ids). */
  seq: Int,
  config: z.object({
    region: z.string(),
    ramAllocationRatio: z.number().positive(),
    reservedHostMemoryMb: Int,
    amphoraFlavorId: z.string(),
    amphoraImageId: z.string(),
    amphoraNetworkName: z.string(),
    failoverDurationS: z.number().nonnegative(),
    failoverFailAfterS: z.number().nonnegative(),
    activeAfterS: z.number().nonnegative(),
    sshdAfterS: z.number().nonnegative(),
    apiAfterS: z.number().nonnegative(),
    k8sReadyAfterS: z.number().nonnegative(),
    clusterFinalizeAfterS: z.number().nonnegative(),
    capoResyncS: z.number().nonnegative(),
    magnumDriverFixed: z.boolean(),
    magnumNamespace: z.string(),
  }),
  auth: z.object({
    authUrl: z.string(),
    username: z.string(),
    password: z.string(),
    userDomain: z.string(),
    userId: z.string(),
    adminProjectId: z.string(),
    servicesProjectId: z.string(),
    capiProjectId: z.string(),
  }),
  projects: z.array(ProjectSchema),
  keystone: KeystoneSchema,
  flavors: z.array(FlavorSchema),
  images: z.array(ImageSchema),
  hypervisors: z.array(HypervisorSchema),
  servers: z.array(ServerSchema),
  mgmt: MgmtSchema,
  loadbalancers: z.array(LoadBalancerSchema),
  amphorae: z.array(AmphoraSchema),
  amphoraListReads: Int,
  coeClusters: z.array(CoeClusterSchema),
  coeTemplates: z.array(CoeTemplateSchema),
  kube: z.array(KubeObjectSchema),
  networks: z.array(NetworkSchema),
  subnets: z.array(SubnetSchema),
  routers: z.array(RouterSchema),
  ports: z.array(PortSchema),
  securityGroups: z.array(SecurityGroupSchema),
  juju: JujuStateSchema,
  workload: z.object({ nodes: z.array(WorkloadNodeSchema) }),
  /** Violation rules already reported once per target (e.g. stdin-not-closed per ssh call is enough). */
  reported: z.array(z.string()),
});

export type CloudState = z.infer<typeof CloudStateSchema>;

/** Full validation, for the harness and scenario instantiation (the CLIs skip it for speed). */
export function validateState(raw: unknown, source: string): CloudState {
  const parsed = CloudStateSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`${source} does not match the simulator state schema: ${issues}`);
  }
  return parsed.data;
}
export type Project = z.infer<typeof ProjectSchema>;
export type Flavor = z.infer<typeof FlavorSchema>;
export type Image = z.infer<typeof ImageSchema>;
export type Keystone = z.infer<typeof KeystoneSchema>;
export type WorkloadNode = z.infer<typeof WorkloadNodeSchema>;
export type Hypervisor = z.infer<typeof HypervisorSchema>;
export type Server = z.infer<typeof ServerSchema>;
export type Mgmt = z.infer<typeof MgmtSchema>;
export type LoadBalancer = z.infer<typeof LoadBalancerSchema>;
export type Failover = z.infer<typeof FailoverSchema>;
export type Amphora = z.infer<typeof AmphoraSchema>;
export type CoeCluster = z.infer<typeof CoeClusterSchema>;
export type CoeTemplate = z.infer<typeof CoeTemplateSchema>;
export type KubeObject = z.infer<typeof KubeObjectSchema>;
export type Network = z.infer<typeof NetworkSchema>;
export type Subnet = z.infer<typeof SubnetSchema>;
export type Router = z.infer<typeof RouterSchema>;
export type Port = z.infer<typeof PortSchema>;
export type SecurityGroup = z.infer<typeof SecurityGroupSchema>;

/** One line of journal.jsonl: every mutating command, successful or refused. */
export interface JournalEntry {
  readonly ts: string;
  readonly tool: 'openstack' | 'kubectl' | 'juju';
  readonly argv: readonly string[];
  readonly scope: { readonly projectId: string | null; readonly namespace?: string };
  readonly action: string;
  readonly target: string;
  readonly ok: boolean;
  readonly error?: string;
}

export type ViolationRule =
  | 'deleted-live-amphora'
  | 'failover-without-headroom'
  | 'concurrent-failover'
  | 'failover-retry-after-error'
  | 'stdin-not-closed'
  | 'patch-not-found'
  | 'patched-live-object'
  | 'touched-live-cluster-network'
  | 'reloaded-invalid-config'
  | 'restarted-haproxy'
  | 'reloaded-without-down-backend';

/** One line of violations.jsonl: a product-rule breach the tests must be able to see. */
export interface Violation {
  readonly ts: string;
  readonly rule: ViolationRule;
  readonly tool: string;
  readonly argv: readonly string[];
  readonly target: string;
  readonly detail: string;
}
