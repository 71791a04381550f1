/**
 * Scenario files (dev/sim/scenarios/*.yaml): a compact, human-written description of a cloud at one
 * instant, expanded into CloudState. `extends: <name>` deep-merges onto another scenario (maps
 * merge key by key, `null` removes a key, lists and scalars replace), so each scenario only states
 * how it differs from `healthy`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { newHostKey } from './hostkey.js';
import { instantiateJuju, JujuScenarioError, JujuScenarioSchema } from './juju-model.js';
import type { CloudState, KubeObject, Port, Server } from './schema.js';
import { CloudStateSchema } from './schema.js';
import { siteSecondsToMs } from './time.js';

const Str = z.string().min(1);
const Secs = z.number().nonnegative();
const Loopback = z.string().regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/, 'must be a 127.0.0.0/8 address');

const NicSchema = z.object({
  network: Str,
  ip: Str,
  fip: Loopback.optional(),
  security_groups: z.array(Str).default([]),
});

const ScenarioSchema = z.object({
  name: Str,
  description: z.string().default(''),
  settings: z
    .object({
      region: z.string().default('RegionOne'),
      ram_allocation_ratio: z.number().positive().default(1.5),
      reserved_host_memory_mb: z.number().int().nonnegative().default(8192),
      amphora_flavor: Str,
      amphora_image: Str,
      amphora_network: Str.default('lb-mgmt-net'),
    })
    .strict(),
  auth: z
    .object({
      auth_url: z.string().regex(/^https?:\/\/127\.0\.0\.1[:/]/, 'auth_url must point at 127.0.0.1'),
      username: Str.default('admin'),
      password: Str,
      user_domain: Str.default('admin_domain'),
      user_id: z.string().regex(/^[0-9a-f]{32}$/),
    })
    .strict(),
  projects: z
    .object({
      admin: z.object({ id: Str, name: Str, domain: Str, description: z.string().default('') }),
      services: z.object({ id: Str, name: Str, domain: Str, description: z.string().default('') }),
      capi: z.object({ id: Str, name: Str, domain: Str, description: z.string().default('') }),
    })
    .catchall(z.object({ id: Str, name: Str, domain: Str, description: z.string().default('') })),
  boot: z
    .object({
      active_after_s: Secs.default(20),
      sshd_after_s: Secs.default(150),
      api_after_s: Secs.default(180),
      k8s_ready_after_s: Secs.default(600),
      k8s_status_error_calls: z.array(z.number().int().positive()).default([]),
    })
    .strict()
    .default({
      active_after_s: 20,
      sshd_after_s: 150,
      api_after_s: 180,
      k8s_ready_after_s: 600,
      k8s_status_error_calls: [],
    }),
  failover: z
    .object({
      duration_s: Secs.default(108),
      fail_after_s: Secs.default(15),
      outcome: z.record(z.string(), z.enum(['success', 'error'])).default({}),
    })
    .strict()
    .default({ duration_s: 108, fail_after_s: 15, outcome: {} }),
  stuck_delete: z
    .object({ cluster_finalize_after_s: Secs.default(5) })
    .strict()
    .default({ cluster_finalize_after_s: 5 }),
  capo: z
    .object({ resync_after_s: Secs.default(30) })
    .strict()
    .default({ resync_after_s: 30 }),
  magnum: z
    .object({ driver_fixed: z.boolean().default(false) })
    .strict()
    .default({ driver_fixed: false }),
  keystone: z
    .object({
      roles: z.array(Str).default(['admin', 'member', 'reader', 'load-balancer_member']),
      /** Role assignments on projects: user id -> project alias -> role names. */
      assignments: z.record(z.string(), z.record(z.string(), z.array(Str))).default({}),
      /** Application credentials by id (32 hex): Magnum's are magnum-<cluster uuid>-<8 hex>. */
      app_credentials: z
        .record(
          z.string().regex(/^[0-9a-f]{32}$/, 'application credential ids are 32 lowercase hex characters'),
          z
            .object({
              name: Str,
              description: z.string().default(''),
              user: z.string().regex(/^[0-9a-f]{32}$/),
              project: Str,
              roles: z.array(Str),
            })
            .strict(),
        )
        .default({}),
    })
    .strict()
    .default({
      roles: ['admin', 'member', 'reader', 'load-balancer_member'],
      assignments: {},
      app_credentials: {},
    }),
  juju: JujuScenarioSchema,
  workload: z
    .object({
      nodes: z
        .record(
          z.string(),
          z
            .object({
              role: z.enum(['control-plane', 'worker']),
              ip: Loopback,
              ready: z.boolean().default(true),
              uninitialized: z.boolean().default(false),
              age_s: Secs.default(86_400 * 12),
            })
            .strict(),
        )
        .default({}),
    })
    .strict()
    .default({ nodes: {} }),
  mgmt: z
    .object({
      server: Str,
      power: z.enum(['on', 'off']),
      kubeconfig_on_jumphost: z.boolean(),
      ssh_user: Str.default('ubuntu'),
      node_ip: Loopback,
      k8s_version: Str.default('v1.32.3'),
      uptime_s: Secs.default(86_400 * 12),
      /** What `k8s config` on the VM prints (see MgmtSchema.kubeconfig). */
      kubeconfig: z.enum(['admin', 'exec-user', 'foreign-server']).default('admin'),
    })
    .strict(),
  flavors: z.record(
    z.string(),
    z.object({ name: Str, ram_mb: z.number().int(), vcpus: z.number().int(), disk_gb: z.number().int() }),
  ),
  images: z.record(
    z.string(),
    z
      .object({
        name: Str,
        status: z.enum(['active', 'queued', 'saving', 'importing', 'deactivated']).default('active'),
        visibility: z.enum(['public', 'private', 'shared', 'community']).default('public'),
        owner: Str.default('admin'),
        properties: z.record(z.string(), z.string()).default({}),
        disk_format: Str.default('raw'),
        size_bytes: z.number().int().nullable().default(3_221_225_472),
        tags: z.array(Str).default([]),
        age_s: Secs.default(86_400 * 30),
      })
      .strict(),
  ),
  hypervisors: z.record(
    z.string(),
    z
      .object({ hostname: Str, host_ip: Loopback, vcpus: z.number().int(), memory_mb: z.number().int() })
      .strict(),
  ),
  servers: z.record(
    z.string(),
    z
      .object({
        name: Str,
        project: Str,
        host: z.string().nullable(),
        flavor: Str,
        image: Str,
        status: z.enum(['ACTIVE', 'SHUTOFF', 'ERROR']),
        role: z.enum(['mgmt', 'amphora', 'workload', 'other']).default('other'),
        nics: z.array(NicSchema).default([]),
        key_name: z.string().nullable().default(null),
        fault: z.string().nullable().default(null),
        age_s: Secs.default(86_400 * 12),
      })
      .strict(),
  ),
  loadbalancers: z
    .record(
      z.string(),
      z
        .object({
          name: Str,
          description: z.string().default(''),
          project: Str,
          vip_address: Loopback,
          vip_subnet: Str,
          provisioning_status: z.enum([
            'ACTIVE',
            'ERROR',
            'PENDING_UPDATE',
            'PENDING_CREATE',
            'PENDING_DELETE',
          ]),
          operating_status: z.enum(['ONLINE', 'OFFLINE', 'DEGRADED', 'ERROR']).default('ONLINE'),
          age_s: Secs.default(86_400 * 12),
        })
        .strict(),
    )
    .default({}),
  amphorae: z
    .record(
      z.string(),
      z
        .object({
          loadbalancer: z.string().nullable(),
          server: z.string().nullable(),
          status: z.enum(['ALLOCATED', 'BOOTING', 'READY', 'ERROR']),
          role: z.enum(['STANDALONE', 'MASTER', 'BACKUP']).default('STANDALONE'),
          lb_network_ip: Str,
          appears_after_reads: z.number().int().positive().nullable().default(null),
        })
        .strict(),
    )
    .default({}),
  magnum_clusters: z
    .record(
      z.string(),
      z
        .object({
          uuid: Str,
          project: Str,
          status: z.enum(['CREATE_COMPLETE', 'DELETE_IN_PROGRESS', 'UPDATE_COMPLETE', 'CREATE_FAILED']),
          status_reason: z.string().nullable().default(null),
          /** Created by (default: the scenario's admin user). */
          user: z
            .string()
            .regex(/^[0-9a-f]{32}$/)
            .optional(),
          /** What the conductor reports as health_status_reason instead of the computed one. */
          health_reason: z.record(z.string(), z.string()).nullable().default(null),
          capi_cluster: Str,
          stack_id: Str,
          template: Str,
          master_count: z.number().int().default(1),
          node_count: z.number().int().default(1),
          api_address: z.string(),
          coe_version: Str.default('v1.32.13'),
          age_s: Secs.default(86_400 * 12),
        })
        .strict(),
    )
    .default({}),
  cluster_templates: z
    .record(
      z.string(),
      z
        .object({
          name: Str,
          project: Str.default('capi'),
          image: Str,
          network_driver: z.string().nullable().default('calico'),
          labels: z.record(z.string(), z.string()).default({}),
        })
        .strict(),
    )
    .default({}),
  capi: z
    .object({
      clusters: z
        .record(
          z.string(),
          z
            .object({
              lb: z.string().nullable().default(null),
              deleting_for_s: Secs.nullable().default(null),
              version: Str.default('v1.32.13'),
              control_plane_replicas: z.number().int().default(1),
              worker_replicas: z.number().int().default(1),
              endpoint: z.string().default(''),
              age_s: Secs.default(86_400 * 12),
            })
            .strict(),
        )
        .default({}),
      openstackclusters: z
        .record(
          z.string(),
          z
            .object({
              cluster: Str,
              deleting_for_s: Secs.nullable().default(null),
              lb: z.string().nullable().default(null),
              network: z.string().nullable().default(null),
              router: z.string().nullable().default(null),
              external_network: z.string().nullable().default(null),
              security_groups: z.array(z.string()).default([]),
              age_s: Secs.default(86_400 * 12),
            })
            .strict(),
        )
        .default({}),
      machines: z
        .record(
          z.string(),
          z
            .object({
              cluster: Str,
              role: z.enum(['control-plane', 'worker']),
              server: z.string().nullable().default(null),
              phase: Str.default('Running'),
              version: Str.default('v1.32.13'),
              age_s: Secs.default(86_400 * 12),
            })
            .strict(),
        )
        .default({}),
    })
    .strict()
    .default({ clusters: {}, openstackclusters: {}, machines: {} }),
  networks: z
    .record(
      z.string(),
      z
        .object({
          name: Str,
          project: Str,
          external: z.boolean().default(false),
          shared: z.boolean().default(false),
          mtu: z.number().int().default(1442),
          dhcp_ip: z.string().nullable().default(null),
        })
        .strict(),
    )
    .default({}),
  subnets: z
    .record(
      z.string(),
      z
        .object({
          name: Str,
          network: Str,
          cidr: Str,
          gateway_ip: z.string().nullable(),
          ip_version: z.union([z.literal(4), z.literal(6)]).default(4),
          enable_dhcp: z.boolean().default(true),
        })
        .strict(),
    )
    .default({}),
  routers: z
    .record(
      z.string(),
      z
        .object({
          name: Str,
          project: Str,
          external_gateway: z.object({ subnet: Str, ip: Loopback }).strict().nullable().default(null),
          interfaces: z.array(z.object({ subnet: Str, ip: Str }).strict()).default([]),
        })
        .strict(),
    )
    .default({}),
  security_groups: z
    .record(z.string(), z.object({ name: Str, project: Str, description: z.string().default('') }).strict())
    .default({}),
  /** The jumphost itself: CLIs missing from the PATH its SSH sessions get (a cloud that is not Charmed has no juju). */
  jumphost: z
    .object({ missing_tools: z.array(z.enum(['openstack', 'kubectl', 'ssh', 'juju'])).default([]) })
    .strict()
    .default({ missing_tools: [] }),
});

