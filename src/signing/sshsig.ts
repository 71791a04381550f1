/**
 * OpenSSH signatures (SSHSIG, what `ssh-keygen -Y sign` writes), verified with node:crypto: the agent checks
 * a terminal decision without a subprocess and without ssh-keygen in its image. The format is OpenSSH's
 * PROTOCOL.sshsig: the armored blob holds the signer's public key, the namespace, the hash algorithm and the
 * signature over `"SSHSIG" || string(namespace) || string(reserved) || string(hash) || string(H(message))`.
 *
 * Keys: ssh-ed25519, ecdsa-sha2-nistp256/384/521 and ssh-rsa (rsa-sha2-256/512 signatures). FIDO (sk-) keys
 * are refused: their signatures cover more than the message (flags, counter) and are not handled here.
 */
import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';

const MAGIC = Buffer.from('SSHSIG');
const ARMOR = /^-----BEGIN SSH SIGNATURE-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END SSH SIGNATURE-----\s*$/;

/** The parts of an SSHSIG blob. */
export interface SshSignature {
  /** The signer's public key in wire format (the base64 field of a .pub line, decoded). */
  readonly publicKey: Buffer;
  readonly namespace: string;
  readonly hashAlgorithm: string;
  /** The signature algorithm (`ssh-ed25519`, `rsa-sha2-512`, …) and its bytes. */
  readonly algorithm: string;
  readonly signature: Buffer;
}

/** Reads SSH wire strings off a buffer; throws on anything short or malformed. */
class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}

  bytes(n: number): Buffer {
    if (n < 0 || this.at + n > this.buf.length) throw new Error('truncated');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  uint32(): number {
    return this.bytes(4).readUInt32BE(0);
  }

  string(): Buffer {
    return this.bytes(this.uint32());
  }

  text(): string {
    return this.string().toString('latin1');
  }

  done(): boolean {
    return this.at === this.buf.length;
  }
}

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length, 0);
  return Buffer.concat([len, body]);
}

/** The armored signature's parts, or undefined when it is not an SSHSIG version 1. */
export function parseSshSignature(armored: string): SshSignature | undefined {
  const m = ARMOR.exec(armored.trim().concat('\n'));
  if (!m) return undefined;
  try {
    const r = new Reader(Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64'));
    if (!r.bytes(6).equals(MAGIC) || r.uint32() !== 1) return undefined;
    const publicKey = Buffer.from(r.string());
    const namespace = r.text();
    r.string(); // reserved
    const hashAlgorithm = r.text();
    const sig = new Reader(r.string());
    const algorithm = sig.text();
    const signature = Buffer.from(sig.string());
    if (!r.done()) return undefined;
    return { publicKey, namespace, hashAlgorithm, algorithm, signature };
  } catch {
    return undefined;
  }
}

function b64url(b: Buffer): string {
  return b.toString('base64url');
}

/** An mpint without its sign byte, left-padded to `size` bytes when given. */
function unsigned(mpint: Buffer, size?: number): Buffer {
  let b = mpint;
  while (b.length > 1 && b[0] === 0) b = b.subarray(1);
  if (size === undefined || b.length >= size) return b;
  return Buffer.concat([Buffer.alloc(size - b.length), b]);
}

const CURVES: Readonly<Record<string, { crv: string; size: number; hash: string }>> = {
  nistp256: { crv: 'P-256', size: 32, hash: 'sha256' },
  nistp384: { crv: 'P-384', size: 48, hash: 'sha384' },
  nistp521: { crv: 'P-521', size: 66, hash: 'sha512' },
};

/** A public key in wire format as a KeyObject and its type, or why not. */
export function publicKeyFromBlob(blob: Buffer): { key: KeyObject; type: string } | { problem: string } {
  try {
    const r = new Reader(blob);
    const type = r.text();
    if (type === 'ssh-ed25519') {
      const x = r.string();
      return {
        type,
        key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(x) }, format: 'jwk' }),
      };
    }
    if (type === 'ssh-rsa') {
      const e = unsigned(r.string());
      const n = unsigned(r.string());
      return {
        type,
        key: createPublicKey({ key: { kty: 'RSA', e: b64url(e), n: b64url(n) }, format: 'jwk' }),
      };
    }
    const ec = /^ecdsa-sha2-(nistp256|nistp384|nistp521)$/.exec(type);
    if (ec) {
      const curve = CURVES[ec[1] as string] as (typeof CURVES)[string];
      if (r.text() !== ec[1]) return { problem: `a ${type} key names another curve` };
      const q = r.string();
      if (q[0] !== 4 || q.length !== 1 + 2 * curve.size)
        return { problem: `a ${type} key's point is not uncompressed` };
      const x = q.subarray(1, 1 + curve.size);
      const y = q.subarray(1 + curve.size);
      return {
        type,
        key: createPublicKey({
          key: { kty: 'EC', crv: curve.crv, x: b64url(x), y: b64url(y) },
          format: 'jwk',
        }),
      };
    }
    if (type.startsWith('sk-')) {
      return { problem: `${type} (FIDO) keys are not supported: sign with an ed25519, ecdsa or rsa key` };
    }
    return { problem: `${type} keys are not supported: use an ed25519, ecdsa or rsa key` };
  } catch {
    return { problem: 'the public key is malformed' };
  }
}

