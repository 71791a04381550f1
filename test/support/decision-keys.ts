/**
 * serve's decision key pair for tests, made once per test process: the RunService of a harness signs with
 * it, in-process agents verify with it, and spawned `agent`/`serve` processes get the files.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DecisionJudge } from '../../src/runs/judge.js';
import { serviceSigner } from '../../src/signing/service-key.js';
import type { DecisionSigner } from '../../src/signing/statement.js';

export interface TestDecisionKeys {
  readonly signer: DecisionSigner;
  readonly publicKey: KeyObject;
  /** PEM files, the private one mode 0600: CAPI_DECISION_SIGNING_KEY and CAPI_DECISION_VERIFY_KEY. */
  readonly privateFile: string;
  readonly publicFile: string;
}

let keys: TestDecisionKeys | undefined;

export function testDecisionKeys(): TestDecisionKeys {
  if (keys !== undefined) return keys;
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'capi-decision-keys-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const privateFile = path.join(dir, 'decision.key');
  const publicFile = path.join(dir, 'decision.pub');
  writeFileSync(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(publicFile, publicKey.export({ type: 'spki', format: 'pem' }));
  keys = { signer: serviceSigner(privateKey), publicKey, privateFile, publicFile };
  return keys;
}

/** The judge an in-process agent gets: these approvers, serve's test key, groups trusted unless said. */
export function testJudge(
  approvers: readonly string[],
  more: { readonly allowSelfApproval?: boolean; readonly trustSlackGroups?: boolean } = {},
): DecisionJudge {
  return {
    policy: {
      approvers,
      allowSelfApproval: more.allowSelfApproval ?? false,
      trustSlackGroups: more.trustSlackGroups ?? true,
    },
    verifiers: { service: testDecisionKeys().publicKey },
  };
}

/** The environment a spawned `agent` needs to judge decisions signed with the test key. */
export function decisionEnv(approvers: readonly string[]): Record<string, string> {
  return {
    CAPI_APPROVERS: approvers.join(','),
    CAPI_DECISION_VERIFY_KEY: testDecisionKeys().publicFile,
  };
}
