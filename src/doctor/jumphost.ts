/**
 * The site's jumphost, checked the way the runbooks will use it, read-only: reachable with the pinned host
 * key; its login shell and the PATH commands get; the four CLIs and their versions; a token in admin scope
 * and in the CAPI project's scope (the scopes.yaml preambles the runbooks use); the mgmt VM's FIP and host
 * key; the mgmt kubeconfig and whether the mgmt cluster answers it; whether the juju login is still valid.
 */
import { mgmtKnownHostsFile, type SiteProfile } from '../config/site.js';
import { siteEnvAt } from '../engine/preflight.js';
import { tailOf } from '../engine/scope.js';
import { withPreamble } from '../engine/script.js';
import { asCodedError, HostKeyMismatchError } from '../errors.js';
import { redactText } from '../redact.js';
import type { RunbookSet } from '../runbook/load.js';
import type { Scope } from '../runbook/model.js';
import { JUMPHOST_TOOLS, type JumphostTool } from '../runbook/tools.js';
import { connectSsh } from '../ssh/executor.js';
import type { ExecResult, JumphostTarget, RemoteExecutor } from '../ssh/types.js';
import { type DoctorLine, line } from './report.js';
import { type JumphostFacts, probeJumphost, TESTED_VERSIONS } from './tools.js';

export interface JumphostCheckOptions {
  readonly site: SiteProfile;
  readonly target: JumphostTarget;
  readonly runbooks: RunbookSet;
  readonly signal?: AbortSignal;
}

const TIMEOUT_MS = 60_000;
const POSIX_SHELLS = new Set(['bash', 'sh', 'dash', 'zsh', 'ksh', 'mksh', 'ash']);

