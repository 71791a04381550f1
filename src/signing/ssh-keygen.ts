/**
 * A terminal decision is signed by the operator's own SSH key, with the system's `ssh-keygen -Y sign`: it
 * reads the key (asking for its passphrase on the terminal, or using ssh-agent when given the .pub file),
 * so this process never holds the private key.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CapiError, ErrorCode } from '../errors.js';
import { DECISION_NAMESPACE, type DecisionSigner } from './statement.js';

/** The keys tried, in order, when `--key` is not given (ssh's own default order, FIDO keys aside). */
const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

/** `--key` when given, else the first of ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exists. */
export function signingKeyFile(given: string | undefined, home = os.homedir()): string {
  if (given !== undefined) return path.resolve(given);
  for (const name of DEFAULT_KEYS) {
    const file = path.join(home, '.ssh', name);
    if (existsSync(file)) return file;
  }
  throw new CapiError(
    ErrorCode.NotAllowed,
    `no SSH key to sign the decision with: none of ${DEFAULT_KEYS.map((k) => `~/.ssh/${k}`).join(', ')} exists; pass --key FILE (the key whose public half is listed for you in the deployment's allowed_signers). Nothing was done.`,
  );
}

export function sshKeygenSigner(keyFile: string): DecisionSigner {
  return {
    sign: (statement) =>
      new Promise((resolve, reject) => {
        const child = spawn('ssh-keygen', ['-q', '-Y', 'sign', '-f', keyFile, '-n', DECISION_NAMESPACE], {
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
        });
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
        });
        child.once('error', (e) =>
          reject(
            new CapiError(
              ErrorCode.NotAllowed,
              `cannot run ssh-keygen to sign the decision (${e.message}); install openssh-client. Nothing was done.`,
            ),
          ),
        );
        child.once('close', (code) => {
          if (code === 0 && out.includes('-----BEGIN SSH SIGNATURE-----')) {
            resolve({ statement, signer: 'ssh', signature: out.trim() });
            return;
          }
          const said = err.trim().split('\n').at(-1) ?? '';
          reject(
            new CapiError(
              ErrorCode.NotAllowed,
              `ssh-keygen could not sign the decision with ${keyFile}${said !== '' ? `: ${said}` : ''}. Nothing was done.`,
            ),
          );
        });
        child.stdin.end(statement);
      }),
  };
}
