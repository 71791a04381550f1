/**
 * The simulated jumphost for tests and `npm run demo`: a real OpenSSH sshd on 127.0.0.1 whose
 * sessions find stand-in `openstack`, `kubectl` and `ssh` first on PATH, all driven by one
 * scenario's state in `dir`. The mgmt VM's "FIP:22" is a loopback TCP listener that is open
 * exactly while the simulated VM's sshd is up, so connect-probes see what they would on site.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellQuote } from '../../src/ssh/quote.js';
import type { JumphostTarget } from '../../src/ssh/types.js';
import { freePort } from '../net.js';
import { addHold, type Hold, holdReached, releaseAll, releaseHold } from './cloud/holds.js';
import { hostKeyLine, newHostKey } from './cloud/hostkey.js';
import { kubeconfigYaml, SIM_CLIENT_KEY_DATA } from './cloud/kubeconfig.js';
import { settle } from './cloud/model.js';
import { instantiateScenario, loadScenario } from './cloud/scenario.js';
import { type CloudState, type JournalEntry, type Violation, validateState } from './cloud/schema.js';
import { readJournal, readState, readViolations, withState, writeStateAtomic } from './cloud/store.js';
import { materializeUnits } from './cloud/units.js';
import { isRecording, startRecordedJumphost } from './recorded.js';
import { startSshd, systemPathWithout } from './sshd.js';

export type { Hold } from './cloud/holds.js';
export type { CloudState, JournalEntry, Violation, ViolationRule } from './cloud/schema.js';
export { SIM_CLIENT_KEY_DATA };

export interface SimJumphostOptions {
  /**
   * A name in dev/sim/scenarios (e.g. `outage`), a path to a scenario YAML file, or a recording directory
   * (`capi-chatops record`; dev/sim/recordings/): its recorded outputs answer the read-only runbooks' steps.
   */
  readonly scenario: string;
  /** Real seconds per site second: 0.01 => a 210 s boot takes 2.1 s. */
  readonly timeScale: number;
  /** Where state, homes and sshd live; default: a fresh mkdtemp directory. */
  readonly dir?: string;
}

/** The site profile for this simulated site, as the product's site YAML would hold it. */
export interface SiteProfileData {
  readonly name: string;
  readonly openrc: string;
  readonly capi_project_id: string;
  readonly mgmt_server: string;
  readonly mgmt_fip: string;
  readonly mgmt_ssh_port: number;
  readonly mgmt_ssh_user: string;
  readonly mgmt_ssh_key: string;
  readonly mgmt_kubeconfig: string;
  readonly workload_cluster: string;
  readonly juju_model: string;
  readonly timing: { readonly scale: number };
  readonly headroom: {
    readonly ram_allocation_ratio: number;
    readonly reserved_host_memory_mb: number;
    readonly amphora_ram_mb: number;
  };
  readonly jumphost: {
    readonly host: string;
    readonly port: number;
    readonly user: string;
    readonly private_key_path: string;
    readonly host_key: string;
  };
}

export interface SimJumphost {
  readonly target: JumphostTarget;
  readonly site: SiteProfileData;
  readonly dir: string;
  /** What the scenario (or the recording) is, in a line. */
  readonly description: string;
  journal(): Promise<JournalEntry[]>;
  violations(): Promise<Violation[]>;
  /** The visible state at this instant (time-driven transitions applied, nothing written). */
  state(): Promise<CloudState>;
  /**
   * Holds the matching stand-in call (see cloud/holds.ts) until released; `reached` waits for it to be
   * held and fails after `timeoutMs` saying which hold never came.
   */
  hold(spec: Hold): SimHold;
  /** The mgmt VM's public host key as a site profile pins it (`ssh-ed25519 AAAA...`). */
  mgmtHostKey(): Promise<string>;
  /**
   * Another machine answers on the mgmt VM's address from now on: it presents a new host key (returned) and,
   * when `kubeconfig` says so, hands out that kubeconfig from `k8s config` (see MgmtSchema.kubeconfig).
   */
  replaceMgmtHostKey(opts?: { readonly kubeconfig?: CloudState['mgmt']['kubeconfig'] }): Promise<string>;
  /** Idempotent: releases every hold, stops the FIP listener and sshd, removes `dir` unless CAPI_SIM_KEEP=1. */
  stop(): Promise<void>;
}

export interface SimHold {
  reached(timeoutMs?: number): Promise<void>;
  release(mode?: 'run' | 'drop'): void;
}

const BINS = ['openstack', 'kubectl', 'ssh', 'juju'] as const;
const HELPERS = ['fip-listener', 'unit-tool', 'replay'] as const;
const VM_BINS = ['sudo', 'k8s'] as const;

/** Where the built-in scenarios live, relative to the repository root. */
const SCENARIOS = path.join('dev', 'sim', 'scenarios');

