/**
 * The stand-ins on a juju unit's PATH: `socat` to haproxy's admin socket, `haproxy -c`, `systemctl`
 * and `ps`, answering in the real tools' words from the unit's state. A reload or restart changes
 * that state and is journalled like every mutating command, so tests can tell which unit was acted
 * on, how, and how often.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type CliResult, Recorder } from './cli.js';
import type { JujuUnit } from './juju-model.js';
import { showStat } from './juju-view.js';
import type { CloudState } from './schema.js';
import { readState, withState } from './store.js';
import {
  CONDUCTOR_UNIT_FILES,
  outOfUnit,
  UNIT_NAME_ENV,
  UNIT_ROOT_ENV,
  UNIT_SUDO_ENV,
  type UnitTool,
  unitEnv,
  unitPath,
} from './units.js';

export interface UnitToolOptions {
  readonly dir: string;
  readonly tool: UnitTool;
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly stdin: string;
}

const ok = (stdout: string): CliResult => ({ code: 0, stdout, stderr: '' });
const err = (code: number, stderr: string, stdout = ''): CliResult => ({ code, stdout, stderr });

function unitOf(state: CloudState, name: string): JujuUnit {
  const unit = state.juju.units.find((u) => u.name === name);
  if (unit === undefined) throw new Error(`capi-sim: no juju unit ${name} in the state`);
  return unit;
}

export function runUnitTool(opts: UnitToolOptions): CliResult {
  const name = opts.env[UNIT_NAME_ENV] ?? '';
  const root = opts.env[UNIT_ROOT_ENV] ?? '';
  if (name === '' || root === '') return err(1, `capi-sim ${opts.tool}: not running on a simulated unit\n`);
  const ctx: ToolCtx = { ...opts, unitName: name, root, asRoot: opts.env[UNIT_SUDO_ENV] === '1' };
  switch (opts.tool) {
    case 'socat':
      return socat(ctx);
    case 'haproxy':
      return haproxy(ctx);
    case 'systemctl':
      return systemctl(ctx);
    case 'ps':
      return ps(ctx);
  }
}

interface ToolCtx extends UnitToolOptions {
  readonly unitName: string;
  readonly root: string;
  readonly asRoot: boolean;
}

function socatTime(): string {
  const d = new Date();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getUTCFullYear()}/${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

/** `socat stdio /var/run/haproxy/admin.sock` (or `- UNIX-CONNECT:...`): haproxy's CLI over its socket. */
function socat(c: ToolCtx): CliResult {
  const addresses = c.argv.filter((a) => !a.startsWith('-') || a === '-');
  if (addresses.length !== 2) {
    return err(
      1,
      `${socatTime()} socat[${process.pid}] E exactly 2 addresses required (there are ${addresses.length}); use option "-h" for help\n`,
    );
  }
  const [a = '', b = ''] = addresses;
  const isStdio = (x: string) => x === '-' || x.toLowerCase() === 'stdio' || x.toLowerCase() === 'stdin';
  const socketArg = isStdio(a) ? b : a;
  const sock = unitPath(c.root, socketArg.replace(/^(unix-connect|unix-client|unix):/i, ''));
  const unit = unitOf(readState(c.dir), c.unitName);
  const shown = `"${sock}"`;
  const connectErr = (why: string) =>
    err(1, `${socatTime()} socat[${process.pid}] E connect(5, AF=1 ${shown}, ${sock.length + 3}): ${why}\n`);
  if (sock !== '/var/run/haproxy/admin.sock' && sock !== '/run/haproxy/admin.sock') {
    return connectErr('No such file or directory');
  }
  if (unit.haproxy === null) return connectErr('No such file or directory');
  // The charm renders `stats socket ... mode 600 level admin`: root only.
  if (!c.asRoot) return connectErr('Permission denied');
  const command = c.stdin.trim();
  if (command === 'show stat') return ok(showStat(unit, Date.now()));
  if (command === 'show info') {
    return ok(
      `Name: HAProxy\nVersion: 2.4.24-0ubuntu0.22.04.1\nPid: 1\nUptime_sec: ${Math.round((Date.now() - unit.haproxy.startedAt) / 1000)}\n\n`,
    );
  }
  return ok(
    'Unknown command. Please enter one of the following commands only :\n  help           : this message\n  show info      : report information about the running process\n  show stat      : report counters for each proxy and server\n\n',
  );
}

