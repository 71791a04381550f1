/**
 * The `openstack` stand-in: python-openstackclient / octaviaclient / magnumclient behaviour over
 * the simulated state, including keystone scoping (tenant member vs admin project), nova's
 * project-scoped name lookup, octavia's admin-only amphora/failover API and neutron's
 * dependency errors. Every mutating command is journalled, refused or not.
 */
import {
  CliExit,
  type CliResult,
  fail,
  flag,
  many,
  type OptSpec,
  one,
  opt,
  type ParsedArgs,
  parseArgs,
  Recorder,
  requestId,
} from './cli.js';
import {
  type Cell,
  cell,
  DEFAULT_OS_FORMAT,
  emitList,
  emitOne,
  type OsFormat,
  type OsFormatOptions,
} from './format.js';
import {
  amphoraExists,
  clockOf,
  coeHealth,
  hostUsage,
  lastFailoverFailed,
  liveAmphoraForServer,
  POWER_STATE_NAMES,
  pickAmphoraHost,
  powerOff,
  powerOnMgmt,
  type ServerView,
  serverView,
  settle,
  startFailover,
  visibleAmphorae,
} from './model.js';
import type {
  CloudState,
  Image,
  LoadBalancer,
  Network,
  Port,
  Router,
  SecurityGroup,
  Server,
  Subnet,
} from './schema.js';
import { withState } from './store.js';
import { siteIso } from './time.js';

interface Scope {
  readonly projectId: string;
  readonly isAdmin: boolean;
}

const LIST_FORMATS: readonly OsFormat[] = ['csv', 'json', 'table', 'value', 'yaml'];
const SHOW_FORMATS: readonly OsFormat[] = ['json', 'shell', 'table', 'value', 'yaml'];

const LIST_FORMAT_SPECS: readonly OptSpec[] = [
  opt(['-f', '--format'], 'format'),
  opt(['-c', '--column'], 'column', true),
  flag(['--noindent']),
  opt(['--max-width']),
  flag(['--fit-width']),
  flag(['--print-empty']),
  opt(['--quote']),
  opt(['--sort-column'], 'sort-column', true),
  flag(['--sort-ascending']),
  flag(['--sort-descending']),
];

const SHOW_FORMAT_SPECS: readonly OptSpec[] = [
  opt(['-f', '--format'], 'format'),
  opt(['-c', '--column'], 'column', true),
  flag(['--noindent']),
  opt(['--prefix']),
  opt(['--max-width']),
  flag(['--fit-width']),
  flag(['--print-empty']),
];

const GLOBAL_VALUE_OPTS = new Set([
  '--os-cloud',
  '--os-auth-url',
  '--os-project-id',
  '--os-project-name',
  '--os-project-domain-name',
  '--os-project-domain-id',
  '--os-username',
  '--os-password',
  '--os-user-domain-name',
  '--os-region-name',
  '--os-interface',
  '--os-cacert',
  '--os-compute-api-version',
  '--os-identity-api-version',
  '--os-network-api-version',
  '--os-loadbalancer-api-version',
  '--log-file',
]);
const GLOBAL_FLAGS = new Set(['--insecure', '-q', '--quiet', '-v', '--verbose', '--debug', '--no-cache']);

class Ctx {
  out = '';
  fmt: OsFormatOptions = DEFAULT_OS_FORMAT;

  constructor(
    readonly state: CloudState,
    readonly now: number,
    readonly scope: Scope,
    readonly rec: Recorder,
    readonly command: string,
  ) {}

  list(headers: readonly string[], rows: readonly (readonly unknown[])[]): void {
    const r = emitList(headers, rows, this.fmt);
    if (!r.ok) fail(r.error);
    this.out += r.text;
  }

  show(fields: readonly (readonly [string, unknown])[]): void {
    const r = emitOne(fields, this.fmt);
    if (!r.ok) fail(r.error);
    this.out += r.text;
  }

  iso(ms: number): string {
    return siteIso(clockOf(this.state), ms);
  }

  /** A refused mutation: journal it, then exit with the CLI's message. */
  refuse(action: string, target: string, message: string, code = 1): never {
    this.rec.journal(action, target, false, message);
    fail(message, code);
  }

  requireAdmin(action: string | null, target: string, message: string): void {
    if (this.scope.isAdmin) return;
    if (action !== null) this.refuse(action, target, message);
    fail(message);
  }
}

interface Command {
  readonly words: readonly string[];
  readonly kind: 'list' | 'show' | 'action';
  readonly specs: readonly OptSpec[];
  /** Names for argparse's "required" message; a trailing `...` accepts more than one. */
  readonly positionals: readonly string[];
  /** Journal action name; set on every mutating command. */
  readonly action?: string;
  run(c: Ctx, args: ParsedArgs): void;
}

// ---------------------------------------------------------------------------------------------
// keystone

function authenticate(
  state: CloudState,
  env: NodeJS.ProcessEnv,
  globals: ReadonlyMap<string, string>,
): Scope {
  const g = (flagName: string, ...vars: string[]): string | undefined => {
    const v = globals.get(flagName);
    if (v !== undefined && v !== '') return v;
    for (const name of vars) {
      const e = env[name];
      if (e !== undefined && e !== '') return e;
    }
    return undefined;
  };
  const authUrl = g('--os-auth-url', 'OS_AUTH_URL');
  if (authUrl === undefined) fail('Missing value auth-url required for auth plugin password');
  const username = g('--os-username', 'OS_USERNAME');
  if (username === undefined) fail('Missing value username required for auth plugin password');
  const password = g('--os-password', 'OS_PASSWORD');
  if (password === undefined) fail('Missing value password required for auth plugin password');
  if (authUrl.replace(/\/+$/, '') !== state.auth.authUrl.replace(/\/+$/, '')) {
    // Never dial anything: an auth URL that is not the simulated keystone is simply unreachable.
    fail(
      `Failed to discover available identity versions when contacting ${authUrl}. Attempting to parse version from URL.\n` +
        `Unable to establish connection to ${authUrl.replace(/\/+$/, '')}/auth/tokens: ` +
        `HTTPSConnectionPool: Max retries exceeded (capi-sim only serves ${state.auth.authUrl})`,
    );
  }
  const userDomain = g('--os-user-domain-name', 'OS_USER_DOMAIN_NAME', 'OS_USER_DOMAIN_ID') ?? 'Default';
  if (
    username !== state.auth.username ||
    password !== state.auth.password ||
    userDomain !== state.auth.userDomain
  ) {
    fail(`The request you have made requires authentication. (HTTP 401) (Request-ID: ${requestId()})`);
  }
  const projectId = g('--os-project-id', 'OS_PROJECT_ID', 'OS_TENANT_ID');
  const projectName = g('--os-project-name', 'OS_PROJECT_NAME', 'OS_TENANT_NAME');
  const projectDomain = g('--os-project-domain-name', 'OS_PROJECT_DOMAIN_NAME', 'OS_PROJECT_DOMAIN_ID');
  let effective: string;
  if (projectId !== undefined) {
    const p = state.projects.find((x) => x.id === projectId);
    if (p === undefined) {
      fail(`The request you have made requires authentication. (HTTP 401) (Request-ID: ${requestId()})`);
    }
    effective = p.id;
  } else if (projectName !== undefined) {
    const p = state.projects.find(
      (x) => x.name === projectName && (projectDomain === undefined || x.domain === projectDomain),
    );
    if (p === undefined) {
      fail(`The request you have made requires authentication. (HTTP 401) (Request-ID: ${requestId()})`);
    }
    effective = p.id;
  } else {
    effective = state.auth.adminProjectId;
  }
  return { projectId: effective, isAdmin: effective === state.auth.adminProjectId };
}

// ---------------------------------------------------------------------------------------------
// helpers

function resolveProject(c: Ctx, ref: string): string {
  const p = c.state.projects.find((x) => x.id === ref || x.name === ref);
  if (p === undefined) fail(`No project with a name or ID of '${ref}' exists.`);
  return p.id;
}

function addressesCell(addresses: Record<string, string[]>): Cell {
  const human = Object.entries(addresses)
    .map(([net, ips]) => `${net}=${ips.join(', ')}`)
    .join('; ');
  return cell(human, addresses);
}

function findServer(c: Ctx, ref: string): Server {
  const byId = c.state.servers.find((s) => s.id === ref);
  if (byId !== undefined && (c.scope.isAdmin || byId.projectId === c.scope.projectId)) return byId;
  // nova resolves names with a project-scoped list: amphorae (services project) never match here.
  const byName = c.state.servers.filter((s) => s.name === ref && s.projectId === c.scope.projectId);
  if (byName.length > 1) fail(`More than one server exists with the name '${ref}'.`);
  const found = byName[0];
  if (found === undefined) fail(`No server with a name or ID of '${ref}' exists.`);
  return found;
}

function imageOf(c: Ctx, s: Server) {
  return c.state.images.find((i) => i.id === s.imageId) ?? { id: s.imageId, name: '' };
}

function flavorOf(c: Ctx, s: Server) {
  return (
    c.state.flavors.find((f) => f.id === s.flavorId) ?? {
      id: s.flavorId,
      name: '',
      ramMb: 0,
      vcpus: 0,
      diskGb: 0,
    }
  );
}

