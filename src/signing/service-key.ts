/**
 * serve's decision key: an Ed25519 key pair. serve signs every decision taken in Slack with the private key
 * (CAPI_DECISION_SIGNING_KEY), a file only the service account can read; every agent verifies with the
 * public key (CAPI_DECISION_VERIFY_KEY). Whoever can write to Redis but cannot read that file cannot make a
 * Slack decision the agent accepts.
 *
 * Make one with: openssl genpkey -algorithm ed25519 -out decision.key
 *                openssl pkey -in decision.key -pubout -out decision.pub
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { CapiError, ErrorCode } from '../errors.js';
import type { DecisionSigner } from './statement.js';

const HOW_TO_MAKE =
  'make one with `openssl genpkey -algorithm ed25519 -out decision.key` and its public half with `openssl pkey -in decision.key -pubout -out decision.pub`';

/**
 * The private key, refused unless it is an Ed25519 PEM that no group or other account can read: a key others
 * can read signs for whoever reads it.
 */
export async function loadSigningKey(file: string): Promise<KeyObject> {
  const info = await stat(file).catch((err: unknown) => {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `CAPI_DECISION_SIGNING_KEY: cannot read ${file} (${(err as Error).message}); ${HOW_TO_MAKE}`,
    );
  });
  if ((info.mode & 0o077) !== 0) {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `CAPI_DECISION_SIGNING_KEY: ${file} can be read by other accounts (mode ${(info.mode & 0o777).toString(8)}): chmod 600 it and make the service account its owner`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(await readFile(file));
  } catch {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `CAPI_DECISION_SIGNING_KEY: ${file} is not a PEM private key; ${HOW_TO_MAKE}`,
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `CAPI_DECISION_SIGNING_KEY: ${file} is a ${key.asymmetricKeyType ?? '?'} key, not Ed25519; ${HOW_TO_MAKE}`,
    );
  }
  return key;
}

/** serve's public key, as the agents are configured with it. */
export async function loadVerifyKey(file: string): Promise<KeyObject> {
  let key: KeyObject;
  try {
    key = createPublicKey(await readFile(file));
  } catch (err) {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `CAPI_DECISION_VERIFY_KEY: ${file} is not a PEM public key (${(err as Error).message}); it is serve's public key: openssl pkey -in decision.key -pubout`,
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new CapiError(
      ErrorCode.ConfigInvalid,
      `CAPI_DECISION_VERIFY_KEY: ${file} is a ${key.asymmetricKeyType ?? '?'} key, not serve's Ed25519 public key`,
    );
  }
  return key;
}

export function serviceSigner(privateKey: KeyObject): DecisionSigner {
  return {
    sign: async (statement) => ({
      statement,
      signer: 'service',
      signature: sign(null, Buffer.from(statement, 'utf8'), privateKey).toString('base64'),
    }),
  };
}

export function verifyServiceSignature(publicKey: KeyObject, statement: string, signature: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signature)) return false;
  try {
    return verify(null, Buffer.from(statement, 'utf8'), publicKey, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}
