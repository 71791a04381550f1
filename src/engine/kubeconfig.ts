/**
 * `parse: kubeconfig`: a kubeconfig read before it is installed on the jumphost (recover re-emits the mgmt
 * cluster's from the mgmt VM). Whoever answers on the mgmt VM's address writes it, and kubectl would act on
 * what it says with the jumphost account: a user with `exec` (or an `auth-provider`) runs a command of their
 * choosing, `client-key` or `tokenFile` reads a file, `insecure-skip-tls-verify` and `proxy-url` hand the
 * connection to someone else. So only what an admin kubeconfig from `k8s config` holds is accepted, key by
 * key (kubectl matches keys ignoring case, so a near-miss is refused rather than passed over); anything else
 * refuses the whole file, naming where. What expressions see is the file without its credentials: each
 * cluster's name and server, each user's name. Nothing here repeats a value from the file.
 */
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { CapiError, ErrorCode } from '../errors.js';
import { describeZodIssues } from '../validation.js';

/** What `out` is for `parse: kubeconfig`: no credential, only what a check needs. */
export interface KubeconfigView {
  readonly clusters: readonly { readonly name: string; readonly server: string }[];
  readonly users: readonly { readonly name: string }[];
  readonly current_context: string | null;
}

const name = z.string().min(1, { error: 'must be a non-empty name' });
const data = z.string().regex(/^[A-Za-z0-9+/=\s]+$/, { error: 'must be base64 data' });

const Kubeconfig = z.strictObject({
  apiVersion: z.literal('v1', { error: 'must be v1' }).optional(),
  kind: z.literal('Config', { error: 'must be Config' }).optional(),
  preferences: z.strictObject({}).optional(),
  'current-context': z.string().optional(),
  clusters: z
    .array(
      z.strictObject({
        name,
        cluster: z.strictObject({
          server: z.string().regex(/^https:\/\/[^\s/]+(\/[^\s]*)?$/, { error: 'must be an https:// URL' }),
          'certificate-authority-data': data,
        }),
      }),
    )
    .min(1, { error: 'names no cluster' }),
  contexts: z
    .array(
      z.strictObject({
        name,
        context: z.strictObject({ cluster: name, user: name, namespace: z.string().optional() }),
      }),
    )
    .default([]),
  users: z
    .array(
      z.strictObject({
        name,
        user: z.strictObject({
          'client-certificate-data': data.optional(),
          'client-key-data': data.optional(),
          token: z.string().optional(),
        }),
      }),
    )
    .min(1, { error: 'names no user' }),
});

/** Credential plugins: kubectl runs what they name (exec) or asks a provider on the user's behalf. */
const PLUGINS = ['exec', 'auth-provider'];

function refused(problems: readonly string[]): CapiError {
  return new CapiError(
    ErrorCode.KubeconfigRefused,
    `the kubeconfig is refused and not installed: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`,
  );
}

/** The plugins a users[] entry names, whatever the case of the key (kubectl ignores it). */
function pluginsOf(entry: unknown): string[] {
  const user = (entry as { user?: unknown } | null)?.user;
  if (user === null || typeof user !== 'object') return [];
  return Object.keys(user).filter((k) => PLUGINS.includes(k.toLowerCase()));
}

export function parseKubeconfig(text: string): KubeconfigView {
  const doc = parseDocument(text, { uniqueKeys: true, merge: false });
  if (doc.errors.length > 0) {
    // The parser's own message quotes the text around the error: only its position is said.
    const at = doc.errors[0]?.linePos?.[0];
    throw refused([`it is not valid YAML${at ? ` (line ${at.line}, column ${at.col})` : ''}`]);
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 10 });
  const users = (raw as { users?: unknown } | null)?.users;
  const plugins = (Array.isArray(users) ? users : []).flatMap((u, i) =>
    pluginsOf(u).map(
      (k) =>
        `users[${i}].user.${k} is a credential plugin: kubectl would run what it names on the jumphost with the admin openrc`,
    ),
  );
  if (plugins.length > 0) throw refused(plugins);
  const parsed = Kubeconfig.safeParse(raw);
  if (!parsed.success) throw refused(describeZodIssues(parsed.error));
  const k = parsed.data;
  return {
    clusters: k.clusters.map((c) => ({ name: c.name, server: c.cluster.server })),
    users: k.users.map((u) => ({ name: u.name })),
    current_context: k['current-context'] ?? null,
  };
}
