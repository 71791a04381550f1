import { describe, expect, it } from 'vitest';
import { runRunbook, runToEnd } from '../src/engine/engine.js';
import type { Checkpoint } from '../src/engine/outcome.js';
import { REDACTED } from '../src/redact.js';
import { ofType, recorder, runOptions, scriptedApprovals, testRunbook } from './support/engine.js';
import { ScriptedExecutor } from './support/scripted-executor.js';

/** No shape gives this away: only its capture's name says it is a secret. */
const SECRET = 'Tr0ub4dor-3x';

/** Mints an application credential, passes its secret to a later command, talks about it, asks to use it. */
const MINT = testRunbook(`requires: [openstack]
steps:
  - id: mint
    title: Mint a credential
    run: openstack application credential create capi-ci -f json -c secret -c id
    parse: json
    capture:
      app_secret: out.secret
      cred: out
  - id: announce
    title: Say what was minted
    run: "true"
    decide:
      - when: "true"
        say: "minted {app_secret} for {cred.id}"
  - id: use
    title: Log in with it ({app_secret})
    env:
      SECRET: { value: app_secret, type: os-name }
    destructive: true
    guard:
      - run: "true"
        skip_when: "false"
        say: nothing to rotate
    approval:
      summary: Rotate with {app_secret}
      targets: ["credential {cred.id} / {app_secret}"]
      evidence: ["minted just now"]
    verify:
      run: "true"
      took_effect: "true"
      say: rotated
      check_by_hand: "openstack application credential list"
    run: rotate-with "$SECRET"
`);

const CRED_ID = '5b8d2c1e7f9a4b3c8d6e1f2a3b4c5d6e';

function mintHost() {
  return new ScriptedExecutor([
    ['credential create', { stdout: `{"id": "${CRED_ID}", "secret": "${SECRET}"}\n` }],
    ['rotate-with', { stdout: `rotated with ${SECRET}\n` }],
    ['true', { stdout: '' }],
  ]);
}

describe('captured secrets', () => {
  it('should hand the secret to the command that needs it and keep it out of every event, approval and checkpoint', async () => {
    const executor = mintHost();
    const rec = recorder();
    const approvals = scriptedApprovals(['approve']);
    const checkpoints: Checkpoint[] = [];
    const done = await runToEnd(
      runOptions(MINT, executor, {
        emit: rec.emit,
        approvals,
        onCheckpoint: (cp) => void checkpoints.push(structuredClone(cp)),
      }),
    );
    expect(done.status).toBe('succeeded');
    // The command itself received the real value.
    expect(executor.calls.find((c) => c.script.includes('rotate-with'))?.env.SECRET).toBe(SECRET);
    // Nothing that leaves the engine carries it: events (thread, timeline, logs), the approval, checkpoints.
    expect(JSON.stringify(rec.events)).not.toContain(SECRET);
    expect(JSON.stringify(approvals.requests)).not.toContain(SECRET);
    expect(JSON.stringify(checkpoints)).not.toContain(SECRET);
    expect(ofType(rec.events, 'decision').map((d) => d.message)).toContain(
      `minted ${REDACTED} for ${CRED_ID}`,
    );
    expect(approvals.requests[0]?.targets).toEqual([`credential ${CRED_ID} / ${REDACTED}`]);
    // What operators need stays: the credential id is in the checkpoint, only the secret is masked.
    expect(checkpoints.at(-1)?.captured).toEqual({
      app_secret: REDACTED,
      cred: { id: CRED_ID, secret: REDACTED },
    });
  });

  it('should refuse to send a placeholder when a run resumes after the secret it needs was captured elsewhere', async () => {
    const executor = mintHost();
    const rec = recorder();
    const outcome = await runRunbook(
      runOptions(MINT, executor, {
        emit: rec.emit,
        approvals: scriptedApprovals(['approve']),
        resume: {
          checkpoint: { top: 2, captured: { app_secret: REDACTED, cred: { id: CRED_ID, secret: REDACTED } } },
          reason: 'taken over',
        },
      }),
    );
    expect(outcome.status).toBe('failed');
    expect(executor.sent('rotate-with')).toEqual([]);
    const finished = ofType(rec.events, 'run.finished')[0];
    expect(finished?.message).toContain(
      'app_secret would carry a secret captured before this run moved to another agent',
    );
    expect(finished?.message).toContain('start the run again');
  });
});
