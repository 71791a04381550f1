/**
 * The mgmt VM's SSH host key and the client side of checking it, as OpenSSH does: known_hosts files (plain
 * and hashed host names, `[host]:port`, globs), HostKeyAlias, and StrictHostKeyChecking's yes / accept-new /
 * no / ask. The key is a real ed25519 public key, made fresh for each simulated VM; a test gives the VM's
 * address to another machine by making a new one (SimJumphost.replaceMgmtHostKey).
 */
import { createHash, createHmac, generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const HOST_KEY_TYPE = 'ssh-ed25519';

function sshString(data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  return Buffer.concat([len, data]);
}

/** A fresh ed25519 host key: its public blob in base64, as the second field of a known_hosts line. */
export function newHostKey(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  return Buffer.concat([sshString(Buffer.from(HOST_KEY_TYPE)), sshString(raw)]).toString('base64');
}

/** `ssh-ed25519 AAAA...`: what /etc/ssh/ssh_host_ed25519_key.pub holds, without its comment. */
export function hostKeyLine(blob: string): string {
  return `${HOST_KEY_TYPE} ${blob}`;
}

/** What OpenSSH prints: SHA256 of the blob, base64 without padding. */
export function fingerprint(blob: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

interface KnownKey {
  readonly file: string;
  readonly line: number;
  readonly type: string;
  readonly blob: string;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return re.test(name);
}

/** A known_hosts host field (`a,b`, `|1|salt|hash`, globs, `!negated`) against the name looked up. */
function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (salt === undefined || hash === undefined) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (globMatch(pattern.slice(1), name)) return false;
    } else if (globMatch(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

function knownKeys(files: readonly string[], name: string): KnownKey[] {
  const keys: KnownKey[] = [];
  for (const file of files) {
    if (file === '/dev/null' || !fs.existsSync(file)) continue;
    fs.readFileSync(file, 'utf8')
      .split('\n')
      .forEach((text, i) => {
        const fields = text.trim().split(/\s+/);
        // Comments, blank lines and @cert-authority / @revoked lines: the sim's VM has no certificates.
        if (
          fields[0] === undefined ||
          fields[0] === '' ||
          fields[0].startsWith('#') ||
          fields[0].startsWith('@')
        )
          return;
        const [hosts, type, blob] = fields;
        if (type === undefined || blob === undefined || !hostFieldMatches(hosts ?? '', name)) return;
        keys.push({ file, line: i + 1, type, blob });
      });
  }
  return keys;
}

export interface HostKeyCheck {
  /** The name keys are looked up and recorded under: HostKeyAlias, else `host` or `[host]:port`. */
  readonly name: string;
  /** StrictHostKeyChecking, lower case. */
  readonly strict: string;
  readonly userFiles: readonly string[];
  readonly globalFiles: readonly string[];
  readonly quiet: boolean;
  /** The key the machine answering on the address presents (base64 blob). */
  readonly served: string;
}

/** Outcome of the check: go on (with what to print first), or fail with OpenSSH's words and exit 255. */
export type HostKeyVerdict =
  | { readonly ok: true; readonly stderr: string }
  | { readonly ok: false; readonly stderr: string };

function changedMessage(c: HostKeyCheck, offending: KnownKey): string {
  return [
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n',
    '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n',
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n',
    'IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n',
    'Someone could be eavesdropping on you right now (man-in-the-middle attack)!\r\n',
    'It is also possible that a host key has just been changed.\r\n',
    'The fingerprint for the ED25519 key sent by the remote host is\n',
    `${fingerprint(c.served)}.\r\n`,
    'Please contact your system administrator.\r\n',
    `Add correct host key in ${c.userFiles[0] ?? '~/.ssh/known_hosts'} to get rid of this message.\r\n`,
    `Offending ED25519 key in ${offending.file}:${offending.line}\r\n`,
    '  remove with:\r\n',
    `  ssh-keygen -f "${offending.file}" -R "${c.name}"\r\n`,
  ].join('');
}

/**
 * OpenSSH's verify_host_key for the key the machine presents. A key of the same type on record for the name
 * decides: the same key passes, another one is "REMOTE HOST IDENTIFICATION HAS CHANGED" and fails under
 * yes, ask and accept-new (under no the connection goes on, as OpenSSH's does with password auth off). No
 * key of that type on record: yes and ask fail, accept-new and no record the key in the first user file.
 */
export function verifyHostKey(c: HostKeyCheck): HostKeyVerdict {
  const known = knownKeys([...c.userFiles, ...c.globalFiles], c.name).filter((k) => k.type === HOST_KEY_TYPE);
  if (known.some((k) => k.blob === c.served)) return { ok: true, stderr: '' };
  const offending = known[0];
  if (offending !== undefined) {
    const warning = changedMessage(c, offending);
    if (c.strict === 'no' || c.strict === 'off') {
      return {
        ok: true,
        stderr: `${warning}Password authentication is disabled to avoid man-in-the-middle attacks.\r\nKeyboard-interactive authentication is disabled to avoid man-in-the-middle attacks.\r\n`,
      };
    }
    return {
      ok: false,
      stderr: `${warning}Host key for ${c.name} has changed and you have requested strict checking.\r\nHost key verification failed.\r\n`,
    };
  }
  if (c.strict === 'yes') {
    return {
      ok: false,
      stderr: `No ED25519 host key is known for ${c.name} and you have requested strict checking.\r\nHost key verification failed.\r\n`,
    };
  }
  if (c.strict !== 'accept-new' && c.strict !== 'no' && c.strict !== 'off') {
    // ask: there is no terminal to ask on (BatchMode, or a session without a tty).
    return { ok: false, stderr: 'Host key verification failed.\r\n' };
  }
  const file = c.userFiles[0];
  if (file !== undefined && file !== '/dev/null') {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.appendFileSync(file, `${c.name} ${hostKeyLine(c.served)}\n`);
  }
  return {
    ok: true,
    stderr: c.quiet ? '' : `Warning: Permanently added '${c.name}' (ED25519) to the list of known hosts.\r\n`,
  };
}