function hostnameOf(c: Ctx, s: Server): string | null {
  if (s.hostId === null) return null;
  return c.state.hypervisors.find((h) => h.id === s.hostId)?.hostname ?? null;
}

function powerCell(v: ServerView): Cell {
  return cell(POWER_STATE_NAMES[v.powerState] ?? 'NOSTATE', v.powerState);
}

function findLb(c: Ctx, ref: string): LoadBalancer {
  const visible = c.state.loadbalancers.filter((l) => c.scope.isAdmin || l.projectId === c.scope.projectId);
  const byId = visible.find((l) => l.id === ref);
  if (byId !== undefined) return byId;
  const byName = visible.filter((l) => l.name === ref);
  if (byName.length > 1) fail(`Found more than one load balancer with name ${ref}; use the ID instead`);
  const found = byName[0];
  if (found === undefined) fail(`Unable to locate ${ref} in load balancers`);
  return found;
}

const OCTAVIA_FORBIDDEN = () =>
  `Policy does not allow this request to be performed. (HTTP 403) (Request-ID: ${requestId()})`;

const NEUTRON_URL = 'https://127.0.0.1:9696/v2.0';

function neutronVisible<T extends { projectId: string }>(
  c: Ctx,
  items: readonly T[],
  shared?: (t: T) => boolean,
): T[] {
  return items.filter((i) => c.scope.isAdmin || i.projectId === c.scope.projectId || (shared?.(i) ?? false));
}

function findNeutron<T extends { id: string; name: string; projectId: string }>(
  c: Ctx,
  kind: string,
  items: readonly T[],
  ref: string,
  shared?: (t: T) => boolean,
): T {
  const visible = neutronVisible(c, items, shared);
  const byId = visible.find((i) => i.id === ref);
  if (byId !== undefined) return byId;
  const byName = visible.filter((i) => i.name === ref);
  if (byName.length > 1) fail(`More than one ${kind} exists with the name '${ref}'.`);
  const found = byName[0];
  if (found === undefined) fail(`No ${kind} found for ${ref}`);
  return found;
}

/**
 * CAPO names what it creates after the OpenStackCluster; touching those while the
 * OpenStackCluster is alive and not deleting breaks a working cluster.
 */
function liveClusterOwning(c: Ctx, name: string): string | null {
  const ns = c.state.config.magnumNamespace;
  for (const o of c.state.kube) {
    if (o.kind !== 'OpenStackCluster' || o.deletionAt !== null) continue;
    const base = `k8s-clusterapi-cluster-${o.namespace}-${o.name}`;
    const sg = `k8s-cluster-${o.namespace}-${o.name}-secgroup-`;
    if (name === base || name.startsWith(sg) || name === `${base}-kubeapi`) return `${ns}/${o.name}`;
  }
  return null;
}

function guardLiveNetwork(c: Ctx, resourceName: string, target: string): void {
  const owner = liveClusterOwning(c, resourceName);
  if (owner !== null) {
    c.rec.violation(
      'touched-live-cluster-network',
      target,
      `${c.command} on ${resourceName}, which belongs to the live (not deleting) OpenStackCluster ${owner}`,
    );
  }
}

function sdkError(
  kind: 'ConflictException' | 'NotFoundException',
  code: number,
  path: string,
  msg: string,
): string {
  return `${kind}: ${code}: Client Error for url: ${NEUTRON_URL}/${path}, ${msg}`;
}

function upCell(up: boolean): Cell {
  return cell(up ? 'UP' : 'DOWN', up);
}

function jsonCell(v: unknown): Cell {
  return cell(JSON.stringify(v), v);
}

// ---------------------------------------------------------------------------------------------
// nova

function serverRow(c: Ctx, s: Server, long: boolean): unknown[] {
  const v = serverView(s, c.now);
  const image = imageOf(c, s);
  const flavor = flavorOf(c, s);
  if (!long) return [s.id, s.name, v.status, addressesCell(s.addresses), image.name, flavor.name];
  return [
    s.id,
    s.name,
    v.status,
    v.taskState,
    powerCell(v),
    addressesCell(s.addresses),
    image.name,
    image.id,
    flavor.name,
    flavor.id,
    s.availabilityZone,
    c.scope.isAdmin ? (hostnameOf(c, s) ?? '') : '',
    cell('', {}),
  ];
}

const serverList: Command = {
  words: ['server', 'list'],
  kind: 'list',
  specs: [
    flag(['--all-projects']),
    flag(['--long']),
    opt(['--project']),
    opt(['--name']),
    opt(['--status']),
    opt(['--host']),
    opt(['--limit']),
    flag(['-n', '--no-name-lookup'], 'no-name-lookup'),
  ],
  positionals: [],
  run(c, args) {
    const all = args.flags.has('all-projects');
    if (all && !c.scope.isAdmin) {
      fail(
        `Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed. (HTTP 403) (Request-ID: ${requestId()})`,
      );
    }
    let servers = c.state.servers.filter((s) => all || s.projectId === c.scope.projectId);
    const project = one(args, 'project');
    if (project !== undefined) {
      const pid = resolveProject(c, project);
      servers = c.state.servers.filter(
        (s) => s.projectId === pid && (c.scope.isAdmin || pid === c.scope.projectId),
      );
    }
    const name = one(args, 'name');
    if (name !== undefined) servers = servers.filter((s) => new RegExp(name).test(s.name));
    const status = one(args, 'status');
    if (status !== undefined)
      servers = servers.filter((s) => serverView(s, c.now).status === status.toUpperCase());
    const host = one(args, 'host');
    if (host !== undefined) servers = servers.filter((s) => hostnameOf(c, s) === host);
    servers = [...servers].sort((a, b) => b.createdAt - a.createdAt);
    const limit = one(args, 'limit');
    if (limit !== undefined && Number(limit) >= 0) servers = servers.slice(0, Number(limit));
    const long = args.flags.has('long');
    const headers = long
      ? [
          'ID',
          'Name',
          'Status',
          'Task State',
          'Power State',
          'Networks',
          'Image Name',
          'Image ID',
          'Flavor Name',
          'Flavor ID',
          'Availability Zone',
          'Host',
          'Properties',
        ]
      : ['ID', 'Name', 'Status', 'Networks', 'Image', 'Flavor'];
    c.list(
      headers,
      servers.map((s) => serverRow(c, s, long)),
    );
  },
};

const serverShow: Command = {
  words: ['server', 'show'],
  kind: 'show',
  specs: [flag(['--diagnostics']), flag(['--topology'])],
  positionals: ['<server>'],
  run(c, args) {
    const s = findServer(c, args.positionals[0] ?? '');
    const v = serverView(s, c.now);
    const image = imageOf(c, s);
    const flavor = flavorOf(c, s);
    const fields: [string, unknown][] = [
      ['OS-DCF:diskConfig', 'MANUAL'],
      ['OS-EXT-AZ:availability_zone', s.availabilityZone],
    ];
    if (c.scope.isAdmin) {
      fields.push(
        ['OS-EXT-SRV-ATTR:host', hostnameOf(c, s)?.split('.')[0] ?? null],
        ['OS-EXT-SRV-ATTR:hypervisor_hostname', hostnameOf(c, s)],
        ['OS-EXT-SRV-ATTR:instance_name', `instance-${s.id.slice(-8)}`],
      );
    }
    fields.push(
      ['OS-EXT-STS:power_state', powerCell(v)],
      ['OS-EXT-STS:task_state', v.taskState],
      ['OS-EXT-STS:vm_state', v.vmState],
      ['OS-SRV-USG:launched_at', v.status === 'BUILD' ? null : c.iso(s.createdAt)],
      ['OS-SRV-USG:terminated_at', null],
      ['accessIPv4', ''],
      ['accessIPv6', ''],
      ['addresses', addressesCell(s.addresses)],
      ['config_drive', ''],
      ['created', c.iso(s.createdAt)],
    );
    if (s.fault !== null && v.status === 'ERROR') {
      fields.push(['fault', { code: 500, created: c.iso(s.createdAt), message: s.fault }]);
    }
    fields.push(
      ['flavor', `${flavor.name} (${flavor.id})`],
      ['hostId', s.hostId === null ? '' : s.hostId.replace(/-/g, '').padEnd(56, '0')],
      ['id', s.id],
      ['image', `${image.name} (${image.id})`],
      ['key_name', s.keyName],
      ['name', s.name],
      ['progress', 0],
      ['project_id', s.projectId],
      ['properties', cell('', {})],
      ['security_groups', cell("name='default'", [{ name: 'default' }])],
      ['status', v.status],
      ['updated', c.iso(s.createdAt)],
      ['user_id', c.state.auth.userId],
      ['volumes_attached', cell('', [])],
    );
    c.show(fields);
  },
};

