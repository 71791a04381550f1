/**
 * The decision keys a process holds, loaded once at start: serve's signing key (serve only), serve's
 * public key and the allowed_signers file (every agent, to verify). serve's own agent verifies with the
 * public half of serve's key unless CAPI_DECISION_VERIFY_KEY names another.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { AllowedSigners } from './allowed-signers.js';
import { loadAllowedSigners } from './allowed-signers.js';
import { loadSigningKey, loadVerifyKey, serviceSigner } from './service-key.js';
import type { DecisionSigner } from './statement.js';

/** The keys a signed statement may verify with; an agent without one accepts no decision of that kind. */
export interface DecisionVerifiers {
  /** serve's public key (CAPI_DECISION_VERIFY_KEY): decisions taken in Slack. */
  readonly service?: KeyObject;
  /** The operators' SSH keys by Slack user id (CAPI_ALLOWED_SIGNERS): decisions taken at a terminal. */
  readonly allowedSigners?: AllowedSigners;
}

export interface DecisionKeys {
  /** serve's signer for decisions taken in Slack; absent in an agent-only process. */
  readonly signer?: DecisionSigner;
  readonly verifiers: DecisionVerifiers;
}

export interface DecisionKeyFiles {
  readonly signingKeyFile?: string;
  readonly verifyKeyFile?: string;
  readonly allowedSignersFile?: string;
}

export async function loadDecisionKeys(files: DecisionKeyFiles): Promise<DecisionKeys> {
  const privateKey =
    files.signingKeyFile !== undefined ? await loadSigningKey(files.signingKeyFile) : undefined;
  const service =
    files.verifyKeyFile !== undefined
      ? await loadVerifyKey(files.verifyKeyFile)
      : privateKey !== undefined
        ? createPublicKey(privateKey)
        : undefined;
  const allowedSigners =
    files.allowedSignersFile !== undefined ? await loadAllowedSigners(files.allowedSignersFile) : undefined;
  return {
    ...(privateKey !== undefined ? { signer: serviceSigner(privateKey) } : {}),
    verifiers: {
      ...(service !== undefined ? { service } : {}),
      ...(allowedSigners !== undefined ? { allowedSigners } : {}),
    },
  };
}