/** The repo root, whether this module runs from dev/ (vitest) or dist/dev/ (built). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, SCENARIOS))) return dir;
    const up = path.dirname(dir);
    if (up === dir)
      throw new Error(`capi-sim: cannot find the repository root (package.json next to ${SCENARIOS})`);
    dir = up;
  }
}

/** The stand-in CLIs run as their own processes, so from the build (`npm run build:dev`; vitest builds it first). */
export function simBinPath(name: string): string {
  return path.join(packageRoot(), 'dist', 'dev', 'sim', 'bin', `${name}.js`);
}

function wrapper(dir: string, name: string): string {
  const js = simBinPath(name);
  return `#!/bin/sh\nexport CAPI_SIM_DIR=${shellQuote(dir)}\nexec ${shellQuote(process.execPath)} ${shellQuote(js)} "$@"\n`;
}

const FAKE_HOP_KEY = [
  '-----BEGIN OPENSSH PRIVATE KEY-----',
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  'QyNTUxOQAAACBjYXBpc2ltRkFLRWhvcGtleU5PVEFSRUFMS0VZMDAwMDAwMDAwAAAAkGNh',
  'cGlzaW0tZmFrZS1ob3Ata2V5LW5vdC1yZWFsLWRvLW5vdC11c2UAAAAAAAAAAAAAAAAAAA',
  '-----END OPENSSH PRIVATE KEY-----',
  '',
].join('\n');

function openrc(state: CloudState): string {
  const admin = state.projects.find((p) => p.id === state.auth.adminProjectId);
  return [
    '# admin-openrc -- capi-sim: fake credentials for the simulated keystone on 127.0.0.1',
    `export OS_AUTH_URL=${state.auth.authUrl}`,
    `export OS_USERNAME=${state.auth.username}`,
    `export OS_PASSWORD=${state.auth.password}`,
    `export OS_PROJECT_NAME=${admin?.name ?? 'admin'}`,
    `export OS_USER_DOMAIN_NAME=${state.auth.userDomain}`,
    `export OS_PROJECT_DOMAIN_NAME=${admin?.domain ?? 'admin_domain'}`,
    `export OS_REGION_NAME=${state.config.region}`,
    'export OS_IDENTITY_API_VERSION=3',
    'export OS_INTERFACE=public',
    'export OS_AUTH_TYPE=password',
    '',
  ].join('\n');
}

/**
 * The FIP listener runs in its own process so that a caller blocking its event loop (execSync,
 * spawnSync in a test) cannot stall the simulated VM's port opening.
 */
async function startFipListener(dir: string, port: number): Promise<() => Promise<void>> {
  const child = spawn(
    process.execPath,
    [simBinPath('fip-listener'), dir, String(port), String(process.pid)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`capi-sim: the FIP listener exited early (code ${code})`)));
  });
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      child.kill('SIGTERM');
      await exited;
    })();
    return stopping;
  };
}