/** `haproxy -c -f /etc/haproxy/haproxy.cfg`: parses the config without touching the running one. */
function haproxy(c: ToolCtx): CliResult {
  const f = c.argv.indexOf('-f');
  const file = f >= 0 ? c.argv[f + 1] : undefined;
  if (!c.argv.includes('-c') || file === undefined) {
    return err(1, 'capi-sim haproxy: only `haproxy -c -f <file>` (check the configuration) is simulated\n');
  }
  const shownFile = unitPath(c.root, file);
  const notice = `[NOTICE]   (${process.pid}) : haproxy version is 2.4.24-0ubuntu0.22.04.1\n[NOTICE]   (${process.pid}) : path to executable is /usr/sbin/haproxy\n`;
  if (!fs.existsSync(file)) {
    return err(
      1,
      `${notice}[ALERT]    (${process.pid}) : Could not open configuration file ${shownFile} : No such file or directory\n`,
    );
  }
  const unit = unitOf(readState(c.dir), c.unitName);
  if (unit.haproxy === null || unit.haproxy.configValid || shownFile !== '/etc/haproxy/haproxy.cfg') {
    return ok('Configuration file is valid\n');
  }
  return err(
    1,
    `${notice}[ALERT]    (${process.pid}) : ${unit.haproxy.configAlert}\n[ALERT]    (${process.pid}) : Fatal errors found in configuration.\n`,
  );
}

const SERVICES = ['haproxy', 'magnum-conductor'] as const;
type Service = (typeof SERVICES)[number];

function serviceName(arg: string | undefined): Service | string {
  return (arg ?? '').replace(/\.service$/, '');
}

function systemctl(c: ToolCtx): CliResult {
  const args = c.argv.filter((a) => !a.startsWith('-'));
  const [verb, unitArg] = args;
  const svc = serviceName(unitArg);
  if (verb === undefined)
    return err(1, 'capi-sim systemctl: a verb is needed (is-active, reload, restart, cat)\n');
  const state = readState(c.dir);
  const unit = unitOf(state, c.unitName);
  const exists =
    (svc === 'haproxy' && unit.haproxy !== null) || (svc === 'magnum-conductor' && unit.conductor !== null);
  if (!exists) {
    if (verb === 'is-active') return err(4, 'inactive\n');
    return err(5, `Failed to ${verb} ${svc}.service: Unit ${svc}.service not found.\n`);
  }
  if (verb === 'is-active') {
    const active = svc === 'haproxy' || unit.conductor?.launchedArgs !== null;
    return active ? ok('active\n') : err(3, 'inactive\n');
  }
  if (verb === 'cat') return systemctlCat(c, svc as Service);
  if (verb === 'reload' || verb === 'restart' || verb === 'start' || verb === 'stop') {
    const rec = new Recorder(c.dir, 'juju', ['juju', 'ssh', c.unitName, 'systemctl', ...c.argv], {
      projectId: null,
    });
    const action = `${svc}.${verb}`;
    if (!c.asRoot) {
      const message = `Failed to ${verb} ${svc}.service: Interactive authentication required.\nSee system logs and 'systemctl status ${svc}.service' for details.\n`;
      rec.journal(action, c.unitName, false, message);
      return err(1, message);
    }
    return svc === 'haproxy' ? haproxyControl(c, rec, verb) : conductorControl(c, rec, verb);
  }
  return err(
    1,
    `capi-sim systemctl: '${verb}' is not simulated (is-active, reload, restart, start, stop, cat)\n`,
  );
}

function haproxyControl(c: ToolCtx, rec: Recorder, verb: string): CliResult {
  const action = `haproxy.${verb}`;
  return withState(c.dir, (state): CliResult => {
    const unit = unitOf(state, c.unitName);
    const h = unit.haproxy;
    if (h === null) return err(5, 'Unit haproxy.service not found.\n');
    if (verb === 'stop' || verb === 'start') {
      rec.journal(action, c.unitName, false, 'not simulated');
      return err(1, `capi-sim systemctl: ${verb} haproxy is not simulated: reload it\n`);
    }
    if (!h.configValid) {
      // ExecReload runs `haproxy -c` first; a broken file leaves the old workers (and checks) in place.
      rec.violation(
        'reloaded-invalid-config',
        c.unitName,
        `systemctl ${verb} haproxy with a config haproxy -c rejects`,
      );
      const message = `Job for haproxy.service failed because the control process exited with error code.\nSee "systemctl status haproxy.service" and "journalctl -xeu haproxy.service" for details.\n`;
      rec.journal(action, c.unitName, false, message);
      return err(1, message);
    }
    if (verb === 'restart') {
      rec.violation(
        'restarted-haproxy',
        c.unitName,
        'D-045: reload haproxy (graceful master-worker), never restart it',
      );
    }
    if (!h.rows.some((r) => r.status === 'DOWN')) {
      rec.violation(
        'reloaded-without-down-backend',
        c.unitName,
        `${verb} of a haproxy that reports no DOWN backend`,
      );
    }
    const now = Date.now();
    for (const r of h.rows) {
      if (r.status === 'DOWN' && r.healsOnReload) {
        r.status = 'UP';
        r.lastChange = now;
      }
    }
    h.startedAt = now;
    if (verb === 'reload') h.reloads += 1;
    else h.restarts += 1;
    rec.journal(action, c.unitName, true);
    return ok('');
  });
}