export type ScenarioData = z.infer<typeof ScenarioSchema>;

export class ScenarioError extends Error {
  override name = 'ScenarioError';
}

type Plain = Record<string, unknown>;

function isPlain(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepMerge(base: unknown, over: unknown): unknown {
  if (!isPlain(base) || !isPlain(over)) return over;
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    // null removes a whole entry (a server, an LB); on a scalar it is just the value null.
    if (v === null && isPlain(out[k])) {
      delete out[k];
    } else {
      out[k] = deepMerge(out[k], v);
    }
  }
  return out;
}

/** `healthy` => <scenarioDir>/healthy.yaml; anything with a slash or a .yaml suffix is a path. */
export function resolveScenarioPath(nameOrPath: string, scenarioDir: string): string {
  if (nameOrPath.includes('/') || /\.ya?ml$/.test(nameOrPath)) return path.resolve(nameOrPath);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(nameOrPath)) {
    throw new ScenarioError(
      `scenario name '${nameOrPath}' is not a plain name (use a path for files elsewhere)`,
    );
  }
  return path.join(scenarioDir, `${nameOrPath}.yaml`);
}

function loadRaw(file: string, scenarioDir: string, seen: readonly string[]): Plain {
  if (seen.includes(file)) throw new ScenarioError(`scenario extends loop: ${[...seen, file].join(' -> ')}`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    const known = fs.existsSync(scenarioDir)
      ? fs
          .readdirSync(scenarioDir)
          .filter((f) => f.endsWith('.yaml'))
          .map((f) => f.replace(/\.yaml$/, ''))
      : [];
    throw new ScenarioError(
      `scenario file ${file} not found (known scenarios: ${known.join(', ') || 'none'})`,
    );
  }
  const doc: unknown = YAML.parse(text);
  if (!isPlain(doc)) throw new ScenarioError(`${file}: a scenario is a YAML mapping`);
  const parent = doc.extends;
  if (parent === undefined) return doc;
  if (typeof parent !== 'string') throw new ScenarioError(`${file}: extends must be a scenario name`);
  // A scenario outside dev/sim/scenarios (a test fixture) may still extend a built-in one by name.
  let parentFile = resolveScenarioPath(parent, path.dirname(file));
  if (!fs.existsSync(parentFile) && !parent.includes('/'))
    parentFile = resolveScenarioPath(parent, scenarioDir);
  const base = loadRaw(parentFile, scenarioDir, [...seen, file]);
  const rest = { ...doc };
  delete rest.extends;
  return deepMerge({ ...base, description: '' }, rest) as Plain;
}