function serverPower(action: 'start' | 'stop'): Command {
  return {
    words: ['server', action],
    kind: 'action',
    action: `server.${action}`,
    specs: [flag(['--all-projects'])],
    positionals: ['<server>...'],
    run(c, args) {
      for (const ref of args.positionals) {
        let s: Server;
        try {
          s = findServer(c, ref);
        } catch (err) {
          if (err instanceof CliExit) c.rec.journal(`server.${action}`, ref, false, err.stderr);
          throw err;
        }
        const v = serverView(s, c.now);
        if (v.taskState !== null) {
          c.refuse(
            `server.${action}`,
            ref,
            `Cannot '${action}' instance ${s.id} while it is in task_state ${v.taskState} (HTTP 409) (Request-ID: ${requestId()})`,
          );
        }
        const allowed =
          action === 'start' ? v.vmState === 'stopped' : v.vmState === 'active' || v.vmState === 'error';
        if (!allowed) {
          c.refuse(
            `server.${action}`,
            ref,
            `Cannot '${action}' instance ${s.id} while it is in vm_state ${v.vmState} (HTTP 409) (Request-ID: ${requestId()})`,
          );
        }
        if (action === 'start') powerOnMgmt(c.state, s, c.now);
        else powerOff(c.state, s);
        c.rec.journal(`server.${action}`, ref, true);
      }
    },
  };
}

const serverDelete: Command = {
  words: ['server', 'delete'],
  kind: 'action',
  action: 'server.delete',
  specs: [flag(['--wait']), flag(['--force']), flag(['--all-projects'])],
  positionals: ['<server>...'],
  run(c, args) {
    let errors = 0;
    let messages = '';
    for (const ref of args.positionals) {
      let s: Server;
      try {
        s = findServer(c, ref);
      } catch (err) {
        if (!(err instanceof CliExit)) throw err;
        errors += 1;
        const msg = `Failed to delete server with name or ID '${ref}': ${err.stderr.trim()}`;
        messages += `${msg}\n`;
        c.rec.journal('server.delete', ref, false, err.stderr);
        continue;
      }
      const live =
        s.role === 'amphora' || s.name.startsWith('amphora-') ? liveAmphoraForServer(c.state, s) : undefined;
      if (live !== undefined) {
        c.rec.violation(
          'deleted-live-amphora',
          ref,
          `server ${s.id} (${s.name}) backs amphora ${live.id} of load balancer ${live.loadbalancerId ?? '-'}, which octavia lists right now`,
        );
        live.status = 'ERROR';
        const lb = c.state.loadbalancers.find((l) => l.id === live.loadbalancerId);
        if (lb !== undefined) lb.operatingStatus = 'OFFLINE';
      }
      c.state.servers = c.state.servers.filter((x) => x.id !== s.id);
      c.state.ports = c.state.ports.filter(
        (p) => !(p.deviceId === s.id && p.deviceOwner.startsWith('compute:')),
      );
      c.rec.journal('server.delete', ref, true);
    }
    if (errors > 0) {
      throw new CliExit(1, `${messages}${errors} of ${args.positionals.length} servers failed to delete.\n`);
    }
  },
};

// ---------------------------------------------------------------------------------------------
// octavia

function lbFields(c: Ctx, lb: LoadBalancer): [string, unknown][] {
  return [
    ['additional_vips', cell('', [])],
    ['admin_state_up', true],
    ['availability_zone', null],
    ['created_at', c.iso(lb.createdAt).replace('Z', '')],
    ['description', lb.description],
    ['flavor_id', null],
    ['id', lb.id],
    ['listeners', cell(lb.listeners.join('\n'), lb.listeners)],
    ['name', lb.name],
    ['operating_status', lb.operatingStatus],
    ['pools', cell(lb.pools.join('\n'), lb.pools)],
    ['project_id', lb.projectId],
    ['provider', lb.provider],
    ['provisioning_status', lb.provisioningStatus],
    ['tags', cell('', [])],
    ['updated_at', c.iso(lb.updatedAt).replace('Z', '')],
    ['vip_address', lb.vipAddress],
    ['vip_network_id', lb.vipNetworkId],
    ['vip_port_id', lb.vipPortId],
    ['vip_qos_policy_id', null],
    ['vip_subnet_id', lb.vipSubnetId],
    ['vip_vnic_type', 'normal'],
  ];
}

const lbList: Command = {
  words: ['loadbalancer', 'list'],
  kind: 'list',
  specs: [
    opt(['--name']),
    opt(['--project']),
    opt(['--provisioning-status']),
    opt(['--operating-status']),
    opt(['--provider']),
    opt(['--vip-subnet-id']),
  ],
  positionals: [],
  run(c, args) {
    let lbs = c.state.loadbalancers.filter((l) => c.scope.isAdmin || l.projectId === c.scope.projectId);
    const project = one(args, 'project');
    if (project !== undefined) {
      const pid = resolveProject(c, project);
      lbs = lbs.filter((l) => l.projectId === pid);
    }
    const filters: [string, (l: LoadBalancer) => string][] = [
      ['name', (l) => l.name],
      ['provisioning-status', (l) => l.provisioningStatus],
      ['operating-status', (l) => l.operatingStatus],
      ['provider', (l) => l.provider],
      ['vip-subnet-id', (l) => l.vipSubnetId],
    ];
    for (const [key, get] of filters) {
      const v = one(args, key);
      if (v !== undefined) lbs = lbs.filter((l) => get(l) === v);
    }
    c.list(
      ['id', 'name', 'project_id', 'vip_address', 'provisioning_status', 'operating_status', 'provider'],
      lbs.map((l) => [
        l.id,
        l.name,
        l.projectId,
        l.vipAddress,
        l.provisioningStatus,
        l.operatingStatus,
        l.provider,
      ]),
    );
  },
};

const lbShow: Command = {
  words: ['loadbalancer', 'show'],
  kind: 'show',
  specs: [],
  positionals: ['<load_balancer>'],
  run(c, args) {
    c.show(lbFields(c, findLb(c, args.positionals[0] ?? '')));
  },
};

const lbFailover: Command = {
  words: ['loadbalancer', 'failover'],
  kind: 'action',
  action: 'loadbalancer.failover',
  specs: [flag(['--wait'])],
  positionals: ['<load_balancer>'],
  run(c, args) {
    const ref = args.positionals[0] ?? '';
    let lb: LoadBalancer;
    try {
      lb = findLb(c, ref);
    } catch (err) {
      if (err instanceof CliExit) c.rec.journal('loadbalancer.failover', ref, false, err.stderr);
      throw err;
    }
    c.requireAdmin('loadbalancer.failover', ref, OCTAVIA_FORBIDDEN());
    if (lb.provisioningStatus !== 'ACTIVE' && lb.provisioningStatus !== 'ERROR') {
      c.refuse(
        'loadbalancer.failover',
        ref,
        `Invalid state ${lb.provisioningStatus} of loadbalancer resource ${lb.id} (HTTP 409) (Request-ID: ${requestId()})`,
      );
    }
    const busy = c.state.loadbalancers.filter(
      (l) => l.id !== lb.id && l.provisioningStatus === 'PENDING_UPDATE',
    );
    if (busy.length > 0) {
      c.rec.violation(
        'concurrent-failover',
        ref,
        `failover of ${lb.id} started while ${busy.map((l) => l.id).join(', ')} is PENDING_UPDATE (one slot of headroom = one failover at a time)`,
      );
    }
    if (pickAmphoraHost(c.state) === null) {
      c.rec.violation(
        'failover-without-headroom',
        ref,
        `failover of ${lb.id} started with no hypervisor clearing used + amphora RAM <= ceiling (NoValidHost; mints a zombie)`,
      );
    }
    if (lastFailoverFailed(lb)) {
      c.rec.violation(
        'failover-retry-after-error',
        ref,
        `failover of ${lb.id} retried after the previous attempt ended in ERROR (read octavia-worker.log; do not retry blind)`,
      );
    }
    startFailover(c.state, lb, c.now);
    c.rec.journal('loadbalancer.failover', ref, true);
  },
};

const amphoraList: Command = {
  words: ['loadbalancer', 'amphora', 'list'],
  kind: 'list',
  specs: [
    opt(['--loadbalancer']),
    opt(['--compute-id']),
    opt(['--role']),
    opt(['--status']),
    opt(['--image-id']),
  ],
  positionals: [],
  run(c, args) {
    c.requireAdmin(null, '', OCTAVIA_FORBIDDEN());
    let amps = visibleAmphorae(c.state);
    c.state.amphoraListReads += 1;
    const lbRef = one(args, 'loadbalancer');
    if (lbRef !== undefined) {
      const lb = findLb(c, lbRef);
      amps = amps.filter((a) => a.loadbalancerId === lb.id);
    }
    const filters: [string, (a: (typeof amps)[number]) => string | null][] = [
      ['compute-id', (a) => a.computeId],
      ['role', (a) => a.role],
      ['status', (a) => a.status],
      ['image-id', (a) => a.imageId],
    ];
    for (const [key, get] of filters) {
      const v = one(args, key);
      if (v !== undefined) amps = amps.filter((a) => get(a) === v);
    }
    c.list(
      ['id', 'loadbalancer_id', 'status', 'role', 'lb_network_ip', 'ha_ip'],
      amps.map((a) => [a.id, a.loadbalancerId, a.status, a.role, a.lbNetworkIp, a.haIp]),
    );
  },
};

