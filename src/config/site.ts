import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, ErrorCode } from '../errors.js';
import { FINGERPRINT_PATTERN, openSshPublicKey } from '../host-key.js';
import { describeZodIssues } from '../validation.js';

const projectId = z.string().regex(/^[0-9a-f]{32}$/, {
  error: 'must be a 32-character lowercase hex project id (openstack project show <name> -f value -c id)',
});
const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, {
  error: 'must be a DNS-1123 label: lowercase letters, digits and "-", at most 63 characters',
});
// A path on the jumphost: absolute or ~/relative. Kept free of shell metacharacters because
// operators copy these values into terminals as well.
const remotePath = z.string().regex(/^(~\/|\/)[A-Za-z0-9._/-]+$/, {
  error: 'must be an absolute or ~/ path made of letters, digits, ".", "_", "-" and "/"',
});
const ipv4 = z.string().regex(/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/, {
  error: 'must be an IPv4 address, e.g. 192.0.2.10',
});
const port = z.number().int().min(1).max(65535, { error: 'must be a TCP port 1-65535' });
const hostKey = z.string().regex(FINGERPRINT_PATTERN, {
  error:
    'must be an OpenSSH SHA256 fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the jumphost)',
});

/**
 * The mgmt VM's host key, pinned: the public key itself (OpenSSH's known_hosts holds keys, not fingerprints),
 * normalised to `type base64` with the comment dropped.
 */
const publicHostKey = z.string().transform((text, ctx) => {
  const key = openSshPublicKey(text);
  if (key === undefined) {
    ctx.addIssue({
      code: 'custom',
      message:
        "must be the mgmt VM's public host key on one line, e.g. ssh-ed25519 AAAAC3Nz... (on the VM: cat /etc/ssh/ssh_host_ed25519_key.pub; cloud-init prints it at first boot: openstack console log show <mgmt server>)",
    });
    return z.NEVER;
  }
  return key;
});

export const SiteProfileSchema = z.strictObject({
  name: dnsLabel,
  openrc: remotePath,
  capi_project_id: projectId,
  mgmt_server: dnsLabel,
  mgmt_fip: ipv4,
  mgmt_ssh_port: port.default(22),
  mgmt_ssh_user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'must be a POSIX user name, e.g. ubuntu' }),
  mgmt_ssh_key: remotePath,
  /**
   * Pins the mgmt VM's SSH host key. Unset: the first key the VM presents is recorded for the site on the
   * jumphost (trust on first use) and any other key later stops the run before anything is read from the VM.
   */
  mgmt_host_key: publicHostKey.optional(),
  mgmt_kubeconfig: remotePath,
  workload_cluster: dnsLabel,
  /** The juju model of the OpenStack control plane (`juju status -m <model>`), as the seed's `-m openstack`. */
  juju_model: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, {
      error: 'must be a juju model name: lowercase letters, digits and "-" (juju models lists them)',
    })
    .default('openstack'),
  /** Defaults to the seed's convention, ~/<workload_cluster>-kc/config. */
  workload_kubeconfig: remotePath.optional(),
  timing: z
    .strictObject({
      scale: z
        .number()
        .positive({ error: 'must be a positive factor (1 = real waits; 0.01 for demos)' })
        .max(10)
        .default(1),
    })
    .default({ scale: 1 }),
  // The +1 amphora headroom rule (recovery 5b, D-040): ceiling = physical MB * ratio - reserved.
  headroom: z
    .strictObject({
      ram_allocation_ratio: z.number().positive().default(1.5),
      reserved_host_memory_mb: z.number().int().nonnegative().default(8192),
      amphora_ram_mb: z.number().int().positive().default(1024),
    })
    .default({ ram_allocation_ratio: 1.5, reserved_host_memory_mb: 8192, amphora_ram_mb: 1024 }),
  /** Slack channels whose /capi commands act on this site (an incident channel per site). */
  slack_channels: z
    .array(z.string().regex(/^[CG][A-Z0-9]{2,}$/, { error: 'must be a Slack channel id such as C0123ABCD' }))
    .default([]),
  /** The BullMQ queue this site's runs go to (default `jobs`); give a site its own agents with its own queue. */
  queue: z
    .string()
    .regex(/^jobs(-[a-z0-9]+)*$/, {
      error: 'must be "jobs" or start with "jobs-", e.g. jobs-lab1 (other names collide with run keys)',
    })
    .default('jobs'),
  /**
   * Raises the approvals a destructive step needs on this site, per runbook (`park: 2`) or per step
   * (`failover/failover-lb: 2`). It never lowers what the runbook asks: the larger number wins.
   */
  approval_quorum: z
    .record(
      z.string().regex(/^[a-z][a-z0-9-]{0,62}(\/[a-z][a-z0-9-]{0,62})*$/, {
        error: 'keys are a runbook name (park) or runbook/step id (failover/failover-lb)',
      }),
      z
        .number()
        .int({ error: 'must be a whole number of approvers' })
        .min(1, { error: 'must be at least 1' })
        .max(5, { error: 'must be at most 5 approvers' }),
    )
    .default({}),
  jumphost: z
    .strictObject({
      host: z.string().min(1),
      port: port.default(22),
      user: z.string().min(1),
      private_key_path: z.string().min(1),
      host_key: hostKey,
    })
    .partial()
    .optional(),
});