export async function startSimJumphost(opts: SimJumphostOptions): Promise<SimJumphost> {
  if (!(opts.timeScale > 0)) throw new Error(`capi-sim: timeScale must be > 0 (got ${opts.timeScale})`);
  const root = packageRoot();
  for (const name of [...BINS, ...VM_BINS, ...HELPERS]) {
    const js = simBinPath(name);
    if (!existsSync(js)) throw new Error(`capi-sim: ${js} is missing: run \`npm run build:dev\` first`);
  }
  const recording = isRecording(opts.scenario);
  const scenario = recording ? undefined : loadScenario(opts.scenario, path.join(root, SCENARIOS));
  const dir =
    opts.dir === undefined ? await mkdtemp(path.join(os.tmpdir(), 'capi-sim-')) : path.resolve(opts.dir);
  const keep = process.env.CAPI_SIM_KEEP === '1';
  const cleanup = async () => {
    if (!keep) await rm(dir, { recursive: true, force: true });
  };
  if (scenario === undefined) {
    try {
      return await startRecordedJumphost({
        recording: opts.scenario,
        dir,
        replayJs: simBinPath('replay'),
        cleanup,
      });
    } catch (err) {
      await cleanup();
      throw err;
    }
  }

  let stopListener: (() => Promise<void>) | null = null;
  try {
    const home = path.join(dir, 'home');
    const bin = path.join(dir, 'bin');
    const vmBin = path.join(dir, 'vm-bin');
    await mkdir(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
    await mkdir(bin, { recursive: true });
    await mkdir(vmBin, { recursive: true });
    await mkdir(path.join(dir, 'vm-home'), { recursive: true });

    const state = instantiateScenario(scenario, Date.now(), opts.timeScale);
    const fipPort = await freePort();
    state.mgmt.sshPort = fipPort;
    writeStateAtomic(dir, state);

    await writeFile(path.join(home, 'admin-openrc'), openrc(state), { mode: 0o600 });
    await writeFile(path.join(home, '.ssh', 'id_ed25519'), FAKE_HOP_KEY, { mode: 0o600 });
    await chmod(path.join(home, '.ssh', 'id_ed25519'), 0o600);
    if (scenario.mgmt.kubeconfig_on_jumphost) {
      await writeFile(path.join(home, 'capi-mgmt.kubeconfig'), kubeconfigYaml('https://127.0.0.1:6443'), {
        mode: 0o600,
      });
    }
    const missing: readonly string[] = scenario.jumphost.missing_tools;
    for (const name of BINS.filter((b) => !missing.includes(b))) {
      await writeFile(path.join(bin, name), wrapper(dir, name), { mode: 0o755 });
    }
    materializeUnits(dir, state.juju, {
      node: process.execPath,
      unitTool: simBinPath('unit-tool'),
    });
    // The workload cluster's kubeconfig where the seed keeps it (~/<cluster>-kc/config).
    for (const c of state.coeClusters.filter((x) => x.status !== 'DELETE_IN_PROGRESS')) {
      await mkdir(path.join(home, `${c.name}-kc`), { recursive: true, mode: 0o700 });
      await writeFile(path.join(home, `${c.name}-kc`, 'config'), kubeconfigYaml(c.apiAddress), {
        mode: 0o600,
      });
    }
    for (const name of VM_BINS) await writeFile(path.join(vmBin, name), wrapper(dir, name), { mode: 0o755 });

    stopListener = await startFipListener(dir, fipPort);
    const sshd = await startSshd({
      dir: path.join(dir, 'sshd'),
      homeDir: home,
      pathPrepend: [bin],
      // This machine may have a real kubectl or ssh in /usr/bin: a tool the scenario leaves out must be absent.
      ...(missing.length > 0 ? { systemPath: [await systemPathWithout(dir, missing)] } : {}),
    });

    const workload = state.coeClusters[0]?.name ?? 'capi-test-1';
    const site: SiteProfileData = {
      name: `sim-${scenario.name}`.slice(0, 63),
      openrc: '~/admin-openrc',
      capi_project_id: state.auth.capiProjectId,
      mgmt_server: state.servers.find((s) => s.id === state.mgmt.serverId)?.name ?? 'capi-mgmt-v2',
      mgmt_fip: state.mgmt.sshHost,
      mgmt_ssh_port: fipPort,
      mgmt_ssh_user: state.mgmt.sshUser,
      mgmt_ssh_key: '~/.ssh/id_ed25519',
      mgmt_kubeconfig: '~/capi-mgmt.kubeconfig',
      workload_cluster: workload,
      juju_model: state.juju.model,
      timing: { scale: opts.timeScale },
      headroom: {
        ram_allocation_ratio: state.config.ramAllocationRatio,
        reserved_host_memory_mb: state.config.reservedHostMemoryMb,
        amphora_ram_mb: state.flavors.find((f) => f.id === state.config.amphoraFlavorId)?.ramMb ?? 1024,
      },
      jumphost: {
        host: sshd.target.host,
        port: sshd.target.port,
        user: sshd.target.user,
        private_key_path: sshd.target.privateKeyPath,
        host_key: sshd.target.hostKey,
      },
    };

    const fipStop = stopListener;
    let stopping: Promise<void> | undefined;
    return {
      target: sshd.target,
      site,
      dir,
      description: scenario.description,
      journal: async () => readJournal(dir),
      violations: async () => readViolations(dir),
      state: async () => {
        const s = validateState(readState(dir), path.join(dir, 'state.json'));
        settle(s, Date.now());
        return s;
      },
      mgmtHostKey: async () => hostKeyLine(readState(dir).mgmt.hostKey),
      replaceMgmtHostKey: async (more = {}) =>
        withState(dir, (s) => {
          s.mgmt.hostKey = newHostKey();
          if (more.kubeconfig !== undefined) s.mgmt.kubeconfig = more.kubeconfig;
          return hostKeyLine(s.mgmt.hostKey);
        }),
      hold(spec) {
        addHold(dir, spec);
        return {
          async reached(timeoutMs = 30_000) {
            const deadline = Date.now() + timeoutMs;
            while (!holdReached(dir, spec.id)) {
              if (Date.now() > deadline) {
                throw new Error(
                  `capi-sim: hold ${JSON.stringify(spec)} was not reached within ${timeoutMs} ms`,
                );
              }
              await new Promise((r) => setTimeout(r, 10));
            }
          },
          release: (mode = 'run') => releaseHold(dir, spec.id, mode),
        };
      },
      stop() {
        stopping ??= (async () => {
          releaseAll(dir);
          await fipStop();
          await sshd.stop();
          await cleanup();
        })();
        return stopping;
      },
    };
  } catch (err) {
    await stopListener?.();
    await cleanup();
    throw err;
  }
}