export async function jumphostChecks(opts: JumphostCheckOptions): Promise<DoctorLine[]> {
  const { target } = opts;
  const where = `${target.user}@${target.host}:${target.port}`;
  let ssh: RemoteExecutor;
  try {
    ssh = await connectSsh({ target });
  } catch (err) {
    if (err instanceof HostKeyMismatchError) {
      return [
        line(
          'jumphost host key',
          'fail',
          `${where} presented ${err.actual}, but the site pins ${err.expected}; nothing else was checked, nothing was sent`,
          'If the jumphost was rebuilt, read its new key out of band (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its console) and put it in jumphost.host_key (or JUMPHOST_HOST_KEY). If it was not rebuilt, treat it as someone in the middle: do not connect.',
        ),
      ];
    }
    return [
      line(
        'jumphost reachable',
        'fail',
        `${where}: ${asCodedError(err).message}; nothing else was checked`,
        "Check jumphost.host, port, user and private_key_path in the site profile (or JUMPHOST_*), that this host can reach it, and that the key's public half is in that user's authorized_keys.",
      ),
    ];
  }
  try {
    const lines = [
      line('jumphost reachable', 'ok', `${where} accepts the key`),
      line('jumphost host key', 'ok', `${target.hostKey} is the pinned key`),
    ];
    let facts: JumphostFacts;
    try {
      facts = await probeJumphost(ssh, opts.signal);
    } catch (err) {
      return [
        ...lines,
        line(
          'login shell and PATH',
          'fail',
          `${asCodedError(err).message}; nothing else was checked`,
          'Every command runs as `exec bash --norc --noprofile -c ...` parsed by the login shell: the account needs a POSIX login shell and bash on its PATH.',
        ),
      ];
    }
    lines.push(shellLine(facts), ...JUMPHOST_TOOLS.map((t) => toolLine(t, facts, opts.runbooks)));
    const env = siteEnvAt(opts.site, facts.home);
    const exec = (script: string) =>
      ssh.exec({
        script,
        env: { ...env, CAPI_RUN_ID: 'doctor', CAPI_STEP: 'doctor' },
        timeoutMs: TIMEOUT_MS,
        ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
      });
    const has = (t: JumphostTool) => facts.tools[t].path !== undefined;
    const notChecked = (check: string, t: JumphostTool) =>
      line(check, 'warn', `not checked: ${t} is not on the PATH (see tool ${t})`, `Install ${t} first.`);

    for (const [scopeName, check, fix] of [
      [
        'admin',
        'admin scope token',
        `Check ${opts.site.openrc} on the jumphost: OS_AUTH_URL by IP with OS_CACERT (DOCFIX-018), the password, and the admin project and its domain (DOCFIX-022: admin in admin_domain).`,
      ],
      [
        'capi-project',
        'project scope token',
        `The openrc's user needs a role on the CAPI project ${opts.site.capi_project_id} (capi_project_id in the site profile; admin holds member on it, phase-06 6.0-BOOT).`,
      ],
    ] as const) {
      const scope = opts.runbooks.scopes.get(scopeName);
      if (scope === undefined) continue;
      if (!has('openstack')) {
        lines.push(notChecked(check, 'openstack'));
        continue;
      }
      const r = await exec(withPreamble(scope, 'openstack token issue -f value -c expires -c project_id'));
      const [expires, project] = r.stdout.trim().split('\n');
      lines.push(
        r.code === 0
          ? line(check, 'ok', `issues a token for project ${project ?? '?'} (expires ${expires ?? '?'})`)
          : line(check, 'fail', `openstack token issue in ${scopeName} scope: ${failure(r)}`, fix),
      );
    }

    const fip = `${opts.site.mgmt_fip}:${opts.site.mgmt_ssh_port}`;
    const probe = await exec(
      `timeout 5 bash -c 'exec 3<>"/dev/tcp/$MGMT_FIP/$MGMT_SSH_PORT"' 2>/dev/null && echo SSH-PORT-OK`,
    );
    const fipUp = probe.stdout.includes('SSH-PORT-OK');
    lines.push(
      fipUp
        ? line('mgmt VM FIP', 'ok', `${opts.site.mgmt_server} answers on ${fip} from the jumphost`)
        : line(
            'mgmt VM FIP',
            'fail',
            `nothing answers on ${fip} from the jumphost within 5 s`,
            `${opts.site.mgmt_server} is down or still booting (D-041; sshd lags ACTIVE by ~3.5 min): /capi diagnose says which, /capi recover starts it.`,
          ),
    );
    const mgmtVm = opts.runbooks.scopes.get('mgmt-vm');
    if (mgmtVm !== undefined) {
      lines.push(
        !has('ssh')
          ? notChecked('mgmt VM host key', 'ssh')
          : !fipUp
            ? line(
                'mgmt VM host key',
                'warn',
                'not checked: the mgmt VM does not answer (mgmt VM FIP above)',
                'Check again once it is up.',
              )
            : await mgmtHostKeyLine(exec, mgmtVm, opts.site, opts.runbooks),
      );
    }

    const kubeconfig = env.MGMT_KUBECONFIG ?? '';
    const present = await exec('test -s "$MGMT_KUBECONFIG" && echo present');
    if (!present.stdout.includes('present')) {
      lines.push(
        line(
          'mgmt kubeconfig',
          'fail',
          `${kubeconfig} is missing or empty on the jumphost`,
          '/capi recover re-emits it once the mgmt cluster is up (section 4: sudo k8s config on the mgmt VM, written with umask 077).',
        ),
      );
    } else if (!has('kubectl')) {
      lines.push(notChecked('mgmt kubeconfig', 'kubectl'));
    } else {
      const v = await exec('KUBECONFIG="$MGMT_KUBECONFIG" kubectl --request-timeout=10s version');
      const server = /Server Version: (\S+)/.exec(v.stdout)?.[1];
      lines.push(
        v.code === 0 && server !== undefined
          ? line(
              'mgmt kubeconfig',
              'ok',
              `${kubeconfig} present; the mgmt cluster answers (server ${server})`,
            )
          : line(
              'mgmt kubeconfig',
              'fail',
              `${kubeconfig} present, but the mgmt cluster does not answer it: ${failure(v)}`,
              `Is ${opts.site.mgmt_server} up (mgmt VM FIP above)? If it is, the kubeconfig may be stale: /capi recover re-emits it.`,
            ),
      );
    }

    if (!has('juju')) {
      lines.push(notChecked('juju login', 'juju'));
    } else {
      const j = await exec('juju status -m "$JUJU_MODEL" --format json >/dev/null');
      const known = opts.runbooks.knownErrors.find((k) => k.match.test(j.stderr) || k.match.test(j.stdout));
      lines.push(
        j.code === 0 && known === undefined
          ? line(
              'juju login',
              'ok',
              `valid: juju status -m ${opts.site.juju_model} answers without a password prompt`,
            )
          : line(
              'juju login',
              'fail',
              known !== undefined
                ? `${known.id}: ${failure(j)}`
                : `juju status -m ${opts.site.juju_model}: ${failure(j)}`,
              known?.message ??
                `Check the juju controller and model ${opts.site.juju_model} (juju_model in the site profile) as the jumphost user.`,
            ),
      );
    }
    return lines;
  } finally {
    await ssh.close();
  }
}

/**
 * The mgmt VM's host key, checked as the runbooks check it (the `mgmt-vm` scope: the profile's mgmt_host_key,
 * else the key first seen for the site, kept on the jumphost), by running `true` on the VM. With neither there
 * is nothing to compare: the first run would trust whatever answers on the floating IP.
 */
