/**
 * The juju side of the simulated cloud: the `openstack` model's machines, applications and units,
 * each unit's haproxy (the rows its admin socket's `show stat` reports, D-045) and, on magnum units,
 * what magnum-conductor was launched with (D-037) and where helm lives (DOCFIX-035).
 *
 * A scenario describes it compactly; haproxy's backends are derived the way the OpenStack charms
 * render them: on every unit of an API application, one backend per service, one server per peer
 * unit, each server at the peer's address on the service port minus 10.
 */
import { z } from 'zod';
import { CONDUCTOR_BASE_ARGS, CONDUCTOR_CONFIG_DIR_ARG } from './juju-view.js';

const Str = z.string().min(1);
const Loopback = z.string().regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/, 'must be a 127.0.0.0/8 address');
const UnitName = z.string().regex(/^[a-z][a-z0-9-]*\/\d+$/, 'must be a unit name such as keystone/0');

/** How a magnum unit's conductor is set up; the healthy default is the as-built fix of phase-07. */
const ConductorLayoutSchema = z
  .object({
    /** present: /etc/default/magnum-conductor holds the D-037 append; missing: no file; other: a file without it. */
    default_file: z.enum(['present', 'missing', 'other']).default('present'),
    /** Whether the LIVE process was started with --config-dir (false: started before the fix). */
    launched_config_dir: z.boolean().optional(),
    /** The tempting wrong fix: a systemd drop-in appending --config-dir to ExecStart. */
    systemd_dropin: z.boolean().default(false),
    running: z.boolean().default(true),
    /** usr-bin: /usr/local/bin/helm plus the /usr/bin/helm symlink; usr-local-only: no symlink (DOCFIX-035). */
    helm: z.enum(['usr-bin', 'usr-local-only', 'none']).default('usr-bin'),
  })
  .strict();

export const JujuScenarioSchema = z
  .object({
    controller: Str.default('sim-controller'),
    controller_address: z
      .string()
      .regex(/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d+$/, 'must be a loopback host:port')
      .default('127.0.0.1:17070'),
    model: Str.default('openstack'),
    version: Str.default('3.5.4'),
    user: Str.default('admin'),
    /** The jumphost's macaroon is stale: every API call asks for a password (juju-macaroon). */
    login_expired: z.boolean().default(false),
    machines: z.record(
      z.string().regex(/^\d+(\/lxd\/\d+)?$/, 'must be a machine id such as 0 or 0/lxd/3'),
      z.object({ hostname: Str, address: Loopback, instance_id: Str.optional() }).strict(),
    ),
    applications: z.record(
      z.string().regex(/^[a-z][a-z0-9-]*$/),
      z
        .object({
          charm: Str,
          channel: Str.default('2024.1/stable'),
          rev: z.number().int().default(1),
          version: z.string().default(''),
          subordinate_to: z.array(Str).default([]),
          /** Services fronted by haproxy on every unit: service name -> frontend port. */
          haproxy: z.record(z.string(), z.number().int()).default({}),
          /** The units run magnum-conductor (the magnum charm). */
          conductor: z.boolean().default(false),
          config: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
          units: z
            .record(UnitName, z.object({ machine: Str, leader: z.boolean().default(false) }).strict())
            .default({}),
        })
        .strict(),
    ),
    /** D-045: per unit, the haproxy servers its stale checks mark DOWN; a reload brings them back UP. */
    haproxy_down: z.record(UnitName, z.array(Str)).default({}),
    /** Per unit, haproxy servers that stay DOWN after a reload: the backend service itself is down. */
    haproxy_backend_down: z.record(UnitName, z.array(Str)).default({}),
    /** Per unit, the alert `haproxy -c` prints for a config that does not parse. */
    haproxy_invalid_config: z.record(UnitName, Str).default({}),
    /** Per magnum unit, how its conductor deviates from the healthy layout. */
    conductor: z.record(UnitName, ConductorLayoutSchema).default({}),
  })
  .strict();

export type JujuScenario = z.infer<typeof JujuScenarioSchema>;

const Ms = z.number();

export const HaproxyRowSchema = z.object({
  backend: z.string(),
  server: z.string(),
  addr: z.string(),
  status: z.enum(['UP', 'DOWN']),
  /** D-045: DOWN only because this haproxy process runs stale checks; a reload re-reads them. */
  healsOnReload: z.boolean(),
  lastChange: Ms,
});

export const JujuUnitSchema = z.object({
  name: z.string(),
  app: z.string(),
  machine: z.string(),
  address: z.string(),
  leader: z.boolean(),
  haproxy: z
    .object({
      configValid: z.boolean(),
      configAlert: z.string().nullable(),
      frontends: z.array(z.object({ service: z.string(), port: z.number().int() })),
      rows: z.array(HaproxyRowSchema),
      startedAt: Ms,
      reloads: z.number().int(),
      restarts: z.number().int(),
    })
    .nullable(),
  conductor: z
    .object({
      /** The arguments after /usr/bin/magnum-conductor of the live process; null when not running. */
      launchedArgs: z.string().nullable(),
      layout: z.object({
        defaultFile: z.enum(['present', 'missing', 'other']),
        systemdDropin: z.boolean(),
        helm: z.enum(['usr-bin', 'usr-local-only', 'none']),
      }),
    })
    .nullable(),
});