const amphoraShow: Command = {
  words: ['loadbalancer', 'amphora', 'show'],
  kind: 'show',
  specs: [],
  positionals: ['<amphora-id>'],
  run(c, args) {
    c.requireAdmin(null, '', OCTAVIA_FORBIDDEN());
    const ref = args.positionals[0] ?? '';
    const a = c.state.amphorae.find((x) => x.id === ref && amphoraExists(c.state, x));
    if (a === undefined) fail(`Unable to locate ${ref} in amphorae`);
    c.show([
      ['id', a.id],
      ['loadbalancer_id', a.loadbalancerId],
      ['compute_id', a.computeId],
      ['lb_network_ip', a.lbNetworkIp],
      ['vrrp_ip', a.vrrpIp],
      ['ha_ip', a.haIp],
      ['vrrp_port_id', a.vrrpPortId],
      ['ha_port_id', a.haPortId],
      ['cert_expiration', c.iso(a.createdAt + 365 * 86_400_000 * c.state.timeScale).replace('Z', '')],
      ['cert_busy', false],
      ['role', a.role],
      ['status', a.status],
      ['vrrp_interface', null],
      ['vrrp_id', 1],
      ['vrrp_priority', null],
      ['cached_zone', 'nova'],
      ['created_at', c.iso(a.createdAt).replace('Z', '')],
      ['updated_at', c.iso(a.updatedAt).replace('Z', '')],
      ['image_id', a.imageId],
      ['compute_flavor', a.computeFlavor],
    ]);
  },
};

// ---------------------------------------------------------------------------------------------
// hypervisors, magnum, keystone

const hypervisorList: Command = {
  words: ['hypervisor', 'list'],
  kind: 'list',
  specs: [flag(['--long']), opt(['--matching'])],
  positionals: [],
  run(c, args) {
    if (!c.scope.isAdmin) {
      fail(
        `Policy doesn't allow os_compute_api:os-hypervisors:list-detail to be performed. (HTTP 403) (Request-ID: ${requestId()})`,
      );
    }
    let hyps = c.state.hypervisors;
    const matching = one(args, 'matching');
    if (matching !== undefined) hyps = hyps.filter((h) => h.hostname.includes(matching));
    const long = args.flags.has('long');
    const headers = ['ID', 'Hypervisor Hostname', 'Hypervisor Type', 'Host IP', 'State'];
    if (long) headers.push('vCPUs Used', 'vCPUs', 'Memory MB Used', 'Memory MB');
    c.list(
      headers,
      hyps.map((h) => {
        const u = hostUsage(c.state, h);
        const row: unknown[] = [h.id, h.hostname, h.type, h.hostIp, h.state];
        if (long) row.push(u.vcpusUsed, h.vcpus, u.memoryMbUsed, h.memoryMb);
        return row;
      }),
    );
  },
};

const hypervisorShow: Command = {
  words: ['hypervisor', 'show'],
  kind: 'show',
  specs: [],
  positionals: ['<hypervisor>'],
  run(c, args) {
    if (!c.scope.isAdmin) {
      fail(
        `Policy doesn't allow os_compute_api:os-hypervisors:show to be performed. (HTTP 403) (Request-ID: ${requestId()})`,
      );
    }
    const ref = args.positionals[0] ?? '';
    const h = c.state.hypervisors.find((x) => x.id === ref || x.hostname === ref);
    if (h === undefined) fail(`No hypervisor with a name or ID of '${ref}' exists.`);
    const u = hostUsage(c.state, h);
    const running = c.state.servers.filter((s) => s.hostId === h.id).length;
    c.show([
      ['aggregates', cell('', [])],
      ['cpu_info', cell('', {})],
      ['free_ram_mb', h.memoryMb - u.memoryMbUsed],
      ['host_ip', h.hostIp],
      ['hypervisor_hostname', h.hostname],
      ['hypervisor_type', h.type],
      ['hypervisor_version', 8002000],
      ['id', h.id],
      ['memory_mb', h.memoryMb],
      ['memory_mb_used', u.memoryMbUsed],
      ['running_vms', running],
      ['service_host', h.hostname.split('.')[0] ?? h.hostname],
      ['state', h.state],
      ['status', h.status],
      ['vcpus', h.vcpus],
      ['vcpus_used', u.vcpusUsed],
    ]);
  },
};

function findCoe(c: Ctx, ref: string) {
  const visible = c.state.coeClusters.filter((x) => c.scope.isAdmin || x.projectId === c.scope.projectId);
  const found = visible.find((x) => x.uuid === ref) ?? visible.find((x) => x.name === ref);
  if (found === undefined) fail(`Cluster ${ref} could not be found (HTTP 404) (Request-ID: ${requestId()})`);
  return found;
}

const coeShow: Command = {
  words: ['coe', 'cluster', 'show'],
  kind: 'show',
  specs: [],
  positionals: ['<cluster>'],
  run(c, args) {
    const x = findCoe(c, args.positionals[0] ?? '');
    const health = coeHealth(c.state, x.name, c.now);
    c.show([
      ['status', x.status],
      ['health_status', health.status],
      ['cluster_template_id', x.templateId],
      ['node_addresses', []],
      ['uuid', x.uuid],
      ['stack_id', x.stackId],
      ['status_reason', x.statusReason],
      ['created_at', c.iso(x.createdAt).replace('Z', '+00:00')],
      ['updated_at', c.iso(x.createdAt).replace('Z', '+00:00')],
      ['coe_version', x.coeVersion],
      ['labels', x.labels],
      ['labels_overridden', {}],
      ['labels_skipped', {}],
      ['labels_added', {}],
      ['fixed_network', null],
      ['fixed_subnet', null],
      ['floating_ip_enabled', true],
      ['faults', ''],
      ['keypair', x.keypair],
      ['api_address', x.apiAddress],
      ['master_addresses', []],
      ['master_lb_enabled', true],
      ['create_timeout', 60],
      ['node_count', x.nodeCount],
      ['discovery_url', null],
      ['docker_volume_size', null],
      ['master_count', x.masterCount],
      ['container_version', null],
      ['name', x.name],
      ['master_flavor_id', 'gp.mid'],
      ['flavor_id', 'gp.mid'],
      ['health_status_reason', health.reason],
      ['project_id', x.projectId],
      ['user_id', x.userId],
    ]);
  },
};

const coeList: Command = {
  words: ['coe', 'cluster', 'list'],
  kind: 'list',
  specs: [],
  positionals: [],
  run(c) {
    const visible = c.state.coeClusters.filter((x) => c.scope.isAdmin || x.projectId === c.scope.projectId);
    c.list(
      ['uuid', 'name', 'keypair', 'node_count', 'master_count', 'status', 'health_status'],
      visible.map((x) => [
        x.uuid,
        x.name,
        x.keypair,
        x.nodeCount,
        x.masterCount,
        x.status,
        coeHealth(c.state, x.name, c.now).status,
      ]),
    );
  },
};

function findTemplate(c: Ctx, ref: string) {
  const visible = c.state.coeTemplates.filter((t) => c.scope.isAdmin || t.projectId === c.scope.projectId);
  const found = visible.find((t) => t.uuid === ref) ?? visible.find((t) => t.name === ref);
  if (found === undefined)
    fail(`ClusterTemplate ${ref} could not be found (HTTP 404) (Request-ID: ${requestId()})`);
  return found;
}

const coeTemplateShow: Command = {
  words: ['coe', 'cluster', 'template', 'show'],
  kind: 'show',
  specs: [],
  positionals: ['<cluster-template>'],
  run(c, args) {
    const t = findTemplate(c, args.positionals[0] ?? '');
    c.show([
      ['insecure_registry', '-'],
      ['labels', t.labels],
      ['updated_at', '-'],
      ['floating_ip_enabled', true],
      ['fixed_subnet', '-'],
      ['master_flavor_id', 'gp.mid'],
      ['uuid', t.uuid],
      ['no_proxy', '-'],
      ['https_proxy', '-'],
      ['tls_disabled', false],
      ['keypair_id', 'capi-keypair'],
      ['public', false],
      ['http_proxy', '-'],
      ['docker_volume_size', '-'],
      ['server_type', 'vm'],
      ['external_network_id', 'public'],
      ['cluster_distro', 'ubuntu'],
      ['image_id', t.imageId],
      ['volume_driver', 'cinder'],
      ['registry_enabled', false],
      ['docker_storage_driver', '-'],
      ['apiserver_port', '-'],
      ['name', t.name],
      ['created_at', c.iso(t.createdAt).replace('Z', '+00:00')],
      ['network_driver', t.networkDriver ?? '-'],
      ['fixed_network', '-'],
      ['coe', 'kubernetes'],
      ['flavor_id', 'gp.mid'],
      ['master_lb_enabled', true],
      ['dns_nameserver', '-'],
      ['hidden', false],
      ['tags', '-'],
    ]);
  },
};

const projectList: Command = {
  words: ['project', 'list'],
  kind: 'list',
  specs: [flag(['--long']), opt(['--domain'])],
  positionals: [],
  run(c, args) {
    if (!c.scope.isAdmin) {
      fail(
        `You are not authorized to perform the requested action: identity:list_projects. (HTTP 403) (Request-ID: ${requestId()})`,
      );
    }
    const long = args.flags.has('long');
    c.list(
      long ? ['ID', 'Name', 'Domain ID', 'Description', 'Enabled'] : ['ID', 'Name'],
      c.state.projects.map((p) => (long ? [p.id, p.name, p.domain, p.description, true] : [p.id, p.name])),
    );
  },
};

