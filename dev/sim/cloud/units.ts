/**
 * The juju units' side of `juju ssh`: each unit has a root directory under CAPI_SIM_DIR/units/ in
 * which its files live (/etc/haproxy/haproxy.cfg, /etc/default/magnum-conductor, /usr/local/bin/helm,
 * ...). A remote command runs under the real bash with the unit's PATH, which holds only symlinks to
 * a fixed set of real tools and the stand-ins (sudo, socat, haproxy, systemctl, ps).
 *
 * Every absolute path under the unit's top-level directories is written into the command, and into
 * the unit's data files, with the root in front; the root is taken out again from everything the
 * unit prints. Inside, `grep -c "--config-dir /etc/magnum/magnum.conf.d" /etc/default/...` and
 * `env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c 'command -v helm'` therefore behave as on the unit,
 * and nothing a unit command touches is the real host's /etc or /usr.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { JujuState, JujuUnit } from './juju-model.js';
import { haproxyConfig } from './juju-view.js';

const TOP_DIRS = 'etc|var|run|usr|opt|srv|lib|sbin|bin|home|root|snap';
const ABSOLUTE_PATH = new RegExp(`(^|[\\s'"=:(<>|;&\`,])/(${TOP_DIRS})(?=/|$|[\\s'"):;|&\`,])`, 'gm');

/** Real tools a unit's PATH offers (coreutils, grep, sed, a shell); anything else is "command not found". */
const REAL_TOOLS = [
  'bash',
  'sh',
  'cat',
  'grep',
  'head',
  'tail',
  'sed',
  'awk',
  'cut',
  'wc',
  'env',
  'ls',
  'tr',
  'sort',
  'uniq',
  'readlink',
  'stat',
  'printf',
  'echo',
  'true',
  'false',
  'test',
  'timeout',
  'xargs',
  'id',
  'tee',
  'sleep',
  'date',
  'dirname',
  'basename',
  'mkdir',
  'cp',
  'mv',
  'rm',
  'chmod',
  'touch',
  'find',
  'diff',
  'base64',
  'sha256sum',
];
/** Stand-ins in /usr/bin, run by bin/unit-tool.js; haproxy lives in /usr/sbin on haproxy units only. */
export const UNIT_TOOLS = ['socat', 'systemctl', 'ps', 'haproxy'] as const;
export type UnitTool = (typeof UNIT_TOOLS)[number];

export const UNIT_ROOT_ENV = 'CAPI_SIM_UNIT_ROOT';
export const UNIT_NAME_ENV = 'CAPI_SIM_UNIT';
/** Set by the unit's sudo: the stand-ins answer as root (the admin socket is mode 600). */
export const UNIT_SUDO_ENV = 'CAPI_SIM_UNIT_SUDO';

/** The unit's login PATH (pam_env's /etc/environment), /usr/local/bin included (DOCFIX-035). */
const LOGIN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin';

export function unitRoot(dir: string, unit: string): string {
  return path.join(dir, 'units', unit.replace('/', '-'));
}

/** Puts the unit's root in front of every absolute path under its top-level directories. */
export function intoUnit(root: string, text: string): string {
  return text.replace(ABSOLUTE_PATH, (_m, before: string, top: string) => `${before}${root}/${top}`);
}

/** What the unit prints, as it would print it: its root taken out. */
export function outOfUnit(root: string, text: string): string {
  return text.split(root).join('');
}

/** A unit path as the unit knows it ("/etc/haproxy/haproxy.cfg"), from one the stand-ins receive. */
export function unitPath(root: string, p: string): string {
  return p.startsWith(`${root}/`) ? p.slice(root.length) : p;
}