export const JujuStateSchema = z.object({
  controller: z.string(),
  controllerAddress: z.string(),
  model: z.string(),
  modelUuid: z.string(),
  version: z.string(),
  user: z.string(),
  loginExpired: z.boolean(),
  machines: z.array(
    z.object({ id: z.string(), hostname: z.string(), address: z.string(), instanceId: z.string() }),
  ),
  applications: z.array(
    z.object({
      name: z.string(),
      charm: z.string(),
      channel: z.string(),
      rev: z.number().int(),
      version: z.string(),
      subordinateTo: z.array(z.string()),
      config: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    }),
  ),
  units: z.array(JujuUnitSchema),
});

export type JujuState = z.infer<typeof JujuStateSchema>;
export type JujuUnit = z.infer<typeof JujuUnitSchema>;
export type HaproxyRow = z.infer<typeof HaproxyRowSchema>;

export class JujuScenarioError extends Error {
  override name = 'JujuScenarioError';
}

/** Expands the scenario's juju section; `startedAt` is when haproxy last (re)started on every unit. */
export function instantiateJuju(sc: JujuScenario, startedAt: number): JujuState {
  const machines = Object.entries(sc.machines).map(([id, m]) => ({
    id,
    hostname: m.hostname,
    address: m.address,
    instanceId:
      m.instance_id ?? (id.includes('/lxd/') ? `juju-ffe3b8-${id.replace(/\//g, '-')}` : m.hostname),
  }));
  const addressOf = (unit: string, machine: string): string => {
    const m = machines.find((x) => x.id === machine);
    if (m === undefined)
      throw new JujuScenarioError(`juju unit ${unit}: machine '${machine}' is not defined`);
    return m.address;
  };
  const mentioned = [
    ...Object.keys(sc.haproxy_down),
    ...Object.keys(sc.haproxy_backend_down),
    ...Object.keys(sc.haproxy_invalid_config),
    ...Object.keys(sc.conductor),
  ];
  const allUnits = Object.values(sc.applications).flatMap((a) => Object.keys(a.units));
  for (const u of mentioned) {
    if (!allUnits.includes(u)) throw new JujuScenarioError(`juju: unit '${u}' is not in any application`);
  }

  const units: JujuUnit[] = [];
  for (const [appName, app] of Object.entries(sc.applications)) {
    if (app.subordinate_to.length > 0 && Object.keys(app.units).length > 0) {
      throw new JujuScenarioError(`juju application ${appName} is a subordinate: it has no units of its own`);
    }
    const peers = Object.entries(app.units).map(([name, u]) => ({
      name,
      address: addressOf(name, u.machine),
    }));
    for (const [name, u] of Object.entries(app.units)) {
      const address = addressOf(name, u.machine);
      const frontends = Object.entries(app.haproxy).map(([service, port]) => ({ service, port }));
      const down = sc.haproxy_down[name] ?? [];
      const stuck = sc.haproxy_backend_down[name] ?? [];
      const rows: HaproxyRow[] = frontends.flatMap((f) =>
        peers.map((p) => {
          const server = p.name.replace('/', '-');
          const isDown = down.includes(server) || stuck.includes(server);
          return {
            backend: `${f.service}_${address}`,
            server,
            addr: `${p.address}:${f.port - 10}`,
            status: isDown ? ('DOWN' as const) : ('UP' as const),
            healsOnReload: !stuck.includes(server),
            lastChange: startedAt,
          };
        }),
      );
      for (const s of [...down, ...stuck]) {
        if (!rows.some((r) => r.server === s)) {
          throw new JujuScenarioError(`juju haproxy_down: ${name}'s haproxy has no server '${s}'`);
        }
      }
      const alert = sc.haproxy_invalid_config[name] ?? null;
      const layout = sc.conductor[name] ?? ConductorLayoutSchema.parse({});
      if (sc.conductor[name] !== undefined && !app.conductor) {
        throw new JujuScenarioError(`juju conductor: ${name} is not a unit of a conductor application`);
      }
      const launchedWithDir = layout.launched_config_dir ?? layout.default_file === 'present';
      units.push({
        name,
        app: appName,
        machine: u.machine,
        address,
        leader: u.leader,
        haproxy:
          frontends.length === 0
            ? null
            : {
                configValid: alert === null,
                configAlert: alert,
                frontends,
                rows,
                startedAt,
                reloads: 0,
                restarts: 0,
              },
        conductor: app.conductor
          ? {
              launchedArgs: layout.running
                ? `${CONDUCTOR_BASE_ARGS}${launchedWithDir ? ` ${CONDUCTOR_CONFIG_DIR_ARG}` : ''}`
                : null,
              layout: {
                defaultFile: layout.default_file,
                systemdDropin: layout.systemd_dropin,
                helm: layout.helm,
              },
            }
          : null,
      });
    }
  }
  return {
    controller: sc.controller,
    controllerAddress: sc.controller_address,
    model: sc.model,
    modelUuid: '5a1d0000-0000-4000-8000-00000000c0de',
    version: sc.version,
    user: sc.user,
    loginExpired: sc.login_expired,
    machines,
    applications: Object.entries(sc.applications).map(([name, a]) => ({
      name,
      charm: a.charm,
      channel: a.channel,
      rev: a.rev,
      version: a.version,
      subordinateTo: a.subordinate_to,
      config: a.config,
    })),
    units,
  };
}