export type SiteProfile = z.infer<typeof SiteProfileSchema>;

export function parseSiteProfile(data: unknown, source: string): SiteProfile {
  const result = SiteProfileSchema.safeParse(data);
  if (!result.success) {
    throw new ConfigError(
      ErrorCode.SiteProfileInvalid,
      `site profile ${source}`,
      describeZodIssues(result.error),
    );
  }
  return result.data;
}

export async function loadSiteProfile(file: string): Promise<SiteProfile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(ErrorCode.SiteProfileInvalid, `site profile ${file}`, [
      `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): set SITE_FILE or --site to an existing YAML file`,
    ]);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new ConfigError(ErrorCode.SiteProfileInvalid, `site profile ${file}`, [
      `is not valid YAML: ${(err as Error).message}`,
    ]);
  }
  return parseSiteProfile(data, file);
}

/**
 * The approvals a step needs on this site: the runbook's own quorum, raised (never lowered) by the profile's
 * `approval_quorum` for the runbook or for `runbook/step`.
 */
export function approvalQuorum(
  site: SiteProfile,
  runbook: string,
  stepId: string,
  fromRunbook: number,
): number {
  const raised = [site.approval_quorum[runbook], site.approval_quorum[`${runbook}/${stepId}`]];
  return Math.max(fromRunbook, ...raised.filter((n): n is number => n !== undefined));
}

/** The magnum namespace is derived, never typed by hand (stuck-delete FINDING-4). */
export function magnumNamespace(site: SiteProfile): string {
  return `magnum-${site.capi_project_id}`;
}

/** Where the jumphost keeps the mgmt VM's host key first seen for this site (trust on first use). */
export function mgmtKnownHostsFile(site: SiteProfile): string {
  return `~/.capi-chatops/known_hosts/${site.name}`;
}

/**
 * What an operator is told once at start-up about a site whose mgmt VM host key is not pinned; undefined when
 * it is pinned.
 */
export function mgmtHostKeyTrustNotice(site: SiteProfile): string | undefined {
  if (site.mgmt_host_key !== undefined) return undefined;
  return `site ${site.name}: mgmt_host_key is not pinned, so the mgmt VM's host key is trusted on first use: the first key it presents is recorded in ${mgmtKnownHostsFile(site)} on the jumphost, and any other key later stops the run before anything is read from the VM. Pin the key in the site profile to check it from the first connection`;
}

/** The site values every remote script may read, as environment variables. */
export function siteEnv(site: SiteProfile): Record<string, string> {
  return {
    SITE: site.name,
    OPENRC: site.openrc,
    CAPI_PROJECT_ID: site.capi_project_id,
    MAGNUM_NS: magnumNamespace(site),
    MGMT_SERVER: site.mgmt_server,
    MGMT_FIP: site.mgmt_fip,
    MGMT_SSH_PORT: String(site.mgmt_ssh_port),
    MGMT_SSH_USER: site.mgmt_ssh_user,
    MGMT_SSH_KEY: site.mgmt_ssh_key,
    // The mgmt-vm scope (scopes.yaml) checks the VM's host key against the pin, else against the key first
    // seen for this site, kept in the agent's state directory on the jumphost.
    MGMT_HOST_KEY: site.mgmt_host_key ?? '',
    MGMT_KNOWN_HOSTS: mgmtKnownHostsFile(site),
    MGMT_KUBECONFIG: site.mgmt_kubeconfig,
    WORKLOAD_CLUSTER: site.workload_cluster,
    JUJU_MODEL: site.juju_model,
    WORKLOAD_KUBECONFIG: site.workload_kubeconfig ?? `~/${site.workload_cluster}-kc/config`,
  };
}