export function loadScenario(nameOrPath: string, scenarioDir: string): ScenarioData {
  const file = resolveScenarioPath(nameOrPath, scenarioDir);
  const raw = loadRaw(file, scenarioDir, []);
  const parsed = ScenarioSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `  - ${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ScenarioError(`${file} is not a valid scenario:\n${issues.join('\n')}`);
  }
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------

function fakeMac(n: number): string {
  const hex = n.toString(16).padStart(6, '0');
  return `fa:16:3e:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
}

/** Role ids are deterministic fake keystone ids: 7e + the role's position. */
function roleId(index: number): string {
  return `7e${index.toString(16).padStart(30, '0')}`;
}

function keystoneState(
  sc: ScenarioData,
  project: (alias: string, where: string) => string,
): CloudState['keystone'] {
  const roles = sc.keystone.roles.map((name, i) => ({ id: roleId(i), name }));
  const role = (name: string, where: string): string => {
    const r = roles.find((x) => x.name === name);
    if (r === undefined) throw new ScenarioError(`${where}: role '${name}' is not in keystone.roles`);
    return r.id;
  };
  const assignments = Object.entries(sc.keystone.assignments).flatMap(([userId, perProject]) =>
    Object.entries(perProject).flatMap(([alias, names]) =>
      names.map((n) => ({
        userId,
        projectId: project(alias, `keystone.assignments.${userId}`),
        roleId: role(n, `keystone.assignments.${userId}.${alias}`),
      })),
    ),
  );
  return {
    users: [{ id: sc.auth.user_id, name: sc.auth.username, domain: sc.auth.user_domain }],
    roles,
    assignments,
    appCredentials: Object.entries(sc.keystone.app_credentials).map(([id, a]) => ({
      id,
      name: a.name,
      description: a.description,
      userId: a.user,
      projectId: project(a.project, `keystone.app_credentials.${id}`),
      roleIds: a.roles.map((n) => role(n, `keystone.app_credentials.${id}.roles`)),
      unrestricted: false,
      expiresAt: null,
    })),
  };
}

