/**
 * A fresh decision key pair for a development stack (the playground, the demo, the benchmarks): what a
 * deployment makes once with openssl (README, "Security"), made at start and gone with the stack's files.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Writes `decision.key` (mode 0600: serve refuses a key others can read) and `decision.pub` into `dir`. */
export async function writeDecisionKey(dir: string): Promise<{ privateFile: string; publicFile: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateFile = path.join(dir, 'decision.key');
  const publicFile = path.join(dir, 'decision.pub');
  await writeFile(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await writeFile(publicFile, publicKey.export({ type: 'spki', format: 'pem' }));
  return { privateFile, publicFile };
}