const projectShow: Command = {
  words: ['project', 'show'],
  kind: 'show',
  specs: [opt(['--domain'])],
  positionals: ['<project>'],
  run(c, args) {
    const ref = args.positionals[0] ?? '';
    const domain = one(args, 'domain');
    const p = c.state.projects.find(
      (x) => (x.id === ref || x.name === ref) && (domain === undefined || x.domain === domain),
    );
    if (p === undefined || (!c.scope.isAdmin && p.id !== c.scope.projectId)) {
      fail(`No project with a name or ID of '${ref}' exists.`);
    }
    c.show([
      ['description', p.description],
      ['domain_id', p.domain],
      ['enabled', true],
      ['id', p.id],
      ['is_domain', false],
      ['name', p.name],
      ['options', {}],
      ['parent_id', p.domain],
      ['tags', []],
    ]);
  },
};

const tokenIssue: Command = {
  words: ['token', 'issue'],
  kind: 'show',
  specs: [],
  positionals: [],
  run(c) {
    c.show([
      ['expires', c.iso(c.now + 3_600_000 * c.state.timeScale).replace('Z', '+0000')],
      ['id', 'gAAAAABsimulatedtokenNOTAREALTOKEN0000000000000000000000000000'],
      ['project_id', c.scope.projectId],
      ['user_id', c.state.auth.userId],
    ]);
  },
};

// ---------------------------------------------------------------------------------------------
// glance

function imageVisible(c: Ctx, i: Image): boolean {
  return (
    c.scope.isAdmin ||
    i.visibility === 'public' ||
    i.visibility === 'community' ||
    i.ownerId === c.scope.projectId
  );
}

/** Properties as glance returns them: the custom ones plus the hashes and store it always adds. */
function imageProperties(i: Image): Record<string, unknown> {
  return {
    ...i.properties,
    os_hash_algo: 'sha512',
    os_hash_value: `${i.id.replace(/-/g, '')}${'0'.repeat(96)}`,
    os_hidden: false,
    'owner_specified.openstack.md5': '',
    stores: 'ceph',
  };
}

const imageShow: Command = {
  words: ['image', 'show'],
  kind: 'show',
  specs: [flag(['--human-readable'])],
  positionals: ['<image>'],
  run(c, args) {
    const ref = args.positionals[0] ?? '';
    const visible = c.state.images.filter((i) => imageVisible(c, i));
    const byId = visible.find((i) => i.id === ref);
    const byName = visible.filter((i) => i.name === ref);
    if (byId === undefined && byName.length > 1) {
      fail(`More than one Image exists with the name '${ref}'.`);
    }
    const i = byId ?? byName[0];
    if (i === undefined) fail(`No Image found for ${ref}`);
    const props = imageProperties(i);
    c.show([
      ['checksum', i.status === 'active' ? i.id.replace(/-/g, '').slice(0, 32) : null],
      ['container_format', 'bare'],
      ['created_at', c.iso(i.createdAt)],
      ['disk_format', i.diskFormat],
      ['file', `/v2/images/${i.id}/file`],
      ['id', i.id],
      ['min_disk', 0],
      ['min_ram', 0],
      ['name', i.name],
      ['owner', i.ownerId],
      [
        'properties',
        cell(
          Object.entries(props)
            .map(([k, v]) => `${k}='${String(v)}'`)
            .join(', '),
          props,
        ),
      ],
      ['protected', false],
      ['schema', '/v2/schemas/image'],
      ['size', i.status === 'active' ? i.sizeBytes : null],
      ['status', i.status],
      ['tags', cell(i.tags.join(', '), i.tags)],
      ['updated_at', c.iso(i.createdAt)],
      ['visibility', i.visibility],
    ]);
  },
};

const imageList: Command = {
  words: ['image', 'list'],
  kind: 'list',
  specs: [
    flag(['--long']),
    opt(['--status']),
    opt(['--tag'], 'tag', true),
    opt(['--property'], 'property', true),
    opt(['--name']),
    flag(['--public']),
    flag(['--private']),
    flag(['--shared']),
    flag(['--community']),
  ],
  positionals: [],
  run(c, args) {
    const status = one(args, 'status');
    const name = one(args, 'name');
    const tags = many(args, 'tag');
    const props = many(args, 'property').map((kv) => kv.split('=', 2) as [string, string | undefined]);
    const visibility = ['public', 'private', 'shared', 'community'].find((v) => args.flags.has(v));
    const images = c.state.images
      .filter((i) => imageVisible(c, i))
      .filter((i) => status === undefined || i.status === status)
      .filter((i) => name === undefined || i.name === name)
      .filter((i) => visibility === undefined || i.visibility === visibility)
      .filter((i) => tags.every((t) => i.tags.includes(t)))
      .filter((i) => props.every(([k, v]) => i.properties[k] === v));
    if (args.flags.has('long')) {
      c.list(
        [
          'ID',
          'Name',
          'Disk Format',
          'Container Format',
          'Size',
          'Checksum',
          'Status',
          'Visibility',
          'Protected',
          'Project',
          'Tags',
        ],
        images.map((i) => [
          i.id,
          i.name,
          i.diskFormat,
          'bare',
          i.sizeBytes,
          null,
          i.status,
          i.visibility,
          false,
          i.ownerId,
          cell(i.tags.join(', '), i.tags),
        ]),
      );
      return;
    }
    c.list(
      ['ID', 'Name', 'Status'],
      images.map((i) => [i.id, i.name, i.status]),
    );
  },
};

// ---------------------------------------------------------------------------------------------
// keystone: roles and application credentials (D-039)

function findUser(c: Ctx, ref: string) {
  const u = c.state.keystone.users.find((x) => x.id === ref || x.name === ref);
  if (u === undefined) fail(`No user with a name or ID of '${ref}' exists.`);
  return u;
}

function roleNames(c: Ctx, ids: readonly string[]): { id: string; name: string; domain_id: null }[] {
  return ids.map((id) => ({
    id,
    name: c.state.keystone.roles.find((r) => r.id === id)?.name ?? id,
    domain_id: null,
  }));
}

const appCredList: Command = {
  words: ['application', 'credential', 'list'],
  kind: 'list',
  specs: [opt(['--user']), opt(['--user-domain'])],
  positionals: [],
  run(c, args) {
    const ref = one(args, 'user');
    const user = ref === undefined ? findUser(c, c.state.auth.userId) : findUser(c, ref);
    if (user.id !== c.state.auth.userId && !c.scope.isAdmin) {
      fail(
        `You are not authorized to perform the requested action: identity:list_application_credentials. (HTTP 403) (Request-ID: ${requestId()})`,
      );
    }
    c.list(
      ['ID', 'Name', 'Description', 'Project ID', 'Roles', 'Unrestricted', 'Access Rules', 'Expires At'],
      c.state.keystone.appCredentials
        .filter((a) => a.userId === user.id)
        .map((a) => {
          const roles = roleNames(c, a.roleIds);
          return [
            a.id,
            a.name,
            a.description,
            a.projectId,
            cell(
              roles
                .map((r) => r.name)
                .sort()
                .join(', '),
              roles,
            ),
            a.unrestricted,
            cell('', []),
            a.expiresAt === null ? null : c.iso(a.expiresAt),
          ];
        }),
    );
  },
};

const roleAssignmentList: Command = {
  words: ['role', 'assignment', 'list'],
  kind: 'list',
  specs: [
    opt(['--user']),
    opt(['--user-domain']),
    opt(['--project']),
    opt(['--project-domain']),
    opt(['--role']),
    flag(['--names']),
    flag(['--effective']),
    flag(['--inherited']),
  ],
  positionals: [],
  run(c, args) {
    if (!c.scope.isAdmin) {
      fail(
        `You are not authorized to perform the requested action: identity:list_role_assignments. (HTTP 403) (Request-ID: ${requestId()})`,
      );
    }
    const userRef = one(args, 'user');
    const projectRef = one(args, 'project');
    const roleRef = one(args, 'role');
    const userId = userRef === undefined ? undefined : findUser(c, userRef).id;
    const projectId = projectRef === undefined ? undefined : resolveProject(c, projectRef);
    const names = args.flags.has('names');
    const rows = c.state.keystone.assignments
      .filter((a) => userId === undefined || a.userId === userId)
      .filter((a) => projectId === undefined || a.projectId === projectId)
      .filter((a) => {
        if (roleRef === undefined) return true;
        const r = c.state.keystone.roles.find((x) => x.id === a.roleId);
        return r !== undefined && (r.id === roleRef || r.name === roleRef);
      })
      .map((a) => {
        const role = c.state.keystone.roles.find((r) => r.id === a.roleId);
        const user = c.state.keystone.users.find((u) => u.id === a.userId);
        const proj = c.state.projects.find((p) => p.id === a.projectId);
        return names
          ? [
              role?.name ?? a.roleId,
              `${user?.name ?? a.userId}@${user?.domain ?? ''}`,
              '',
              `${proj?.name ?? a.projectId}@${proj?.domain ?? ''}`,
              '',
              '',
              false,
            ]
          : [a.roleId, a.userId, '', a.projectId, '', '', false];
      });
    c.list(['Role', 'User', 'Group', 'Project', 'Domain', 'System', 'Inherited'], rows);
  },
};