/** A (re)start runs the init script's assembly: what the new process gets is what show-args says. */
function conductorControl(c: ToolCtx, rec: Recorder, verb: string): CliResult {
  const action = `magnum-conductor.${verb}`;
  let launched: string | null = null;
  if (verb !== 'stop') {
    const shown = execFileSync(path.join(c.root, CONDUCTOR_UNIT_FILES.init), ['show-args'], {
      env: unitEnv(c.dir, unitOf(readState(c.dir), c.unitName)),
      encoding: 'utf8',
    });
    launched = outOfUnit(c.root, shown)
      .trim()
      .replace(/^\S+\s*/, '');
  }
  if (verb === 'reload')
    return err(
      1,
      'Failed to reload magnum-conductor.service: Job type reload is not applicable for unit magnum-conductor.service.\n',
    );
  return withState(c.dir, (state): CliResult => {
    const unit = unitOf(state, c.unitName);
    if (unit.conductor === null) return err(5, 'Unit magnum-conductor.service not found.\n');
    if (verb === 'start' && unit.conductor.launchedArgs !== null) return ok('');
    unit.conductor.launchedArgs = launched;
    rec.journal(action, c.unitName, true);
    return ok('');
  });
}

function systemctlCat(c: ToolCtx, svc: Service): CliResult {
  if (svc === 'haproxy') {
    return ok(
      '# /lib/systemd/system/haproxy.service\n[Unit]\nDescription=HAProxy Load Balancer\n\n[Service]\nEnvironmentFile=-/etc/default/haproxy\nEnvironment="CONFIG=/etc/haproxy/haproxy.cfg" "PIDFILE=/run/haproxy.pid"\nExecStartPre=/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS\nExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS\nExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS\nExecReload=/bin/kill -USR2 $MAINPID\nType=notify\n',
    );
  }
  const parts: string[] = [];
  for (const file of [CONDUCTOR_UNIT_FILES.unit, CONDUCTOR_UNIT_FILES.dropin]) {
    const p = path.join(c.root, file);
    if (fs.existsSync(p)) parts.push(`# ${file}\n${outOfUnit(c.root, fs.readFileSync(p, 'utf8'))}`);
  }
  return ok(parts.join('\n'));
}

/** `ps -ww -C NAME -o args` (also `-o args=`, `-o pid,args`): the live processes' command lines. */
function ps(c: ToolCtx): CliResult {
  const cIdx = c.argv.indexOf('-C');
  const oIdx = c.argv.indexOf('-o');
  const name = cIdx >= 0 ? c.argv[cIdx + 1] : undefined;
  const format = oIdx >= 0 ? c.argv[oIdx + 1] : undefined;
  if (name === undefined || format === undefined || !/^(pid,)?args=?$/.test(format)) {
    return err(1, 'capi-sim ps: only `ps -ww -C NAME -o args` (or -o pid,args / args=) is simulated\n');
  }
  const unit = unitOf(readState(c.dir), c.unitName);
  const procs: string[] = [];
  // procps matches -C against the 15-character kernel comm, as `magnum-conducto` is for the script.
  const matches = (comm: string) => comm.slice(0, 15) === name.slice(0, 15);
  if (matches('magnum-conductor') && unit.conductor?.launchedArgs != null) {
    const line = `/usr/bin/python3 /usr/bin/magnum-conductor ${unit.conductor.launchedArgs}`;
    procs.push(line, line, line);
  }
  if (matches('haproxy') && unit.haproxy !== null) {
    const line =
      '/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid -S /run/haproxy-master.sock';
    procs.push(line, line);
  }
  const withPid = format.startsWith('pid,');
  const header = format.endsWith('=') ? [] : [withPid ? '    PID COMMAND' : 'COMMAND'];
  const rows = procs.map((p, i) => (withPid ? `${String(2101 + i).padStart(7)} ${p}` : p));
  const text = [...header, ...rows].map((l) => `${l}\n`).join('');
  return procs.length === 0 ? err(1, '', text) : ok(text);
}
