/**
 * The deployment's allowed_signers file (CAPI_ALLOWED_SIGNERS), in OpenSSH's format (ssh-keygen(1), ALLOWED
 * SIGNERS): one line per key, `principals [options] keytype base64-key [comment]`, where the principals are
 * the Slack user ids (comma separated) the key may sign decisions for. The same file works with
 * `ssh-keygen -Y verify -f FILE -I U0123ABCD -n capi-chatops-decision`.
 *
 * Supported options: namespaces="…" (must then list capi-chatops-decision), valid-after="…",
 * valid-before="…" (YYYYMMDD[HHMM[SS]], with Z for UTC). Refused: cert-authority, and principal patterns
 * (`*`, `?`, `!`): each Slack user id is listed as itself, so a line never grants more than it names.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, ErrorCode } from '../errors.js';
import { fingerprintOf } from '../host-key.js';
import { publicKeyFromBlob, verifySshSignature } from './sshsig.js';
import { DECISION_NAMESPACE } from './statement.js';

export interface AllowedSigner {
  readonly principals: readonly string[];
  /** The public key in wire format. */
  readonly key: Buffer;
  /** `SHA256:…`, as ssh-keygen -l prints it. */
  readonly fingerprint: string;
  readonly namespaces?: readonly string[];
  readonly validAfter?: Date;
  readonly validBefore?: Date;
  readonly line: number;
}

export type SignerCheck =
  | { readonly ok: true; readonly fingerprint: string }
  | { readonly ok: false; readonly why: string };

export class AllowedSigners {
  constructor(
    readonly entries: readonly AllowedSigner[],
    /** Where they were read from, for messages. */
    readonly source: string,
  ) {}

  /** Every principal a key is listed for: the ids one person (one key) holds. */
  principalsOf(fingerprint: string): string[] {
    return [
      ...new Set(this.entries.filter((e) => e.fingerprint === fingerprint).flatMap((e) => e.principals)),
    ];
  }

  /**
   * Whether `armored` is a decision signature over `message` by a key listed for `principal`, valid at `now`.
   * The key is taken from the signature and must be one of the principal's lines, as ssh-keygen -Y verify does.
   */
  verify(principal: string, message: string, armored: string, now = new Date()): SignerCheck {
    const lines = this.entries.filter((e) => e.principals.includes(principal));
    if (lines.length === 0) return { ok: false, why: `${principal} has no key in ${this.source}` };
    let why = `the signature was not made with a key ${this.source} lists for ${principal}`;
    for (const entry of lines) {
      if (entry.namespaces !== undefined && !entry.namespaces.includes(DECISION_NAMESPACE)) continue;
      if (entry.validAfter !== undefined && now < entry.validAfter) continue;
      if (entry.validBefore !== undefined && now > entry.validBefore) continue;
      const checked = verifySshSignature({
        armored,
        message: Buffer.from(message, 'utf8'),
        namespace: DECISION_NAMESPACE,
        publicKey: entry.key,
      });
      if (checked === true) return { ok: true, fingerprint: entry.fingerprint };
      if (checked !== 'the signature was made with another key') why = checked;
    }
    return { ok: false, why };
  }
}

/** The whitespace-separated fields of a line, a double-quoted run kept whole (options hold quoted values). */
function fields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const c of line) {
    if (c === '"') quoted = !quoted;
    if (!quoted && /\s/.test(c)) {
      if (cur !== '') out.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  if (cur !== '') out.push(cur);
  return out;
}

/** Comma-separated options, commas inside quotes kept. */
function options(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const c of text) {
    if (c === '"') quoted = !quoted;
    if (!quoted && c === ',') {
      out.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  out.push(cur);
  return out;
}

const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+)$/;

/** `YYYYMMDD[HHMM[SS]][Z]`: local time unless Z, as ssh-keygen reads it. */
function timestamp(text: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z?)$/.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map((v) => Number(v ?? 0)) as number[];
  const date =
    m[7] === 'Z'
      ? new Date(Date.UTC(y as number, (mo as number) - 1, d, h, mi, s))
      : new Date(y as number, (mo as number) - 1, d, h, mi, s);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export function parseAllowedSigners(text: string, source: string): AllowedSigners {
  const entries: AllowedSigner[] = [];
  const issues: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const f = fields(trimmed);
    const [principalField = '', second = ''] = f;
    const hasOptions = !KEY_TYPE.test(second);
    const [keyType = '', keyText = ''] = hasOptions ? f.slice(2) : f.slice(1);
    const principals = principalField.split(',').filter((p) => p !== '');
    if (principals.length === 0 || principals.some((p) => /[*?!]/.test(p))) {
      issues.push(
        `line ${line}: list each Slack user id as itself (comma separated, e.g. U0123ABCD,W0123ABCD): patterns are not accepted`,
      );
      return;
    }
    const entry: {
      namespaces?: string[];
      validAfter?: Date;
      validBefore?: Date;
    } = {};
    if (hasOptions) {
      for (const opt of options(second)) {
        const m = /^([a-z-]+)(?:="([^"]*)")?$/i.exec(opt);
        const name = m?.[1]?.toLowerCase();
        const value = m?.[2];
        if (name === 'namespaces' && value !== undefined) {
          entry.namespaces = value.split(',').map((n) => n.trim());
        } else if ((name === 'valid-after' || name === 'valid-before') && value !== undefined) {
          const at = timestamp(value);
          if (at === undefined) {
            issues.push(`line ${line}: ${name}="${value}" is not YYYYMMDD[HHMM[SS]][Z]`);
            return;
          }
          if (name === 'valid-after') entry.validAfter = at;
          else entry.validBefore = at;
        } else if (name === 'cert-authority') {
          issues.push(`line ${line}: cert-authority is not supported: list each operator's own key`);
          return;
        } else {
          issues.push(`line ${line}: unknown option ${JSON.stringify(opt.slice(0, 40))}`);
          return;
        }
      }
    }
    if (!KEY_TYPE.test(keyType) || !/^[A-Za-z0-9+/]+={0,2}$/.test(keyText)) {
      issues.push(
        `line ${line}: expected "U0123ABCD ssh-ed25519 AAAA…" (Slack user ids, then the operator's public key as in their .pub file)`,
      );
      return;
    }
    const key = Buffer.from(keyText, 'base64');
    const parsed = publicKeyFromBlob(key);
    if ('problem' in parsed) {
      issues.push(`line ${line}: ${parsed.problem}`);
      return;
    }
    if (parsed.type !== keyType) {
      issues.push(`line ${line}: the key says it is ${parsed.type}, the line says ${keyType}`);
      return;
    }
    entries.push({ principals, key, fingerprint: fingerprintOf(key), line, ...entry });
  });
  if (issues.length > 0)
    throw new ConfigError(ErrorCode.ConfigInvalid, `allowed signers file ${source}`, issues);
  return new AllowedSigners(entries, source);
}

export async function loadAllowedSigners(file: string): Promise<AllowedSigners> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(ErrorCode.ConfigInvalid, 'CAPI_ALLOWED_SIGNERS', [
      `cannot read ${file} (${(err as Error).message}): it lists each operator's SSH public key after their Slack user id`,
    ]);
  }
  try {
    return parseAllowedSigners(text, file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(ErrorCode.ConfigInvalid, `CAPI_ALLOWED_SIGNERS (${file})`, err.issues);
  }
}