/**
 * Whether `armored` is a valid signature of `message` in `namespace` by the key `publicKey` (wire format).
 * Returns true, or why not.
 */
export function verifySshSignature(opts: {
  readonly armored: string;
  readonly message: Buffer;
  readonly namespace: string;
  readonly publicKey: Buffer;
}): true | string {
  const sig = parseSshSignature(opts.armored);
  if (sig === undefined) return 'the signature is not an SSH signature (ssh-keygen -Y sign)';
  if (sig.namespace !== opts.namespace)
    return `the signature is for namespace "${sig.namespace}", not "${opts.namespace}"`;
  if (!sig.publicKey.equals(opts.publicKey)) return 'the signature was made with another key';
  if (sig.hashAlgorithm !== 'sha256' && sig.hashAlgorithm !== 'sha512') {
    return `the signature's hash ${sig.hashAlgorithm} is not sha256 or sha512`;
  }
  const parsed = publicKeyFromBlob(sig.publicKey);
  if ('problem' in parsed) return parsed.problem;
  const signed = Buffer.concat([
    MAGIC,
    sshString(opts.namespace),
    sshString(''),
    sshString(sig.hashAlgorithm),
    sshString(createHash(sig.hashAlgorithm).update(opts.message).digest()),
  ]);
  let ok = false;
  try {
    if (parsed.type === 'ssh-ed25519' && sig.algorithm === 'ssh-ed25519') {
      ok = verify(null, signed, parsed.key, sig.signature);
    } else if (
      parsed.type === 'ssh-rsa' &&
      (sig.algorithm === 'rsa-sha2-256' || sig.algorithm === 'rsa-sha2-512')
    ) {
      ok = verify(sig.algorithm === 'rsa-sha2-256' ? 'sha256' : 'sha512', signed, parsed.key, sig.signature);
    } else if (parsed.type.startsWith('ecdsa-sha2-') && sig.algorithm === parsed.type) {
      const curve = CURVES[parsed.type.slice('ecdsa-sha2-'.length)] as (typeof CURVES)[string];
      const rs = new Reader(sig.signature);
      const p1363 = Buffer.concat([unsigned(rs.string(), curve.size), unsigned(rs.string(), curve.size)]);
      ok = verify(curve.hash, signed, { key: parsed.key, dsaEncoding: 'ieee-p1363' }, p1363);
    } else {
      return `a ${sig.algorithm} signature does not fit a ${parsed.type} key`;
    }
  } catch {
    ok = false;
  }
  return ok ? true : 'the signature does not match the statement';
}
