/**
 * The `juju` stand-in (juju 3.x client) for the jumphost: `status` (json, yaml, tabular), `ssh` to a
 * unit, `config`, `whoami`, `version`. Like the real client it reads stdin for a password when the
 * controller's macaroon is stale; with stdin closed (DOCFIX-021) that prompt gets EOF and juju says
 * "cannot get discharge from ...: EOF" (appendix A juju-macaroon).
 */

import type { JujuState, JujuUnit } from './juju-model.js';
import { yaml } from './lazy.js';
import { clockOf } from './model.js';
import type { CloudState } from './schema.js';
import { appendViolation, readState } from './store.js';
import { siteIso } from './time.js';
import { runOnUnit } from './units.js';

/** How long an open stdin may stay silent before we call it a DOCFIX-021 hang. */
const STDIN_GRACE_MS = 1500;

export interface JujuIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export interface JujuOptions {
  readonly dir: string;
  readonly argv: readonly string[];
  readonly io: JujuIo;
}

class JujuExit extends Error {
  constructor(
    readonly code: number,
    readonly stderr: string,
  ) {
    super(stderr);
  }
}

const fail = (message: string, code = 1): never => {
  throw new JujuExit(code, message.endsWith('\n') ? message : `${message}\n`);
};

function readAll(dir: string, argv: readonly string[], stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      appendViolation(dir, {
        ts: new Date().toISOString(),
        rule: 'stdin-not-closed',
        tool: 'juju',
        argv: ['juju', ...argv],
        target: argv.find((a) => a.includes('/')) ?? 'juju',
        detail: `juju left waiting on an open stdin for ${STDIN_GRACE_MS} ms (DOCFIX-021: juju ssh ... </dev/null)`,
      });
    }, STDIN_GRACE_MS);
    stream.on('data', (c: Buffer | string) => chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c)));
    stream.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    stream.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Options every juju command takes; value options listed so their values are not taken as words. */
const VALUE_OPTS = new Set(['-m', '--model', '--format', '-o', '--output', '--retry-count', '--retry-delay']);

interface Parsed {
  readonly words: string[];
  readonly opts: Map<string, string>;
  readonly flags: Set<string>;
  /** Everything after the target of `juju ssh`, verbatim. */
  readonly rest: string[];
}

function parse(argv: readonly string[], stopAfterWords: number): Parsed {
  const words: string[] = [];
  const opts = new Map<string, string>();
  const flags = new Set<string>();
  let i = 0;
  while (i < argv.length && words.length < stopAfterWords) {
    const tok = argv[i] ?? '';
    if (tok === '--') {
      i += 1;
      break;
    }
    if (tok.startsWith('-') && tok !== '-') {
      const eq = tok.indexOf('=');
      const name = eq > 0 ? tok.slice(0, eq) : tok;
      if (VALUE_OPTS.has(name)) {
        const v = eq > 0 ? tok.slice(eq + 1) : argv[i + 1];
        if (v === undefined) fail(`ERROR option needs an argument: ${name}`, 2);
        opts.set(name === '--model' ? '-m' : name, v as string);
        i += eq > 0 ? 1 : 2;
        continue;
      }
      flags.add(eq > 0 ? `${name}=${tok.slice(eq + 1)}` : tok);
      i += 1;
      continue;
    }
    words.push(tok);
    i += 1;
  }
  return { words, opts, flags, rest: argv.slice(i).map(String) };
}

