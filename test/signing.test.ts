import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllowedSigners } from '../src/signing/allowed-signers.js';
import {
  loadSigningKey,
  loadVerifyKey,
  serviceSigner,
  verifyServiceSignature,
} from '../src/signing/service-key.js';
import { sshKeygenSigner } from '../src/signing/ssh-keygen.js';
import { DECISION_NAMESPACE, parseStatement, statementText } from '../src/signing/statement.js';

/** Decisions as signed statements: OpenSSH's signatures verified like ssh-keygen -Y verify does, serve's key. */

let dir: string;
const keys: Record<string, string> = {};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'capi-signing-'));
  for (const [name, args] of [
    ['ed', ['-t', 'ed25519']],
    ['ec', ['-t', 'ecdsa', '-b', '256']],
    ['ec384', ['-t', 'ecdsa', '-b', '384']],
    ['rsa', ['-t', 'rsa', '-b', '2048']],
    ['other', ['-t', 'ed25519']],
  ] as const) {
    const file = path.join(dir, name);
    execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', name, '-f', file]);
    keys[name] = file;
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const pub = async (name: string) => (await readFile(`${keys[name]}.pub`, 'utf8')).trim();

const STATEMENT = statementText({
  approvalId: 'approval~run-1~stop-vm',
  digest: 'sha256:abc',
  decider: 'U0ALICE01',
  verdict: 'approve',
  at: '2026-01-02T03:04:05.000Z',
  via: 'terminal as alice',
});

describe('a terminal decision signed with the operator SSH key', () => {
  it('should verify what ssh-keygen -Y sign made, for ed25519, ecdsa and rsa keys, and agree with ssh-keygen -Y verify', async () => {
    for (const name of ['ed', 'ec', 'ec384', 'rsa']) {
      const signers = parseAllowedSigners(`U0ALICE01 ${await pub(name)}\n`, 'allowed_signers');
      const signed = await sshKeygenSigner(keys[name] as string).sign(STATEMENT);
      expect(signed.signer).toBe('ssh');
      expect(signers.verify('U0ALICE01', STATEMENT, signed.signature)).toMatchObject({ ok: true });
      // The same file and signature pass OpenSSH's own check.
      const file = path.join(dir, `as-${name}`);
      const sig = path.join(dir, `sig-${name}`);
      await writeFile(file, `U0ALICE01 ${await pub(name)}\n`);
      await writeFile(sig, signed.signature);
      execFileSync(
        'ssh-keygen',
        ['-Y', 'verify', '-f', file, '-I', 'U0ALICE01', '-n', DECISION_NAMESPACE, '-s', sig],
        {
          input: STATEMENT,
          stdio: ['pipe', 'ignore', 'ignore'],
        },
      );
      // One changed byte, and it no longer verifies.
      expect(
        signers.verify('U0ALICE01', STATEMENT.replace('approve', 'denyyy'), signed.signature),
      ).toMatchObject({
        ok: false,
        why: 'the signature does not match the statement',
      });
    }
  });

  it('should refuse a signature by another key, for another principal, or in another namespace', async () => {
    const signers = parseAllowedSigners(
      [`U0ALICE01 ${await pub('ed')}`, `U0BOB0001 ${await pub('other')}`].join('\n'),
      'allowed_signers',
    );
    const byOther = await sshKeygenSigner(keys.other as string).sign(STATEMENT);
    expect(signers.verify('U0ALICE01', STATEMENT, byOther.signature)).toMatchObject({ ok: false });
    expect(signers.verify('U0CAROL01', STATEMENT, byOther.signature)).toEqual({
      ok: false,
      why: 'U0CAROL01 has no key in allowed_signers',
    });
    const elsewhere = execFileSync(
      'ssh-keygen',
      ['-q', '-Y', 'sign', '-f', keys.ed as string, '-n', 'file'],
      {
        input: STATEMENT,
        stdio: ['pipe', 'pipe', 'ignore'],
      },
    ).toString();
    expect(signers.verify('U0ALICE01', STATEMENT, elsewhere)).toEqual({
      ok: false,
      why: `the signature is for namespace "file", not "${DECISION_NAMESPACE}"`,
    });
    expect(signers.verify('U0ALICE01', STATEMENT, 'not a signature')).toMatchObject({ ok: false });
  });

  it('should honour namespaces and validity, name one key listed for two ids, and refuse patterns and CAs', async () => {
    const ed = await pub('ed');
    const signed = await sshKeygenSigner(keys.ed as string).sign(STATEMENT);
    const other = parseAllowedSigners(`U0ALICE01 namespaces="git" ${ed}`, 'f');
    expect(other.verify('U0ALICE01', STATEMENT, signed.signature).ok).toBe(false);
    const expired = parseAllowedSigners(`U0ALICE01 valid-before="20200101Z" ${ed}`, 'f');
    expect(expired.verify('U0ALICE01', STATEMENT, signed.signature).ok).toBe(false);
    const ok = parseAllowedSigners(
      `U0ALICE01,U0ALICE02 namespaces="git,${DECISION_NAMESPACE}",valid-after="20200101" ${ed} alice`,
      'f',
    );
    const checked = ok.verify('U0ALICE02', STATEMENT, signed.signature);
    expect(checked.ok).toBe(true);
    expect(ok.principalsOf(checked.ok ? checked.fingerprint : '')).toEqual(['U0ALICE01', 'U0ALICE02']);
    expect(() => parseAllowedSigners(`U0* ${ed}`, 'f')).toThrow(/line 1: list each Slack user id as itself/);
    expect(() => parseAllowedSigners(`# ops\n\nU0A cert-authority ${ed}`, 'f')).toThrow(
      /line 3: cert-authority is not supported/,
    );
    expect(() => parseAllowedSigners('U0A ssh-ed25519 AAAA', 'f')).toThrow(
      /line 1: the public key is malformed/,
    );
  });
});

describe("serve's decision key", () => {
  it('should sign and verify, and be refused when other accounts can read it or it is not Ed25519', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const keyFile = path.join(dir, 'decision.key');
    const pubFile = path.join(dir, 'decision.pub');
    await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await writeFile(pubFile, publicKey.export({ type: 'spki', format: 'pem' }));
    const signed = await serviceSigner(await loadSigningKey(keyFile)).sign(STATEMENT);
    const verifyKey = await loadVerifyKey(pubFile);
    expect(verifyServiceSignature(verifyKey, STATEMENT, signed.signature)).toBe(true);
    expect(verifyServiceSignature(verifyKey, `${STATEMENT} `, signed.signature)).toBe(false);
    const stranger = generateKeyPairSync('ed25519').publicKey;
    expect(verifyServiceSignature(stranger, STATEMENT, signed.signature)).toBe(false);

    await chmod(keyFile, 0o640);
    await expect(loadSigningKey(keyFile)).rejects.toThrow(
      /can be read by other accounts \(mode 640\): chmod 600/,
    );
    const x25519 = path.join(dir, 'x25519.pem');
    const xKey = generateKeyPairSync('x25519').privateKey;
    await writeFile(x25519, xKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await expect(loadSigningKey(x25519)).rejects.toThrow(/is a x25519 key, not Ed25519/);
  });

  it('should read back exactly the statement that was signed, and refuse anything else', () => {
    expect(parseStatement(STATEMENT)).toEqual({
      approvalId: 'approval~run-1~stop-vm',
      digest: 'sha256:abc',
      decider: 'U0ALICE01',
      verdict: 'approve',
      at: '2026-01-02T03:04:05.000Z',
      via: 'terminal as alice',
    });
    expect(parseStatement('{"type":"capi-chatops.decision","v":1}')).toHaveProperty('problem');
    expect(parseStatement(STATEMENT.replace('"v":1', '"v":1,"extra":true'))).toHaveProperty('problem');
  });
});