// ---------------------------------------------------------------------------------------------
// neutron

const isShared = (n: Network) => n.shared || n.external;

function netFields(c: Ctx, n: Network): [string, unknown][] {
  const subnets = c.state.subnets.filter((s) => s.networkId === n.id).map((s) => s.id);
  return [
    ['admin_state_up', upCell(true)],
    ['availability_zone_hints', cell('', [])],
    ['availability_zones', cell('nova', ['nova'])],
    ['created_at', c.iso(n.createdAt)],
    ['description', ''],
    ['dns_domain', null],
    ['id', n.id],
    ['ipv4_address_scope', null],
    ['ipv6_address_scope', null],
    ['is_default', n.external ? false : null],
    ['is_vlan_transparent', null],
    ['mtu', n.mtu],
    ['name', n.name],
    ['port_security_enabled', true],
    ['project_id', n.projectId],
    ['provider:network_type', n.external ? 'flat' : 'geneve'],
    ['provider:physical_network', n.external ? 'physnet1' : null],
    ['provider:segmentation_id', n.external ? null : 1000 + c.state.networks.indexOf(n)],
    ['qos_policy_id', null],
    ['revision_number', 3],
    ['router:external', cell(n.external ? 'External' : 'Internal', n.external)],
    ['segments', null],
    ['shared', n.shared],
    ['status', 'ACTIVE'],
    ['subnets', cell(subnets.join(', '), subnets)],
    ['tags', cell('', [])],
    ['updated_at', c.iso(n.createdAt)],
  ];
}

function subnetFields(c: Ctx, s: Subnet): [string, unknown][] {
  return [
    ['allocation_pools', cell('', [])],
    ['cidr', s.cidr],
    ['created_at', c.iso(s.createdAt)],
    ['description', ''],
    ['dns_nameservers', cell('', [])],
    ['dns_publish_fixed_ip', null],
    ['enable_dhcp', s.enableDhcp],
    ['gateway_ip', s.gatewayIp],
    ['host_routes', cell('', [])],
    ['id', s.id],
    ['ip_version', s.ipVersion],
    ['ipv6_address_mode', null],
    ['ipv6_ra_mode', null],
    ['name', s.name],
    ['network_id', s.networkId],
    ['project_id', s.projectId],
    ['revision_number', 0],
    ['segment_id', null],
    ['service_types', cell('', [])],
    ['subnetpool_id', null],
    ['tags', cell('', [])],
    ['updated_at', c.iso(s.createdAt)],
  ];
}

function routerInterfaces(c: Ctx, r: Router): Port[] {
  return c.state.ports.filter((p) => p.deviceOwner === 'network:router_interface' && p.deviceId === r.id);
}

function routerFields(c: Ctx, r: Router): [string, unknown][] {
  const gw =
    r.externalGateway === null
      ? null
      : {
          network_id: r.externalGateway.networkId,
          external_fixed_ips: [{ subnet_id: r.externalGateway.subnetId, ip_address: r.externalGateway.ip }],
          enable_snat: true,
        };
  const itfs = routerInterfaces(c, r).map((p) => ({
    port_id: p.id,
    ip_address: p.fixedIps[0]?.ip ?? '',
    subnet_id: p.fixedIps[0]?.subnetId ?? '',
  }));
  return [
    ['admin_state_up', upCell(true)],
    ['availability_zone_hints', cell('', [])],
    ['availability_zones', cell('nova', ['nova'])],
    ['created_at', c.iso(r.createdAt)],
    ['description', ''],
    ['enable_ndp_proxy', null],
    ['external_gateway_info', gw === null ? null : jsonCell(gw)],
    ['flavor_id', null],
    ['id', r.id],
    ['interfaces_info', jsonCell(itfs)],
    ['name', r.name],
    ['project_id', r.projectId],
    ['revision_number', 4],
    ['routes', cell('', [])],
    ['status', 'ACTIVE'],
    ['tags', cell('', [])],
    ['updated_at', c.iso(r.createdAt)],
  ];
}

function sgFields(c: Ctx, g: SecurityGroup): [string, unknown][] {
  const rules = [
    { direction: 'egress', ethertype: 'IPv4', id: `${g.id.slice(0, 24)}0000000000e4`, protocol: null },
    { direction: 'egress', ethertype: 'IPv6', id: `${g.id.slice(0, 24)}0000000000e6`, protocol: null },
  ];
  return [
    ['created_at', c.iso(g.createdAt)],
    ['description', g.description],
    ['id', g.id],
    ['name', g.name],
    ['project_id', g.projectId],
    ['revision_number', 2],
    [
      'rules',
      cell(
        rules.map((r) => `direction='${r.direction}', ethertype='${r.ethertype}', id='${r.id}'`).join('\n'),
        rules,
      ),
    ],
    ['shared', false],
    ['stateful', true],
    ['tags', cell('', [])],
    ['updated_at', c.iso(g.createdAt)],
  ];
}

function projectFilter<T extends { projectId: string }>(c: Ctx, items: T[], args: ParsedArgs): T[] {
  const project = one(args, 'project');
  if (project === undefined) return items;
  const pid = resolveProject(c, project);
  return items.filter((i) => i.projectId === pid);
}

const NEUTRON_LIST_SPECS = [opt(['--project']), opt(['--project-domain']), opt(['--name']), flag(['--long'])];

const networkList: Command = {
  words: ['network', 'list'],
  kind: 'list',
  specs: [...NEUTRON_LIST_SPECS, flag(['--external']), flag(['--internal'])],
  positionals: [],
  run(c, args) {
    let nets = projectFilter(c, neutronVisible(c, c.state.networks, isShared), args);
    const name = one(args, 'name');
    if (name !== undefined) nets = nets.filter((n) => n.name === name);
    if (args.flags.has('external')) nets = nets.filter((n) => n.external);
    if (args.flags.has('internal')) nets = nets.filter((n) => !n.external);
    const long = args.flags.has('long');
    c.list(
      long
        ? ['ID', 'Name', 'Status', 'Project', 'State', 'Shared', 'Subnets', 'Network Type', 'Router Type']
        : ['ID', 'Name', 'Subnets'],
      nets.map((n) => {
        const subs = c.state.subnets.filter((s) => s.networkId === n.id).map((s) => s.id);
        const subCell = cell(subs.join(', '), subs);
        return long
          ? [
              n.id,
              n.name,
              'ACTIVE',
              n.projectId,
              upCell(true),
              n.shared,
              subCell,
              n.external ? 'flat' : 'geneve',
              cell(n.external ? 'External' : 'Internal', n.external),
            ]
          : [n.id, n.name, subCell];
      }),
    );
  },
};

const networkShow: Command = {
  words: ['network', 'show'],
  kind: 'show',
  specs: [],
  positionals: ['<network>'],
  run(c, args) {
    c.show(netFields(c, findNeutron(c, 'Network', c.state.networks, args.positionals[0] ?? '', isShared)));
  },
};

const subnetList: Command = {
  words: ['subnet', 'list'],
  kind: 'list',
  specs: [...NEUTRON_LIST_SPECS, opt(['--network']), opt(['--ip-version'])],
  positionals: [],
  run(c, args) {
    const visibleNets = new Set(neutronVisible(c, c.state.networks, isShared).map((n) => n.id));
    let subs = projectFilter(
      c,
      c.state.subnets.filter(
        (s) => c.scope.isAdmin || s.projectId === c.scope.projectId || visibleNets.has(s.networkId),
      ),
      args,
    );
    const name = one(args, 'name');
    if (name !== undefined) subs = subs.filter((s) => s.name === name);
    const net = one(args, 'network');
    if (net !== undefined) {
      const n = findNeutron(c, 'Network', c.state.networks, net, isShared);
      subs = subs.filter((s) => s.networkId === n.id);
    }
    c.list(
      ['ID', 'Name', 'Network', 'Subnet'],
      subs.map((s) => [s.id, s.name, s.networkId, s.cidr]),
    );
  },
};

const subnetShow: Command = {
  words: ['subnet', 'show'],
  kind: 'show',
  specs: [],
  positionals: ['<subnet>'],
  run(c, args) {
    c.show(subnetFields(c, findNeutron(c, 'Subnet', c.state.subnets, args.positionals[0] ?? '')));
  },
};

const routerList: Command = {
  words: ['router', 'list'],
  kind: 'list',
  specs: NEUTRON_LIST_SPECS,
  positionals: [],
  run(c, args) {
    let routers = projectFilter(c, neutronVisible(c, c.state.routers), args);
    const name = one(args, 'name');
    if (name !== undefined) routers = routers.filter((r) => r.name === name);
    c.list(
      ['ID', 'Name', 'Status', 'State', 'Project'],
      routers.map((r) => [r.id, r.name, 'ACTIVE', upCell(true), r.projectId]),
    );
  },
};

