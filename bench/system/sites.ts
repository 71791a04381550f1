/**
 * Simulated sites for the product: each one a real sshd in front of the simulated cloud (dev/sim), and the
 * site profile `serve` reads, linked to its own Slack channel.
 *
 * The simulated cloud's CLIs are node processes that run on the jumphost; on a real site that is another
 * machine. Here they share these 2 cores with the product, so each site's sshd (and every session and
 * stand-in it forks) is reniced to `nice`: the product gets the CPU first, as it would on its own host, and
 * the runs still move (they just wait longer for their commands).
 */
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { type SimJumphost, startSimJumphost } from '../../dev/sim/jumphost.js';
import type { JumphostTarget } from '../../src/ssh/types.js';

export interface BenchSite {
  readonly name: string;
  readonly channel: string;
  readonly file: string;
}

export async function startSimSites(opts: {
  readonly count: number;
  readonly scenario: string;
  readonly timeScale: number;
  readonly nice: number;
  readonly dir: string;
  readonly tag: string;
}): Promise<{ sites: BenchSite[]; stop(): Promise<void> }> {
  const sims: SimJumphost[] = [];
  const sites: BenchSite[] = [];
  try {
    for (let i = 1; i <= opts.count; i++) {
      const sim = await startSimJumphost({ scenario: opts.scenario, timeScale: opts.timeScale });
      sims.push(sim);
      const pid = Number((await readFile(path.join(sim.dir, 'sshd', 'sshd.pid'), 'utf8')).trim());
      os.setPriority(pid, opts.nice);
      const name = `${opts.tag}-${i}`;
      const channel = channelId(opts.tag, i);
      const file = path.join(opts.dir, `${name}.yaml`);
      await writeFile(file, stringify({ ...sim.site, name, slack_channels: [channel] }));
      sites.push({ name, channel, file });
    }
  } catch (err) {
    await Promise.allSettled(sims.map((s) => s.stop()));
    throw err;
  }
  return { sites, stop: async () => void (await Promise.allSettled(sims.map((s) => s.stop()))) };
}

/** A Slack channel id (C + 8-20 upper-case letters and digits) for run `i` of a phase. */
export function channelId(tag: string, i: number): string {
  return `C${tag.toUpperCase().replace(/[^A-Z0-9]/g, '')}${String(i).padStart(3, '0')}`.slice(0, 21);
}

/** A site profile for a plain sshd (no simulated cloud): what runbooks of trivial commands need. */
export async function writePlainSite(
  dir: string,
  name: string,
  target: JumphostTarget,
  channels: readonly string[],
): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(
    file,
    stringify({
      name,
      openrc: '~/admin-openrc',
      capi_project_id: '0123456789abcdef0123456789abcdef',
      mgmt_server: 'capi-mgmt-v2',
      mgmt_fip: '127.0.0.1',
      mgmt_ssh_user: 'ubuntu',
      mgmt_ssh_key: '~/.ssh/id_ed25519',
      mgmt_kubeconfig: '~/capi-mgmt.kubeconfig',
      workload_cluster: 'capi-test-1',
      slack_channels: [...channels],
      jumphost: {
        host: target.host,
        port: target.port,
        user: target.user,
        private_key_path: target.privateKeyPath,
        host_key: target.hostKey,
      },
    }),
  );
  return file;
}