function checkModel(juju: JujuState, model: string | undefined): void {
  if (model === undefined) return;
  const [controller, name] = model.includes(':') ? model.split(':', 2) : [juju.controller, model];
  const bare = (name ?? '').replace(/^[^/]+\//, '');
  if (controller !== juju.controller || bare !== juju.model) {
    fail(`ERROR model ${controller}:${juju.user}/${bare} not found`);
  }
}

/** The stale-macaroon path: juju asks for a password on stdin; closed stdin answers EOF. */
async function login(opts: JujuOptions, juju: JujuState): Promise<void> {
  if (!juju.loginExpired) return;
  opts.io.stderr.write(`please enter password for ${juju.user} on ${juju.controller}: `);
  const typed = (await readAll(opts.dir, opts.argv, opts.io.stdin)).toString('utf8');
  const url = `https://${juju.controllerAddress}/auth`;
  if (typed.trim() === '') fail(`\nERROR cannot get discharge from "${url}": EOF`);
  fail(`\nERROR cannot get discharge from "${url}": invalid entity name or password (unauthorized access)`);
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** juju's status timestamps: "12 Jun 2026 10:31:43Z". */
function since(state: CloudState, ms: number): string {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}:\d{2}:\d{2})Z$/.exec(siteIso(clockOf(state), ms));
  if (m === null) return siteIso(clockOf(state), ms);
  return `${m[3]} ${MONTHS[Number(m[2]) - 1]} ${m[1]} ${m[4]}Z`;
}

function statusDoc(state: CloudState, selectors: readonly string[]): Record<string, unknown> {
  const j = state.juju;
  const t = since(state, state.startedAt);
  const picked = (app: string, unit?: string) =>
    selectors.length === 0 ||
    selectors.some((s) => s === app || s === unit || (s.endsWith('*') && app.startsWith(s.slice(0, -1))));
  const base = { name: 'ubuntu', channel: '22.04' };
  const agent = { current: 'idle', since: t, version: j.version };
  const unitDoc = (u: JujuUnit) => {
    const subs = j.applications.filter((a) => a.subordinateTo.includes(u.app));
    return {
      'workload-status': { current: 'active', message: 'Unit is ready', since: t },
      'juju-status': agent,
      ...(u.leader ? { leader: true } : {}),
      machine: u.machine,
      'open-ports': u.haproxy?.frontends.map((f) => `${f.port}/tcp`) ?? [],
      'public-address': u.address,
      ...(subs.length > 0
        ? {
            subordinates: Object.fromEntries(
              subs.map((s) => {
                const n = j.units.filter((x) => x.app === u.app).indexOf(u);
                return [
                  `${s.name}/${n}`,
                  {
                    'workload-status': {
                      current: 'active',
                      message: 'Unit is ready and clustered',
                      since: t,
                    },
                    'juju-status': agent,
                    'public-address': u.address,
                  },
                ];
              }),
            ),
          }
        : {}),
    };
  };
  const applications: Record<string, unknown> = {};
  for (const a of j.applications) {
    const units = j.units.filter((u) => u.app === a.name);
    if (!picked(a.name, undefined) && !units.some((u) => picked(a.name, u.name))) continue;
    applications[a.name] = {
      charm: a.charm,
      base,
      'charm-origin': 'charmhub',
      'charm-name': a.charm,
      'charm-rev': a.rev,
      'charm-channel': a.channel,
      exposed: false,
      'application-status': {
        current: 'active',
        message: a.subordinateTo.length > 0 ? 'Unit is ready and clustered' : 'Unit is ready',
        since: t,
      },
      relations: {},
      ...(a.subordinateTo.length > 0 ? { 'subordinate-to': a.subordinateTo } : {}),
      ...(a.subordinateTo.length > 0
        ? {}
        : {
            units: Object.fromEntries(
              units.filter((u) => picked(a.name, u.name)).map((u) => [u.name, unitDoc(u)]),
            ),
          }),
      ...(a.version !== '' ? { version: a.version } : {}),
      'endpoint-bindings': { '': 'alpha' },
    };
  }
  const machineDoc = (m: JujuState['machines'][number]) => ({
    'juju-status': { current: 'started', since: t, version: j.version },
    hostname: m.hostname,
    'dns-name': m.address,
    'ip-addresses': [m.address],
    'instance-id': m.instanceId,
    'machine-status': {
      current: 'running',
      message: m.id.includes('/lxd/') ? 'Container started' : 'Deployed',
      since: t,
    },
    'modification-status': { current: 'applied', since: t },
    base,
  });
  const machines: Record<string, unknown> = {};
  for (const m of j.machines.filter((x) => !x.id.includes('/lxd/'))) {
    const containers = j.machines.filter((x) => x.id.startsWith(`${m.id}/lxd/`));
    machines[m.id] = {
      ...machineDoc(m),
      ...(containers.length > 0
        ? { containers: Object.fromEntries(containers.map((c) => [c.id, machineDoc(c)])) }
        : {}),
    };
  }
  return {
    model: {
      name: j.model,
      type: 'iaas',
      controller: j.controller,
      cloud: 'maas',
      region: 'default',
      version: j.version,
      'model-status': { current: 'available', since: t },
      sla: 'unsupported',
    },
    machines,
    applications,
    storage: {},
    controller: { timestamp: since(state, Date.now()).split(' ').at(-1) ?? '' },
  };
}