async function mgmtHostKeyLine(
  exec: (script: string) => Promise<ExecResult>,
  scope: Scope,
  site: SiteProfile,
  runbooks: RunbookSet,
): Promise<DoctorLine> {
  const check = 'mgmt VM host key';
  const pinned = site.mgmt_host_key !== undefined;
  const r = await exec(
    withPreamble(
      scope,
      [
        'if [ -z "$MGMT_HOST_KEY" ] && ! [ -s "$MGMT_KNOWN_HOSTS" ]; then echo NOTHING-TO-COMPARE; exit 0; fi',
        'mgmt_ssh true && echo HOST-KEY-OK',
      ].join('\n'),
    ),
  );
  if (r.stdout.includes('NOTHING-TO-COMPARE')) {
    return line(
      check,
      'warn',
      `not pinned (mgmt_host_key) and never seen from this jumphost (${mgmtKnownHostsFile(site)}): the first run will trust whatever answers on ${site.mgmt_fip}`,
      `Pin it: mgmt_host_key in the site profile, the VM's own key (cat /etc/ssh/ssh_host_ed25519_key.pub on it, or the SSH HOST KEY block of openstack console log show ${site.mgmt_server}).`,
    );
  }
  if (r.stdout.includes('HOST-KEY-OK')) {
    return line(
      check,
      'ok',
      pinned
        ? 'the VM presents the pinned mgmt_host_key'
        : `the VM presents the key first seen from this jumphost (${mgmtKnownHostsFile(site)}; not pinned)`,
    );
  }
  const known = runbooks.knownErrors.find((k) => k.match.test(r.stderr) || k.match.test(r.stdout));
  return line(
    check,
    'fail',
    known !== undefined ? `${known.id}: ${failure(r)}` : `ssh to the mgmt VM: ${failure(r)}`,
    known?.message ??
      `The jumphost's ${site.mgmt_ssh_key} must be in ${site.mgmt_ssh_user}'s authorized_keys on ${site.mgmt_server} (mgmt_ssh_key, mgmt_ssh_user in the site profile).`,
  );
}

function failure(r: ExecResult): string {
  if (r.timedOut) return 'timed out';
  return `exit ${r.code ?? r.signal}: ${tailOf(r) || '(no output)'}`;
}

function shellLine(facts: JumphostFacts): DoctorLine {
  const name = facts.shell.split('/').at(-1) ?? '';
  const path = `commands get PATH=${redactText(facts.path)}`;
  if (!facts.bash) {
    return line(
      'login shell and PATH',
      'fail',
      `bash is not on the PATH (${path})`,
      'Every command runs under bash: install it, or put its directory on the PATH.',
    );
  }
  if (!POSIX_SHELLS.has(name)) {
    return line(
      'login shell and PATH',
      'warn',
      `the login shell is ${facts.shell || 'unknown'}; ${path}`,
      'The login shell parses the command line capi-chatops sends, written for POSIX shells: give the account bash (chsh -s /bin/bash USER).',
    );
  }
  return line('login shell and PATH', 'ok', `${facts.shell}; ${path}`);
}

function toolLine(tool: JumphostTool, facts: JumphostFacts, runbooks: RunbookSet): DoctorLine {
  const t = facts.tools[tool];
  const check = `tool ${tool}`;
  const tested = TESTED_VERSIONS[tool];
  if (t.path !== undefined) {
    if (t.version === undefined) {
      return line(
        check,
        'warn',
        `${t.path}; its version could not be read`,
        `Run \`${tool === 'ssh' ? 'ssh -V' : `${tool} version`}\` on the jumphost; the runbooks were tested with ${tested.text}.`,
      );
    }
    return tested.match.test(t.version)
      ? line(check, 'ok', `${t.path}, ${t.version} (tested with ${tested.text})`)
      : line(
          check,
          'warn',
          `${t.path}, ${t.version}: the runbooks were tested with ${tested.text}; another version may print another output shape`,
          "Record this site's outputs and check the runbooks against them: capi-chatops record --site NAME --out DIR, then capi-chatops check-recording DIR.",
        );
  }
  const all = [...runbooks.runbooks.values()];
  const refusing = all.filter((rb) => rb.requires.includes(tool));
  const degraded = all.filter((rb) => !rb.requires.includes(tool) && rb.tools.includes(tool));
  const seen = `not on the PATH commands get${t.loginPath ? `, though a login shell finds it at ${t.loginPath}` : ''}`;
  if (refusing.length === 0 && degraded.length === 0) {
    return line(check, 'ok', `${seen}; no runbook calls it`);
  }
  const effects = [
    refusing.length > 0 ? `refused without it: ${refusing.map((rb) => rb.name).join(', ')}` : '',
    degraded.length > 0
      ? `not observable without it: its steps in ${degraded.map((rb) => rb.name).join(', ')}`
      : '',
  ].filter((e) => e !== '');
  // A runbook that can change the cloud would refuse in the incident: that is a failure, not a warning.
  const level = refusing.some((rb) => rb.exclusive) ? 'fail' : 'warn';
  const fix = t.loginPath
    ? `Make it visible to non-interactive SSH sessions: link it into /usr/bin (ln -s ${t.loginPath} /usr/bin/${tool}) or set PATH in ~/.bashrc above its "not interactive" return.`
    : `Install ${tool} on the jumphost${level === 'fail' ? '' : ' (or accept that those steps stay unobserved)'}; a site without it can leave out the runbooks that require it from COMMANDS_DIR.`;
  return line(check, level, `${seen}; ${effects.join('; ')}`, fix);
}