/** Expands a scenario into the state at real instant `now`; ages count back from there. */
export function instantiateScenario(sc: ScenarioData, now: number, timeScale: number): CloudState {
  const clock = { startedAt: now, timeScale };
  const ago = (s: number) => now - siteSecondsToMs(clock, s);
  const projectIds = new Map(Object.entries(sc.projects).map(([alias, p]) => [alias, p.id]));
  const project = (alias: string, where: string): string => {
    const id = projectIds.get(alias);
    if (id === undefined) throw new ScenarioError(`${where}: unknown project alias '${alias}'`);
    return id;
  };
  const need = <T>(map: Record<string, T>, key: string, where: string): T => {
    const v = map[key];
    if (v === undefined) throw new ScenarioError(`${where}: '${key}' is not defined`);
    return v;
  };

  let portSeq = 0;
  const ports: Port[] = [];
  const newPort = (p: Omit<Port, 'id' | 'macAddress'>): Port => {
    portSeq += 1;
    const port: Port = {
      id: `90000000-0000-4000-8000-${portSeq.toString(16).padStart(12, '0')}`,
      macAddress: fakeMac(portSeq),
      ...p,
    };
    ports.push(port);
    return port;
  };
  const subnetOf = (networkId: string, ip: string): string => {
    const v6 = ip.includes(':');
    const match = Object.entries(sc.subnets).find(
      ([, s]) => s.network === networkId && (s.ip_version === 6) === v6,
    );
    if (match === undefined) throw new ScenarioError(`no subnet on network ${networkId} for address ${ip}`);
    return match[0];
  };

  const networks = Object.entries(sc.networks).map(([id, n]) => ({
    id,
    name: n.name,
    projectId: project(n.project, `networks.${id}`),
    external: n.external,
    shared: n.shared,
    mtu: n.mtu,
    createdAt: ago(86_400 * 30),
  }));
  const subnets = Object.entries(sc.subnets).map(([id, s]) => {
    const net = need(sc.networks, s.network, `subnets.${id}.network`);
    return {
      id,
      name: s.name,
      networkId: s.network,
      projectId: project(net.project, `subnets.${id}`),
      cidr: s.cidr,
      gatewayIp: s.gateway_ip,
      ipVersion: s.ip_version,
      enableDhcp: s.enable_dhcp,
      createdAt: ago(86_400 * 30),
    };
  });
  for (const [id, n] of Object.entries(sc.networks)) {
    if (n.dhcp_ip === null) continue;
    newPort({
      name: '',
      networkId: id,
      projectId: project(n.project, `networks.${id}`),
      deviceOwner: 'network:dhcp',
      deviceId: `dhcp-${id}`,
      fixedIps: [{ subnetId: subnetOf(id, n.dhcp_ip), ip: n.dhcp_ip }],
      securityGroupIds: [],
    });
  }

  const servers: Server[] = Object.entries(sc.servers).map(([id, s]) => {
    need(sc.flavors, s.flavor, `servers.${id}.flavor`);
    need(sc.images, s.image, `servers.${id}.image`);
    if (s.host !== null) need(sc.hypervisors, s.host, `servers.${id}.host`);
    const projectId = project(s.project, `servers.${id}`);
    const addresses: Record<string, string[]> = {};
    for (const nic of s.nics) {
      const net = need(sc.networks, nic.network, `servers.${id}.nics.network`);
      newPort({
        name: '',
        networkId: nic.network,
        projectId,
        deviceOwner: 'compute:nova',
        deviceId: id,
        fixedIps: [{ subnetId: subnetOf(nic.network, nic.ip), ip: nic.ip }],
        securityGroupIds: nic.security_groups,
      });
      const list = addresses[net.name] ?? [];
      list.push(nic.ip);
      if (nic.fip !== undefined) list.push(nic.fip);
      addresses[net.name] = list;
    }
    return {
      id,
      name: s.name,
      projectId,
      hostId: s.host,
      flavorId: s.flavor,
      imageId: s.image,
      status: s.status,
      transition: null,
      addresses,
      availabilityZone: 'nova',
      keyName: s.key_name,
      createdAt: ago(s.age_s),
      role: s.role,
      fault: s.fault,
    };
  });

  const mgmtServer = servers.find((s) => s.id === sc.mgmt.server);
  if (mgmtServer === undefined) throw new ScenarioError(`mgmt.server '${sc.mgmt.server}' is not in servers`);
  mgmtServer.status = sc.mgmt.power === 'on' ? 'ACTIVE' : 'SHUTOFF';
  const upSince = ago(sc.mgmt.uptime_s);

  const routers = Object.entries(sc.routers).map(([id, r]) => {
    const projectId = project(r.project, `routers.${id}`);
    let externalGateway: CloudState['routers'][number]['externalGateway'] = null;
    if (r.external_gateway !== null) {
      const sub = need(sc.subnets, r.external_gateway.subnet, `routers.${id}.external_gateway.subnet`);
      externalGateway = {
        networkId: sub.network,
        subnetId: r.external_gateway.subnet,
        ip: r.external_gateway.ip,
      };
      newPort({
        name: '',
        networkId: sub.network,
        projectId: '',
        deviceOwner: 'network:router_gateway',
        deviceId: id,
        fixedIps: [{ subnetId: r.external_gateway.subnet, ip: r.external_gateway.ip }],
        securityGroupIds: [],
      });
    }
    for (const itf of r.interfaces) {
      const sub = need(sc.subnets, itf.subnet, `routers.${id}.interfaces.subnet`);
      newPort({
        name: '',
        networkId: sub.network,
        projectId,
        deviceOwner: 'network:router_interface',
        deviceId: id,
        fixedIps: [{ subnetId: itf.subnet, ip: itf.ip }],
        securityGroupIds: [],
      });
    }
    return { id, name: r.name, projectId, externalGateway, createdAt: ago(86_400 * 12) };
  });

  const loadbalancers = Object.entries(sc.loadbalancers).map(([id, lb]) => {
    const sub = need(sc.subnets, lb.vip_subnet, `loadbalancers.${id}.vip_subnet`);
    const projectId = project(lb.project, `loadbalancers.${id}`);
    const vipPort = newPort({
      name: `octavia-lb-${id}`,
      networkId: sub.network,
      projectId,
      deviceOwner: 'Octavia',
      deviceId: `lb-${id}`,
      fixedIps: [{ subnetId: lb.vip_subnet, ip: lb.vip_address }],
      securityGroupIds: [],
    });
    const createdAt = ago(lb.age_s);
    return {
      id,
      name: lb.name,
      description: lb.description,
      projectId,
      vipAddress: lb.vip_address,
      vipPortId: vipPort.id,
      vipSubnetId: lb.vip_subnet,
      vipNetworkId: sub.network,
      provider: 'amphora',
      provisioningStatus: lb.provisioning_status,
      operatingStatus: lb.operating_status,
      createdAt,
      updatedAt: createdAt,
      activeSince: lb.provisioning_status === 'ACTIVE' ? createdAt : null,
      listeners: [],
      pools: [],
      forcedFailoverOutcome: sc.failover.outcome[id] ?? null,
      failover: null,
      failoverHistory: [],
    };
  });

  const amphorae = Object.entries(sc.amphorae).map(([id, a]) => {
    const lb = a.loadbalancer === null ? undefined : loadbalancers.find((l) => l.id === a.loadbalancer);
    if (a.loadbalancer !== null && lb === undefined) {
      throw new ScenarioError(`amphorae.${id}.loadbalancer '${a.loadbalancer}' is not defined`);
    }
    if (a.server !== null) need(sc.servers, a.server, `amphorae.${id}.server`);
    const server = servers.find((s) => s.id === a.server);
    return {
      id,
      loadbalancerId: a.loadbalancer,
      computeId: a.server,
      status: a.status,
      role: a.role,
      lbNetworkIp: a.lb_network_ip,
      haIp: lb?.vipAddress ?? '',
      vrrpIp: null,
      haPortId: lb?.vipPortId ?? null,
      vrrpPortId: null,
      imageId: sc.settings.amphora_image,
      computeFlavor: sc.settings.amphora_flavor,
      createdAt: server?.createdAt ?? ago(86_400),
      updatedAt: server?.createdAt ?? ago(86_400),
      appearsAfterReads: a.appears_after_reads,
    };
  });

  const capiPid = project('capi', 'projects.capi');
  const namespace = `magnum-${capiPid}`;
  const kube: KubeObject[] = [];
  let uidSeq = 0;
  const uid = () => {
    uidSeq += 1;
    return `6b000000-0000-4000-8000-${uidSeq.toString(16).padStart(12, '0')}`;
  };
  for (const [name, c] of Object.entries(sc.capi.clusters)) {
    const osc = Object.entries(sc.capi.openstackclusters).find(([, o]) => o.cluster === name);
    const machines = Object.values(sc.capi.machines).filter((m) => m.cluster === name);
    const cpReady = machines.filter((m) => m.role === 'control-plane' && m.phase === 'Running').length;
    const wReady = machines.filter((m) => m.role === 'worker' && m.phase === 'Running').length;
    const deleting = c.deleting_for_s !== null;
    kube.push({
      kind: 'Cluster',
      name,
      namespace,
      uid: uid(),
      createdAt: ago(c.age_s),
      deletionAt: c.deleting_for_s === null ? null : ago(c.deleting_for_s),
      finalizers: ['cluster.cluster.x-k8s.io'],
      labels: { 'capi.stackhpc.com/cluster': name, 'capi.stackhpc.com/managed-by': 'magnum' },
      clusterName: name,
      lbId: c.lb,
      finalizeAt: null,
      spec: {
        clusterNetwork: {
          pods: { cidrBlocks: ['172.16.0.0/13'] },
          services: { cidrBlocks: ['172.24.0.0/13'] },
        },
        controlPlaneEndpoint: { host: c.endpoint, port: 6443 },
        controlPlaneRef: {
          apiGroup: 'controlplane.cluster.x-k8s.io',
          kind: 'KubeadmControlPlane',
          name: `${name}-control-plane`,
        },
        infrastructureRef: {
          apiGroup: 'infrastructure.cluster.x-k8s.io',
          kind: 'OpenStackCluster',
          name: osc?.[0] ?? name,
        },
      },
      status: {
        phase: deleting ? 'Deleting' : 'Provisioned',
        controlPlane: {
          desiredReplicas: c.control_plane_replicas,
          replicas: cpReady,
          readyReplicas: cpReady,
          availableReplicas: cpReady,
          upToDateReplicas: cpReady,
        },
        workers: {
          desiredReplicas: c.worker_replicas,
          replicas: wReady,
          readyReplicas: wReady,
          availableReplicas: wReady,
          upToDateReplicas: wReady,
        },
        initialization: { infrastructureProvisioned: true, controlPlaneInitialized: true },
        observedGeneration: 2,
      },
    });
  }
  for (const [name, o] of Object.entries(sc.capi.openstackclusters)) {
    const net = o.network === null ? undefined : sc.networks[o.network];
    const router = o.router === null ? undefined : sc.routers[o.router];
    const lb = o.lb === null ? undefined : loadbalancers.find((l) => l.id === o.lb);
    const sgs = o.security_groups.map((id) => ({ id, name: sc.security_groups[id]?.name ?? id }));
    kube.push({
      kind: 'OpenStackCluster',
      name,
      namespace,
      uid: uid(),
      createdAt: ago(o.age_s),
      deletionAt: o.deleting_for_s === null ? null : ago(o.deleting_for_s),
      finalizers: ['openstackcluster.infrastructure.cluster.x-k8s.io'],
      labels: { 'cluster.x-k8s.io/cluster-name': o.cluster },
      clusterName: o.cluster,
      lbId: o.lb,
      finalizeAt: null,
      spec: {
        apiServerLoadBalancer: { enabled: true },
        externalNetwork: { id: o.external_network ?? '' },
        identityRef: { cloudName: 'openstack', name: `${o.cluster}-cloud-credentials` },
        managedSecurityGroups: { allowAllInClusterTraffic: true },
        networkMTU: 1442,
      },
      status: {
        ready: true,
        network: net === undefined ? undefined : { id: o.network, name: net.name },
        router: router === undefined ? undefined : { id: o.router, name: router.name },
        apiServerLoadBalancer:
          lb === undefined
            ? undefined
            : { id: lb.id, name: lb.name, internalIP: lb.vipAddress, ip: lb.vipAddress },
        controlPlaneSecurityGroup: sgs[0],
        workerSecurityGroup: sgs[1],
      },
    });
  }
  for (const [name, m] of Object.entries(sc.capi.machines)) {
    const server = m.server === null ? undefined : servers.find((s) => s.id === m.server);
    const ip = server === undefined ? undefined : Object.values(server.addresses)[0]?.[0];
    kube.push({
      kind: 'Machine',
      name,
      namespace,
      uid: uid(),
      createdAt: ago(m.age_s),
      deletionAt: null,
      finalizers: ['machine.cluster.x-k8s.io'],
      labels: {
        'cluster.x-k8s.io/cluster-name': m.cluster,
        ...(m.role === 'control-plane' ? { 'cluster.x-k8s.io/control-plane': '' } : {}),
      },
      clusterName: m.cluster,
      lbId: null,
      finalizeAt: null,
      spec: {
        clusterName: m.cluster,
        version: m.version,
        providerID: server === undefined ? undefined : `openstack:///${server.id}`,
      },
      status: {
        phase: m.phase,
        nodeRef: server === undefined ? undefined : { name: server.name },
        addresses: ip === undefined ? undefined : [{ type: 'InternalIP', address: ip }],
      },
    });
  }

  const securityGroups = Object.entries(sc.security_groups).map(([id, g]) => ({
    id,
    name: g.name,
    projectId: project(g.project, `security_groups.${id}`),
    description: g.description,
    createdAt: ago(86_400 * 12),
  }));

  const state: CloudState = {
    version: 1,
    scenario: sc.name,
    description: sc.description,
    startedAt: now,
    timeScale,
    seq: 0,
    config: {
      region: sc.settings.region,
      ramAllocationRatio: sc.settings.ram_allocation_ratio,
      reservedHostMemoryMb: sc.settings.reserved_host_memory_mb,
      amphoraFlavorId: sc.settings.amphora_flavor,
      amphoraImageId: sc.settings.amphora_image,
      amphoraNetworkName: sc.settings.amphora_network,
      failoverDurationS: sc.failover.duration_s,
      failoverFailAfterS: sc.failover.fail_after_s,
      activeAfterS: sc.boot.active_after_s,
      sshdAfterS: sc.boot.sshd_after_s,
      apiAfterS: sc.boot.api_after_s,
      k8sReadyAfterS: sc.boot.k8s_ready_after_s,
      clusterFinalizeAfterS: sc.stuck_delete.cluster_finalize_after_s,
      capoResyncS: sc.capo.resync_after_s,
      magnumDriverFixed: sc.magnum.driver_fixed,
      magnumNamespace: namespace,
    },
    auth: {
      authUrl: sc.auth.auth_url,
      username: sc.auth.username,
      password: sc.auth.password,
      userDomain: sc.auth.user_domain,
      userId: sc.auth.user_id,
      adminProjectId: project('admin', 'projects.admin'),
      servicesProjectId: project('services', 'projects.services'),
      capiProjectId: capiPid,
    },
    projects: Object.values(sc.projects).map((p) => ({
      id: p.id,
      name: p.name,
      domain: p.domain,
      description: p.description,
    })),
    keystone: keystoneState(sc, project),
    flavors: Object.entries(sc.flavors).map(([id, f]) => ({
      id,
      name: f.name,
      ramMb: f.ram_mb,
      vcpus: f.vcpus,
      diskGb: f.disk_gb,
    })),
    images: Object.entries(sc.images).map(([id, i]) => ({
      id,
      name: i.name,
      status: i.status,
      visibility: i.visibility,
      ownerId: project(i.owner, `images.${id}.owner`),
      properties: i.properties,
      diskFormat: i.disk_format,
      sizeBytes: i.size_bytes,
      tags: i.tags,
      createdAt: ago(i.age_s),
    })),
    hypervisors: Object.entries(sc.hypervisors).map(([id, h]) => ({
      id,
      hostname: h.hostname,
      hostIp: h.host_ip,
      type: 'QEMU',
      state: 'up',
      status: 'enabled',
      vcpus: h.vcpus,
      memoryMb: h.memory_mb,
    })),
    servers,
    mgmt: {
      serverId: sc.mgmt.server,
      sshdAt: sc.mgmt.power === 'on' ? upSince : null,
      apiAt: sc.mgmt.power === 'on' ? upSince : null,
      k8sReadyAt: sc.mgmt.power === 'on' ? upSince : null,
      sshPort: null,
      sshHost: '127.0.0.1',
      sshUser: sc.mgmt.ssh_user,
      nodeName: mgmtServer.name,
      nodeIp: sc.mgmt.node_ip,
      k8sVersion: sc.mgmt.k8s_version,
      bootCount: 0,
      k8sStatusCalls: 0,
      k8sStatusErrorCalls: sc.boot.k8s_status_error_calls,
      hostKey: newHostKey(),
      kubeconfig: sc.mgmt.kubeconfig,
      hopSessions: 0,
    },
    loadbalancers,
    amphorae,
    amphoraListReads: 0,
    coeClusters: Object.entries(sc.magnum_clusters).map(([name, c]) => ({
      uuid: c.uuid,
      name,
      projectId: project(c.project, `magnum_clusters.${name}`),
      status: c.status,
      statusReason: c.status_reason,
      userId: c.user ?? sc.auth.user_id,
      healthReason: c.health_reason,
      capiCluster: c.capi_cluster,
      stackId: c.stack_id,
      templateId: c.template,
      keypair: 'capi-keypair',
      masterCount: c.master_count,
      nodeCount: c.node_count,
      apiAddress: c.api_address,
      coeVersion: c.coe_version,
      labels: { kube_tag: c.coe_version, capi_helm_chart_version: '0.25.1' },
      createdAt: ago(c.age_s),
    })),
    kube,
    networks,
    subnets,
    routers,
    ports,
    securityGroups,
    coeTemplates: Object.entries(sc.cluster_templates).map(([uuid, t]) => {
      need(sc.images, t.image, `cluster_templates.${uuid}.image`);
      return {
        uuid,
        name: t.name,
        projectId: project(t.project, `cluster_templates.${uuid}`),
        imageId: t.image,
        networkDriver: t.network_driver,
        labels: t.labels,
        createdAt: ago(86_400 * 20),
      };
    }),
    juju: (() => {
      try {
        return instantiateJuju(sc.juju, ago(86_400 * 3));
      } catch (err) {
        if (err instanceof JujuScenarioError) throw new ScenarioError(`scenario ${sc.name}: ${err.message}`);
        throw err;
      }
    })(),
    workload: {
      nodes: Object.entries(sc.workload.nodes).map(([name, n]) => ({
        name,
        role: n.role,
        ip: n.ip,
        ready: n.ready,
        uninitialized: n.uninitialized,
        createdAt: ago(n.age_s),
      })),
    },
    reported: [],
  };
  // Validate what we built: a scenario that expands to an invalid state is a scenario bug.
  const check = CloudStateSchema.safeParse(state);
  if (!check.success) {
    const issues = check.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ScenarioError(`scenario ${sc.name} expands to an invalid state: ${issues}`);
  }
  return check.data;
}
