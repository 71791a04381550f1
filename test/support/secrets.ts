import { generateKeyPairSync } from 'node:crypto';

// Secret-shaped fixtures for the redaction tests. PEM markers and token-shaped samples are assembled at run time
// so that secret scanners (GitHub push protection, gitleaks and its private-key rule) do not flag the test files.
// They are fake: deterministic characters or keys generated on the spot, never issued by any service.

const pemMarker = (edge: 'BEGIN' | 'END', type: string) => `-----${edge} ${type}PRIVATE KEY-----`;
export const PEM = {
  begin: {
    RSA: pemMarker('BEGIN', 'RSA '),
    EC: pemMarker('BEGIN', 'EC '),
    OPENSSH: pemMarker('BEGIN', 'OPENSSH '),
  },
  end: { RSA: pemMarker('END', 'RSA '), OPENSSH: pemMarker('END', 'OPENSSH ') },
};

const ALNUM = 'AbCdEfGhIjKlMnOpQrStUvWxYz0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ';

/** `length` deterministic alphanumeric characters; a different offset gives a different string. */
export function fake(length: number, offset = 0): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ALNUM[(i * 7 + offset) % ALNUM.length];
  return out;
}

/** A Slack bot token (xoxb-…) in the shape Slack issues them. */
export const slackBot = ['xoxb', '2345678901', '3456789012345', fake(24, 3)].join('-');

/** A freshly generated private key in PEM form: `rsa` is PKCS#1 (BEGIN RSA PRIVATE KEY). */
export function pem(kind: 'rsa' | 'pkcs8' | 'ec' | 'encrypted'): string {
  if (kind === 'ec') {
    return generateKeyPairSync('ec', {
      namedCurve: 'prime256v1',
      privateKeyEncoding: { type: 'sec1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }).privateKey;
  }
  if (kind === 'encrypted') {
    return generateKeyPairSync('ed25519', {
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'not-a-secret' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }).privateKey;
  }
  return generateKeyPairSync('rsa', {
    modulusLength: 1024,
    privateKeyEncoding: { type: kind === 'rsa' ? 'pkcs1' : 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
}