function realTool(name: string): string | null {
  for (const dir of ['/usr/bin', '/bin']) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

function write(root: string, file: string, text: string, mode = 0o644): void {
  const p = path.join(root, file);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, intoUnit(root, text), { mode });
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface UnitBins {
  /** Absolute paths of the node binary and of dist/.../bin/unit-tool.js. */
  readonly node: string;
  readonly unitTool: string;
}

/** Passwordless sudo for the ubuntu user juju ssh logs in as; a shell script, so it costs nothing. */
const SUDO = `#!/bin/sh
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -u|-g|-C|-D|-h|-p|-r|-t|-U|-T) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "usage: sudo [-AbEHknPS] [-u user] command [arg ...]" >&2
  exit 1
fi
if ! command -v "$1" >/dev/null 2>&1; then
  echo "sudo: $1: command not found" >&2
  exit 1
fi
export ${UNIT_SUDO_ENV}=1 USER=root LOGNAME=root
exec "$@"
`;

function wrapper(dir: string, unit: JujuUnit, root: string, bins: UnitBins, args: string): string {
  return [
    '#!/bin/sh',
    `export CAPI_SIM_DIR=${shQuote(dir)}`,
    `export ${UNIT_NAME_ENV}=${shQuote(unit.name)}`,
    `export ${UNIT_ROOT_ENV}=${shQuote(root)}`,
    `exec ${shQuote(bins.node)} ${args} "$@"`,
    '',
  ].join('\n');
}

/** Creates every unit's root from the state at sim start; the layout then evolves through commands. */
export function materializeUnits(dir: string, state: JujuState, bins: UnitBins): void {
  for (const unit of state.units) {
    const root = unitRoot(dir, unit.name);
    for (const d of [
      'usr/bin',
      'usr/sbin',
      'usr/local/bin',
      'usr/local/sbin',
      'run',
      'etc/default',
      'home/ubuntu',
      'tmp',
    ]) {
      fs.mkdirSync(path.join(root, d), { recursive: true });
    }
    // usrmerge, as on Ubuntu: /bin and /sbin are symlinks, /var/run points at /run.
    fs.symlinkSync(path.join(root, 'usr/bin'), path.join(root, 'bin'));
    fs.symlinkSync(path.join(root, 'usr/sbin'), path.join(root, 'sbin'));
    fs.mkdirSync(path.join(root, 'var'), { recursive: true });
    fs.symlinkSync(path.join(root, 'run'), path.join(root, 'var/run'));
    for (const name of REAL_TOOLS) {
      const real = realTool(name);
      if (real !== null) fs.symlinkSync(real, path.join(root, 'usr/bin', name));
    }
    const tool = (t: UnitTool) => wrapper(dir, unit, root, bins, `${shQuote(bins.unitTool)} ${t}`);
    for (const t of ['socat', 'systemctl', 'ps'] as const) {
      fs.writeFileSync(path.join(root, 'usr/bin', t), tool(t), { mode: 0o755 });
    }
    fs.writeFileSync(path.join(root, 'usr/bin/sudo'), SUDO, { mode: 0o755 });

    if (unit.haproxy !== null) {
      fs.writeFileSync(path.join(root, 'usr/sbin/haproxy'), tool('haproxy'), { mode: 0o755 });
      write(root, '/etc/haproxy/haproxy.cfg', haproxyConfig(unit));
      write(root, '/run/haproxy/admin.sock', '', 0o600);
    }
    if (unit.conductor !== null) writeConductor(root, unit.conductor.layout);
  }
}

const INIT_SCRIPT = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          magnum-conductor
# Required-Start:    $network $local_fs $remote_fs $syslog
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: OpenStack Magnum Conductor
### END INIT INFO
# Generated by openstack-pkg-tools (capi-sim keeps the DAEMON_ARGS assembly and show-args).
DESC="OpenStack Magnum Conductor"
PROJECT_NAME=magnum
NAME=\${PROJECT_NAME}-conductor
DAEMON=/usr/bin/magnum-conductor
CONFIG_FILE=/etc/\${PROJECT_NAME}/\${PROJECT_NAME}.conf
LOGFILE=/var/log/\${PROJECT_NAME}/\${NAME}.log

if [ -z "\${DAEMON_ARGS}" ] ; then
	DAEMON_ARGS="--config-file=\${CONFIG_FILE} --log-file=\${LOGFILE}"
fi
if [ -r /etc/default/openstack ] ; then
	. /etc/default/openstack
fi
if [ -r /etc/default/\${NAME} ] ; then
	. /etc/default/\${NAME}
fi

case "$1" in
show-args)
	echo \${DAEMON} \${DAEMON_ARGS}
;;
start|stop|restart|force-reload|status|systemd-start|systemd-stop)
	echo "capi-sim: run systemctl $1 \${NAME} instead" >&2
	exit 3
;;
*)
	echo "Usage: $0 {start|stop|status|restart|force-reload|systemd-start|show-args}" >&2
	exit 3
;;
esac
exit 0
`;

const CONDUCTOR_UNIT = `[Unit]
Description=OpenStack Magnum Conductor
After=network-online.target
After=local-fs.target remote-fs.target

[Service]
User=magnum
Group=magnum
Type=simple
WorkingDirectory=~
RuntimeDirectory=magnum
CacheDirectory=magnum
ExecStart=/etc/init.d/magnum-conductor systemd-start
Restart=on-failure
LimitNOFILE=65535
TimeoutStopSec=15

