import { createHash } from 'node:crypto';

/** What `ssh-keygen -lf` prints for SHA256: 32 bytes in base64 is 44 chars, 43 without the '=' padding. */
export const FINGERPRINT_PATTERN = /^SHA256:[A-Za-z0-9+/]{43}$/;

export const FINGERPRINT_HOW_TO =
  'get it on the jumphost with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` (the SHA256:... field)';

export function isFingerprint(value: string): boolean {
  return FINGERPRINT_PATTERN.test(value);
}

/**
 * OpenSSH fingerprint of a public key in wire format (the blob ssh2 hands to hostVerifier and the
 * base64 field of a .pub line), exactly as `ssh-keygen -lf` prints it.
 */
export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** Fingerprint of an OpenSSH public key line: `ssh-ed25519 AAAA... comment`. */
export function fingerprintOfPublicKeyLine(line: string): string {
  const blob = line.trim().split(/\s+/)[1];
  if (blob === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) {
    throw new Error(`not an OpenSSH public key line: ${JSON.stringify(line.slice(0, 80))}`);
  }
  return fingerprintOf(Buffer.from(blob, 'base64'));
}

/** The host key types an OpenSSH server offers. */
const HOST_KEY_TYPES = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'ssh-rsa',
]);

/**
 * An OpenSSH public host key as `type base64` (a .pub line; a trailing comment is dropped), or undefined when
 * the text is not one: the base64 must decode to a key blob that names the same type, as ssh itself checks.
 */
export function openSshPublicKey(text: string): string | undefined {
  const [type, blob] = text.trim().split(/\s+/);
  if (type === undefined || blob === undefined || !HOST_KEY_TYPES.has(type)) return undefined;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return undefined;
  const bytes = Buffer.from(blob, 'base64');
  if (bytes.length < 4) return undefined;
  const len = bytes.readUInt32BE(0);
  if (bytes.length < 4 + len || bytes.subarray(4, 4 + len).toString('latin1') !== type) return undefined;
  return `${type} ${blob}`;
}