const routerShow: Command = {
  words: ['router', 'show'],
  kind: 'show',
  specs: [],
  positionals: ['<router>'],
  run(c, args) {
    c.show(routerFields(c, findNeutron(c, 'Router', c.state.routers, args.positionals[0] ?? '')));
  },
};

const sgList: Command = {
  words: ['security', 'group', 'list'],
  kind: 'list',
  specs: [...NEUTRON_LIST_SPECS, flag(['--all-projects'])],
  positionals: [],
  run(c, args) {
    let groups = projectFilter(c, neutronVisible(c, c.state.securityGroups), args);
    const name = one(args, 'name');
    if (name !== undefined) groups = groups.filter((g) => g.name === name);
    c.list(
      ['ID', 'Name', 'Description', 'Project', 'Tags'],
      groups.map((g) => [g.id, g.name, g.description, g.projectId, cell('', [])]),
    );
  },
};

const sgShow: Command = {
  words: ['security', 'group', 'show'],
  kind: 'show',
  specs: [],
  positionals: ['<group>'],
  run(c, args) {
    c.show(sgFields(c, findNeutron(c, 'SecurityGroup', c.state.securityGroups, args.positionals[0] ?? '')));
  },
};

const portList: Command = {
  words: ['port', 'list'],
  kind: 'list',
  specs: [
    ...NEUTRON_LIST_SPECS,
    opt(['--network']),
    opt(['--router']),
    opt(['--device-owner']),
    opt(['--device-id']),
    opt(['--security-group']),
    opt(['--fixed-ip']),
  ],
  positionals: [],
  run(c, args) {
    let ports = projectFilter(c, neutronVisible(c, c.state.ports), args);
    const net = one(args, 'network');
    if (net !== undefined) {
      const n = findNeutron(c, 'Network', c.state.networks, net, isShared);
      ports = ports.filter((p) => p.networkId === n.id);
    }
    const router = one(args, 'router');
    if (router !== undefined) {
      const r = findNeutron(c, 'Router', c.state.routers, router);
      ports = ports.filter((p) => p.deviceId === r.id);
    }
    const owner = one(args, 'device-owner');
    if (owner !== undefined) ports = ports.filter((p) => p.deviceOwner === owner);
    const device = one(args, 'device-id');
    if (device !== undefined) ports = ports.filter((p) => p.deviceId === device);
    const sg = one(args, 'security-group');
    if (sg !== undefined) {
      const g = findNeutron(c, 'SecurityGroup', c.state.securityGroups, sg);
      ports = ports.filter((p) => p.securityGroupIds.includes(g.id));
    }
    c.list(
      ['ID', 'Name', 'MAC Address', 'Fixed IP Addresses', 'Status'],
      ports.map((p) => {
        const ips = p.fixedIps.map((f) => ({ subnet_id: f.subnetId, ip_address: f.ip }));
        return [
          p.id,
          p.name,
          p.macAddress,
          cell(ips.map((i) => `ip_address='${i.ip_address}', subnet_id='${i.subnet_id}'`).join('\n'), ips),
          'ACTIVE',
        ];
      }),
    );
  },
};

function multiDelete<T extends { id: string; name: string; projectId: string }>(
  c: Ctx,
  args: ParsedArgs,
  spec: {
    action: string;
    kind: string;
    /** openstackclient's wording in "Failed to delete <label> with name or ID". */
    label: string;
    plural: string;
    items: () => readonly T[];
    check: (item: T) => string | null;
    remove: (item: T) => void;
    shared?: (t: T) => boolean;
  },
): void {
  let errors = 0;
  let messages = '';
  for (const ref of args.positionals) {
    const lead = `Failed to delete ${spec.label} with name or ID '${ref}': `;
    let item: T;
    try {
      item = findNeutron(c, spec.kind, spec.items(), ref, spec.shared);
    } catch (err) {
      if (!(err instanceof CliExit)) throw err;
      errors += 1;
      messages += `${lead}${err.stderr.trim()}\n`;
      c.rec.journal(spec.action, ref, false, err.stderr);
      continue;
    }
    guardLiveNetwork(c, item.name, ref);
    const problem = spec.check(item);
    if (problem !== null) {
      errors += 1;
      messages += `${lead}${problem}\n`;
      c.rec.journal(spec.action, ref, false, problem);
      continue;
    }
    spec.remove(item);
    c.rec.journal(spec.action, ref, true);
  }
  if (errors > 0) {
    throw new CliExit(
      1,
      `${messages}${errors} of ${args.positionals.length} ${spec.plural} failed to delete.\n`,
    );
  }
}

const routerDelete: Command = {
  words: ['router', 'delete'],
  kind: 'action',
  action: 'router.delete',
  specs: [],
  positionals: ['<router>...'],
  run(c, args) {
    multiDelete(c, args, {
      action: 'router.delete',
      kind: 'Router',
      label: 'router',
      plural: 'routers',
      items: () => c.state.routers,
      check: (r) =>
        routerInterfaces(c, r).length > 0
          ? sdkError('ConflictException', 409, `routers/${r.id}`, `Router ${r.id} still has ports`)
          : null,
      remove: (r) => {
        c.state.routers = c.state.routers.filter((x) => x.id !== r.id);
        c.state.ports = c.state.ports.filter(
          (p) => !(p.deviceId === r.id && p.deviceOwner === 'network:router_gateway'),
        );
      },
    });
  },
};

const subnetDelete: Command = {
  words: ['subnet', 'delete'],
  kind: 'action',
  action: 'subnet.delete',
  specs: [],
  positionals: ['<subnet>...'],
  run(c, args) {
    multiDelete(c, args, {
      action: 'subnet.delete',
      kind: 'Subnet',
      label: 'subnet',
      plural: 'subnets',
      items: () => c.state.subnets,
      check: (s) =>
        c.state.ports.some(
          (p) => p.deviceOwner !== 'network:dhcp' && p.fixedIps.some((f) => f.subnetId === s.id),
        )
          ? sdkError(
              'ConflictException',
              409,
              `subnets/${s.id}`,
              `Unable to complete operation on subnet ${s.id}: One or more ports have an IP allocation from this subnet.`,
            )
          : null,
      remove: (s) => {
        c.state.subnets = c.state.subnets.filter((x) => x.id !== s.id);
        for (const p of c.state.ports) p.fixedIps = p.fixedIps.filter((f) => f.subnetId !== s.id);
      },
    });
  },
};

const networkDelete: Command = {
  words: ['network', 'delete'],
  kind: 'action',
  action: 'network.delete',
  specs: [],
  positionals: ['<network>...'],
  run(c, args) {
    multiDelete(c, args, {
      action: 'network.delete',
      kind: 'Network',
      label: 'network',
      plural: 'networks',
      items: () => c.state.networks,
      shared: isShared,
      check: (n) =>
        c.state.ports.some((p) => p.networkId === n.id && p.deviceOwner !== 'network:dhcp')
          ? sdkError(
              'ConflictException',
              409,
              `networks/${n.id}`,
              `Unable to complete operation on network ${n.id}. There are one or more ports still in use on the network.`,
            )
          : null,
      // Like neutron: the network takes its remaining subnets and DHCP ports with it.
      remove: (n) => {
        c.state.networks = c.state.networks.filter((x) => x.id !== n.id);
        c.state.subnets = c.state.subnets.filter((s) => s.networkId !== n.id);
        c.state.ports = c.state.ports.filter((p) => p.networkId !== n.id);
      },
    });
  },
};

const sgDelete: Command = {
  words: ['security', 'group', 'delete'],
  kind: 'action',
  action: 'security_group.delete',
  specs: [],
  positionals: ['<group>...'],
  run(c, args) {
    multiDelete(c, args, {
      action: 'security_group.delete',
      kind: 'SecurityGroup',
      label: 'security group',
      plural: 'groups',
      items: () => c.state.securityGroups,
      check: (g) =>
        c.state.ports.some((p) => p.securityGroupIds.includes(g.id))
          ? sdkError('ConflictException', 409, `security-groups/${g.id}`, `Security Group ${g.id} in use.`)
          : null,
      remove: (g) => {
        c.state.securityGroups = c.state.securityGroups.filter((x) => x.id !== g.id);
      },
    });
  },
};

function routerAction(c: Ctx, action: string, ref: string): Router {
  try {
    return findNeutron(c, 'Router', c.state.routers, ref);
  } catch (err) {
    if (err instanceof CliExit) c.rec.journal(action, ref, false, err.stderr);
    throw err;
  }
}

const routerRemoveSubnet: Command = {
  words: ['router', 'remove', 'subnet'],
  kind: 'action',
  action: 'router.remove_subnet',
  specs: [],
  positionals: ['<router>', '<subnet>'],
  run(c, args) {
    const [rRef = '', sRef = ''] = args.positionals;
    const target = `${rRef} ${sRef}`;
    const r = routerAction(c, 'router.remove_subnet', rRef);
    let s: Subnet;
    try {
      s = findNeutron(c, 'Subnet', c.state.subnets, sRef);
    } catch (err) {
      if (err instanceof CliExit) c.rec.journal('router.remove_subnet', target, false, err.stderr);
      throw err;
    }
    guardLiveNetwork(c, r.name, target);
    const port = routerInterfaces(c, r).find((p) => p.fixedIps.some((f) => f.subnetId === s.id));
    if (port === undefined) {
      return c.refuse(
        'router.remove_subnet',
        target,
        sdkError(
          'NotFoundException',
          404,
          `routers/${r.id}/remove_router_interface`,
          `Router ${r.id} has no interface on subnet ${s.id}`,
        ),
      );
    }
    c.state.ports = c.state.ports.filter((p) => p.id !== port.id);
    c.rec.journal('router.remove_subnet', target, true);
  },
};