function statusTabular(state: CloudState, doc: Record<string, unknown>): string {
  const j = state.juju;
  const pad = (cols: string[][]) => {
    const widths = cols[0]?.map((_c, i) => Math.max(...cols.map((r) => (r[i] ?? '').length))) ?? [];
    return cols
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      .join('\n');
  };
  const apps = Object.entries(
    doc.applications as Record<
      string,
      {
        charm: string;
        'charm-channel': string;
        'charm-rev': number;
        version?: string;
        units?: Record<string, unknown>;
      }
    >,
  );
  const out = [
    pad([
      ['Model', 'Controller', 'Cloud/Region', 'Version', 'SLA', 'Timestamp'],
      [
        j.model,
        j.controller,
        'maas/default',
        j.version,
        'unsupported',
        (doc.controller as { timestamp: string }).timestamp,
      ],
    ]),
    '',
    pad([
      ['App', 'Version', 'Status', 'Scale', 'Charm', 'Channel', 'Rev', 'Exposed', 'Message'],
      ...apps.map(([name, a]) => {
        const principal = j.applications.find((x) => x.name === name)?.subordinateTo ?? [];
        const scale = a.units
          ? Object.keys(a.units).length
          : j.units.filter((u) => principal.includes(u.app)).length;
        return [
          name,
          a.version ?? '',
          'active',
          String(scale),
          a.charm,
          a['charm-channel'],
          String(a['charm-rev']),
          'no',
          'Unit is ready',
        ];
      }),
    ]),
    '',
    pad([
      ['Unit', 'Workload', 'Agent', 'Machine', 'Public address', 'Ports', 'Message'],
      ...j.units
        .filter((u) => apps.some(([n]) => n === u.app))
        .map((u) => [
          `${u.name}${u.leader ? '*' : ''}`,
          'active',
          'idle',
          u.machine,
          u.address,
          u.haproxy?.frontends.map((f) => `${f.port}/tcp`).join(',') ?? '',
          'Unit is ready',
        ]),
    ]),
  ];
  return `${out.join('\n')}\n`;
}

async function status(opts: JujuOptions, p: Parsed): Promise<number> {
  const state = readState(opts.dir);
  checkModel(state.juju, p.opts.get('-m'));
  await login(opts, state.juju);
  const doc = statusDoc(state, [...p.words.slice(1), ...p.rest]);
  const format = p.opts.get('--format') ?? 'tabular';
  if (format === 'json') opts.io.stdout.write(`${JSON.stringify(doc)}\n`);
  else if (format === 'yaml') opts.io.stdout.write(yaml().stringify(doc));
  else if (format === 'tabular') opts.io.stdout.write(statusTabular(state, doc));
  else fail(`ERROR invalid value "${format}" for option --format: unknown format "${format}"`, 2);
  return 0;
}