[Install]
WantedBy=multi-user.target
`;

/** The tempting wrong fix of D-037: the flag reaches the init script as a positional argument. */
const CONDUCTOR_DROPIN = `[Service]
ExecStart=
ExecStart=/etc/init.d/magnum-conductor systemd-start --config-dir /etc/magnum/magnum.conf.d
`;

export const CONDUCTOR_UNIT_FILES = {
  unit: '/lib/systemd/system/magnum-conductor.service',
  dropin: '/etc/systemd/system/magnum-conductor.service.d/override.conf',
  init: '/etc/init.d/magnum-conductor',
} as const;

function writeConductor(root: string, layout: NonNullable<JujuUnit['conductor']>['layout']): void {
  write(root, CONDUCTOR_UNIT_FILES.init, INIT_SCRIPT, 0o755);
  write(root, CONDUCTOR_UNIT_FILES.unit, CONDUCTOR_UNIT);
  if (layout.systemdDropin) write(root, CONDUCTOR_UNIT_FILES.dropin, CONDUCTOR_DROPIN);
  write(
    root,
    '/etc/magnum/magnum.conf',
    '[DEFAULT]\ndebug = False\nstate_path = /var/lib/magnum\n\n[drivers]\nverify_ca = true\n',
  );
  write(
    root,
    '/etc/magnum/magnum.conf.d/capi_helm.conf',
    '[capi_helm]\nkubeconfig_file = /etc/magnum/kubeconfig\ndefault_helm_chart_version = 0.25.1\n',
  );
  if (layout.defaultFile === 'present') {
    write(
      root,
      '/etc/default/magnum-conductor',
      '# D-037: the init script assembles DAEMON_ARGS; a systemd drop-in cannot reach the daemon.\nDAEMON_ARGS="$DAEMON_ARGS --config-dir /etc/magnum/magnum.conf.d"\n',
    );
  } else if (layout.defaultFile === 'other') {
    write(root, '/etc/default/magnum-conductor', '# Managed by hand\n#DAEMON_ARGS=""\n');
  }
  if (layout.helm !== 'none') {
    write(
      root,
      '/usr/local/bin/helm',
      '#!/bin/sh\ncase "$1" in\nversion) echo "v3.17.3+ge4da497" ;;\n*) echo "Error: capi-sim helm only answers version" >&2; exit 1 ;;\nesac\n',
      0o755,
    );
    if (layout.helm === 'usr-bin') {
      fs.symlinkSync(path.join(root, 'usr/local/bin/helm'), path.join(root, 'usr/bin/helm'));
    }
  }
}

/** The environment a `juju ssh` session gets on the unit: the unit's login PATH and home. */
export function unitEnv(dir: string, unit: JujuUnit): NodeJS.ProcessEnv {
  const root = unitRoot(dir, unit.name);
  return {
    PATH: intoUnit(root, `=${LOGIN_PATH}`).slice(1),
    HOME: path.join(root, 'home/ubuntu'),
    USER: 'ubuntu',
    LOGNAME: 'ubuntu',
    SHELL: '/bin/bash',
    LANG: 'C.UTF-8',
    TMPDIR: path.join(root, 'tmp'),
    CAPI_SIM_DIR: dir,
    [UNIT_NAME_ENV]: unit.name,
    [UNIT_ROOT_ENV]: root,
  };
}

export interface UnitIo {
  readonly input: Buffer;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** Copies a child's stream line by line with the unit's root taken out; the last partial line at end. */
function scrubbed(root: string, from: NodeJS.ReadableStream, to: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    let pending = '';
    from.setEncoding('utf8');
    from.on('data', (chunk: string) => {
      pending += chunk;
      const cut = pending.lastIndexOf('\n');
      if (cut >= 0) {
        to.write(outOfUnit(root, pending.slice(0, cut + 1)));
        pending = pending.slice(cut + 1);
      }
    });
    from.once('end', () => {
      if (pending !== '') to.write(outOfUnit(root, pending));
      resolve();
    });
  });
}

/** Runs `command` on the unit as `bash -c`, the way sshd runs a non-interactive juju ssh command. */
export async function runOnUnit(dir: string, unit: JujuUnit, command: string, io: UnitIo): Promise<number> {
  const root = unitRoot(dir, unit.name);
  const env = unitEnv(dir, unit);
  return await new Promise<number>((resolve, reject) => {
    const child = spawn('bash', ['-c', intoUnit(root, command)], {
      cwd: env.HOME,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const copied = Promise.all([
      scrubbed(root, child.stdout, io.stdout),
      scrubbed(root, child.stderr, io.stderr),
    ]);
    child.stdin.on('error', () => {
      // The remote command may exit without reading its input, as on a real unit.
    });
    child.stdin.end(io.input);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      void copied.then(() => resolve(signal !== null ? 255 : (code ?? 255)));
    });
  });
}