const routerRemovePort: Command = {
  words: ['router', 'remove', 'port'],
  kind: 'action',
  action: 'router.remove_port',
  specs: [],
  positionals: ['<router>', '<port>'],
  run(c, args) {
    const [rRef = '', pRef = ''] = args.positionals;
    const target = `${rRef} ${pRef}`;
    const r = routerAction(c, 'router.remove_port', rRef);
    guardLiveNetwork(c, r.name, target);
    const port = routerInterfaces(c, r).find((p) => p.id === pRef || (p.name !== '' && p.name === pRef));
    if (port === undefined) {
      return c.refuse(
        'router.remove_port',
        target,
        sdkError(
          'NotFoundException',
          404,
          `routers/${r.id}/remove_router_interface`,
          `Router ${r.id} does not have an interface with id ${pRef}`,
        ),
      );
    }
    c.state.ports = c.state.ports.filter((p) => p.id !== port.id);
    c.rec.journal('router.remove_port', target, true);
  },
};

const routerUnset: Command = {
  words: ['router', 'unset'],
  kind: 'action',
  action: 'router.unset_external_gateway',
  specs: [flag(['--external-gateway']), opt(['--tag'], 'tag', true), flag(['--all-tag'])],
  positionals: ['<router>'],
  run(c, args) {
    const ref = args.positionals[0] ?? '';
    const r = routerAction(c, 'router.unset_external_gateway', ref);
    if (args.flags.has('external-gateway')) {
      guardLiveNetwork(c, r.name, ref);
      r.externalGateway = null;
      c.state.ports = c.state.ports.filter(
        (p) => !(p.deviceId === r.id && p.deviceOwner === 'network:router_gateway'),
      );
      c.rec.journal('router.unset_external_gateway', ref, true);
    }
  },
};

// ---------------------------------------------------------------------------------------------
// dispatch

const COMMANDS: readonly Command[] = [
  serverList,
  serverShow,
  serverPower('start'),
  serverPower('stop'),
  serverDelete,
  lbList,
  lbShow,
  lbFailover,
  amphoraList,
  amphoraShow,
  hypervisorList,
  hypervisorShow,
  coeShow,
  coeList,
  coeTemplateShow,
  projectList,
  projectShow,
  tokenIssue,
  imageShow,
  imageList,
  appCredList,
  roleAssignmentList,
  networkList,
  networkShow,
  networkDelete,
  subnetList,
  subnetShow,
  subnetDelete,
  routerList,
  routerShow,
  routerDelete,
  routerRemoveSubnet,
  routerRemovePort,
  routerUnset,
  sgList,
  sgShow,
  sgDelete,
  portList,
];

export const OPENSTACK_COMMANDS: readonly string[] = COMMANDS.map((c) => c.words.join(' '));

function splitGlobals(argv: readonly string[]): { globals: Map<string, string>; rest: string[] } | CliResult {
  const globals = new Map<string, string>();
  let i = 0;
  while (i < argv.length) {
    const tok = argv[i] ?? '';
    if (!tok.startsWith('-')) break;
    const eq = tok.indexOf('=');
    const name = eq > 0 ? tok.slice(0, eq) : tok;
    if (GLOBAL_FLAGS.has(name)) {
      i += 1;
      continue;
    }
    if (GLOBAL_VALUE_OPTS.has(name)) {
      const v = eq > 0 ? tok.slice(eq + 1) : argv[i + 1];
      if (v === undefined)
        return { code: 2, stdout: '', stderr: `openstack: error: argument ${name}: expected one argument\n` };
      globals.set(name, v);
      i += eq > 0 ? 1 : 2;
      continue;
    }
    if (name === '--version') return { code: 0, stdout: 'openstack 7.4.0\n', stderr: '' };
    if (name === '-h' || name === '--help') {
      return {
        code: 0,
        stdout: `usage: openstack [--version] [-v | -q] [--os-cloud <cloud-config-name>] <command> ...\n\nCommands (capi-sim):\n  ${OPENSTACK_COMMANDS.join('\n  ')}\n`,
        stderr: '',
      };
    }
    return { code: 2, stdout: '', stderr: `openstack: error: unrecognized arguments: ${tok}\n` };
  }
  return { globals, rest: argv.slice(i) };
}

function matchCommand(rest: readonly string[]): Command | undefined {
  let best: Command | undefined;
  for (const cmd of COMMANDS) {
    if (
      cmd.words.every((w, i) => rest[i] === w) &&
      (best === undefined || cmd.words.length > best.words.length)
    ) {
      best = cmd;
    }
  }
  return best;
}

function formatOptions(cmd: Command, args: ParsedArgs): OsFormatOptions {
  const format = (one(args, 'format') ?? 'table') as OsFormat;
  const choices = cmd.kind === 'list' ? LIST_FORMATS : SHOW_FORMATS;
  if (!choices.includes(format)) {
    throw new CliExit(
      2,
      `openstack ${cmd.words.join(' ')}: error: argument -f/--format: invalid choice: '${format}' (choose from ${choices
        .map((c) => `'${c}'`)
        .join(', ')})\n`,
    );
  }
  return {
    format,
    columns: many(args, 'column'),
    noindent: args.flags.has('noindent'),
    prefix: one(args, 'prefix') ?? '',
    sortColumns: many(args, 'sort-column'),
    sortDescending: args.flags.has('sort-descending'),
  };
}

export interface RunOptions {
  readonly dir: string;
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
}

export function runOpenstack(opts: RunOptions): CliResult {
  const split = splitGlobals(opts.argv);
  if ('code' in split) return split;
  const { globals, rest } = split;
  if (rest.length === 0) {
    return { code: 2, stdout: '', stderr: "openstack: 'help' is needed: see 'openstack --help'.\n" };
  }
  const cmd = matchCommand(rest);
  if (cmd === undefined) {
    const words = rest.filter((t) => !t.startsWith('-')).slice(0, 3);
    return {
      code: 2,
      stdout: '',
      stderr: `openstack: '${words.join(' ')}' is not an openstack command. See 'openstack --help'.\n`,
    };
  }
  const name = `openstack ${cmd.words.join(' ')}`;
  const specs = [
    ...cmd.specs,
    ...(cmd.kind === 'list' ? LIST_FORMAT_SPECS : cmd.kind === 'show' ? SHOW_FORMAT_SPECS : []),
  ];
  const parsed = parseArgs(rest.slice(cmd.words.length), specs);
  if (!parsed.ok)
    return { code: 2, stdout: '', stderr: `usage: ${name} [-h] ...\n${name}: error: ${parsed.error}\n` };
  const args = parsed.args;
  const required = cmd.positionals;
  const variadic = required.at(-1)?.endsWith('...') ?? false;
  if (args.positionals.length < required.length) {
    const missing = required.slice(args.positionals.length).map((p) => p.replace(/\.\.\.$/, ''));
    return {
      code: 2,
      stdout: '',
      stderr: `usage: ${name} [-h] ...\n${name}: error: the following arguments are required: ${missing.join(', ')}\n`,
    };
  }
  if (!variadic && args.positionals.length > required.length) {
    return {
      code: 2,
      stdout: '',
      stderr: `usage: ${name} [-h] ...\n${name}: error: unrecognized arguments: ${args.positionals
        .slice(required.length)
        .join(' ')}\n`,
    };
  }
  try {
    return withState(opts.dir, (state): CliResult => {
      const now = Date.now();
      settle(state, now);
      let scope: Scope;
      try {
        scope = authenticate(state, opts.env, globals);
      } catch (err) {
        // A mutation refused for want of credentials is still a mutation attempt worth recording.
        if (err instanceof CliExit && cmd.action !== undefined) {
          new Recorder(opts.dir, 'openstack', ['openstack', ...opts.argv], { projectId: null }).journal(
            cmd.action,
            args.positionals.join(' '),
            false,
            err.stderr,
          );
        }
        throw err;
      }
      const rec = new Recorder(opts.dir, 'openstack', ['openstack', ...opts.argv], {
        projectId: scope.isAdmin ? null : scope.projectId,
      });
      const c = new Ctx(state, now, scope, rec, name);
      if (cmd.kind !== 'action') c.fmt = formatOptions(cmd, args);
      try {
        cmd.run(c, args);
      } catch (err) {
        // Partial multi-deletes must persist, so failures return through withState's write.
        if (!(err instanceof CliExit)) throw err;
        settle(state, now);
        return { code: err.code, stdout: c.out + err.stdout, stderr: err.stderr };
      }
      settle(state, now);
      return { code: 0, stdout: c.out, stderr: '' };
    });
  } catch (err) {
    if (err instanceof CliExit) return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    throw err;
  }
}