async function ssh(opts: JujuOptions, p: Parsed): Promise<number> {
  const state = readState(opts.dir);
  checkModel(state.juju, p.opts.get('-m'));
  const target = p.words[1];
  if (target === undefined) fail('ERROR no target name specified', 2);
  await login(opts, state.juju);
  const t = target as string;
  const leader = /^([a-z][a-z0-9-]*)\/leader$/.exec(t);
  const unit = leader
    ? state.juju.units.find((u) => u.app === leader[1] && u.leader)
    : state.juju.units.find((u) => u.name === t);
  if (unit === undefined) {
    if (/^\d+(\/lxd\/\d+)?$/.test(t))
      fail(`ERROR capi-sim: juju ssh to machine ${t} is not simulated; name a unit`);
    fail(`ERROR unit "${t}" not found`);
  }
  const command = p.rest.join(' ');
  if (command === '')
    fail('ERROR capi-sim: an interactive juju ssh session is not simulated; give a command');
  // Like the real client, juju ssh forwards stdin to the remote command until EOF.
  const input = await readAll(opts.dir, opts.argv, opts.io.stdin);
  return await runOnUnit(opts.dir, unit as JujuUnit, command, {
    input,
    stdout: opts.io.stdout,
    stderr: opts.io.stderr,
  });
}

async function config(opts: JujuOptions, p: Parsed): Promise<number> {
  const state = readState(opts.dir);
  checkModel(state.juju, p.opts.get('-m'));
  const [, appName, key] = p.words;
  if (appName === undefined) fail('ERROR no application name specified', 2);
  await login(opts, state.juju);
  const app = state.juju.applications.find((a) => a.name === appName);
  if (app === undefined) fail(`ERROR application "${appName}" not found (not found)`);
  const cfg = (app as JujuState['applications'][number]).config;
  if (key !== undefined) {
    if (key.includes('=')) fail('ERROR capi-sim: changing charm config is not simulated');
    if (!(key in cfg))
      fail(`ERROR key "${key}" not found in "${appName}" application config or charm settings.`);
    opts.io.stdout.write(`${String(cfg[key])}\n`);
    return 0;
  }
  const settings = Object.fromEntries(
    Object.entries(cfg).map(([k, v]) => [
      k,
      {
        description: k,
        source: 'user',
        type: typeof v === 'number' ? 'int' : typeof v === 'boolean' ? 'boolean' : 'string',
        value: v,
      },
    ]),
  );
  opts.io.stdout.write(yaml().stringify({ application: appName, charm: app?.charm, settings }));
  return 0;
}

export async function runJuju(opts: JujuOptions): Promise<number> {
  try {
    const sub = opts.argv.find((a) => !a.startsWith('-'));
    // juju ssh stops parsing at its target: the remote command keeps its own options.
    const p = parse(opts.argv, sub === 'ssh' ? 2 : Number.POSITIVE_INFINITY);
    const state = readState(opts.dir);
    switch (p.words[0]) {
      case 'status':
        return await status(opts, p);
      case 'ssh':
        return await ssh(opts, p);
      case 'config':
        return await config(opts, p);
      case 'whoami':
        opts.io.stdout.write(
          `Controller:  ${state.juju.controller}\nModel:       ${state.juju.user}/${state.juju.model}\nUser:        ${state.juju.user}\n`,
        );
        return 0;
      case 'version':
        opts.io.stdout.write(`${state.juju.version}-ubuntu-amd64\n`);
        return 0;
      case undefined:
        opts.io.stdout.write(
          'Usage: juju [flags] <command> ...\n\nCommands (capi-sim): status, ssh, config, whoami, version\n',
        );
        return 0;
      default:
        return fail(
          `ERROR juju: "${p.words[0]}" is not a juju command (capi-sim simulates status, ssh, config, whoami, version)`,
        );
    }
  } catch (err) {
    if (err instanceof JujuExit) {
      opts.io.stderr.write(err.stderr);
      return err.code;
    }
    throw err;
  }
}
