import { ConfigError, ErrorCode } from '../errors.js';
import type { JumphostTarget } from '../jumphost-target.js';
import type { SiteProfile } from './site.js';

/** The site profile's jumphost block wins field by field; JUMPHOST_* env fills the rest. */
export function resolveJumphost(site: SiteProfile, env: Partial<JumphostTarget>): JumphostTarget {
  const j = site.jumphost ?? {};
  const merged = {
    host: j.host ?? env.host,
    port: j.port ?? env.port ?? 22,
    user: j.user ?? env.user,
    privateKeyPath: j.private_key_path ?? env.privateKeyPath,
    hostKey: j.host_key ?? env.hostKey,
  };
  const missing = [
    merged.host === undefined
      ? 'JUMPHOST_HOST (or jumphost.host in the site profile): the jumphost address'
      : '',
    merged.user === undefined ? 'JUMPHOST_USER (or jumphost.user): the login user' : '',
    merged.privateKeyPath === undefined
      ? 'JUMPHOST_PRIVATE_KEY_PATH (or jumphost.private_key_path): the SSH private key file'
      : '',
    merged.hostKey === undefined
      ? "JUMPHOST_HOST_KEY (or jumphost.host_key): the host key's SHA256 fingerprint, from ssh-keygen -lf on the jumphost"
      : '',
  ].filter((m) => m !== '');
  if (missing.length > 0) {
    throw new ConfigError(
      ErrorCode.ConfigInvalid,
      `jumphost for site ${site.name}`,
      missing.map((m) => `missing ${m}`),
    );
  }
  return merged as JumphostTarget;
}
