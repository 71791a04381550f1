/**
 * The terminal as a front on the queue: the same RunService the Slack front uses, so a run started
 * here is served by the agents, shows in `/capi status`, and is approved by the same people.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CapiError, ErrorCode } from '../errors.js';
import { describeRefusal, unconfirmedNotice } from '../fronts/format.js';
import { renderMarkdown } from '../fronts/postmortem.js';
import { terminalText } from '../fronts/sanitize.js';
import { createTerminalTimeline } from '../fronts/terminal.js';
import type { RunRecord, RunService } from '../service/run-service.js';
import { signingKeyFile, sshKeygenSigner } from '../signing/ssh-keygen.js';
import type { DecisionSigner, SignedDecision } from '../signing/statement.js';
import { EXIT_CODES } from './run.js';
import { type Terminal, type TerminalSession, withRunService } from './session.js';
import { isListed } from './terminal-identity.js';

/** Prints a run's timeline from its start and keeps printing until it finishes; returns its exit code. */
async function followRun(service: RunService, runId: string, verbose: boolean): Promise<number> {
  const print = createTerminalTimeline(process.stdout, { verbose });
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  try {
    for await (const entry of service.followTimeline(runId, '0', abort.signal)) {
      print(entry.event);
      if (entry.event.type === 'approval.requested') {
        process.stdout.write(
          `    waiting for an approver (Slack, or an approver's terminal: capi-chatops decide ${entry.event.approvalId} approve)\n`,
        );
      }
      if (entry.event.type === 'run.finished') return EXIT_CODES[entry.event.status];
    }
  } finally {
    process.off('SIGINT', stop);
  }
  process.stdout.write(`stopped following ${runId}; the run goes on (capi-chatops follow ${runId})\n`);
  return 0;
}

/** The same rule as /capi: runbooks that can change the cloud, and cancels, are for CAPI_OPERATORS. */
function notAnOperator(person: { unixUser: string; userId: string }, what: string): CapiError {
  return new CapiError(
    ErrorCode.NotAllowed,
    `refused: ${person.unixUser} (Slack user ${person.userId}) is not in CAPI_OPERATORS, who ${what}; read-only runbooks, status, follow and timeline are open to everyone`,
  );
}

export async function submitCommand(
  opts: {
    readonly runbook: string;
    readonly args: readonly string[];
    readonly siteFiles: readonly string[];
    readonly on?: string;
    readonly follow: boolean;
    readonly verbose: boolean;
  },
  terminal: Terminal,
): Promise<number> {
  return withRunService(terminal, 'act', opts.siteFiles, async (service, session) => {
    const person = session.identify(terminal.unixUser());
    const readOnly = service.runbooks().find((rb) => rb.name === opts.runbook)?.readOnly === true;
    if (!readOnly && !(await isListed(person, session.operators))) {
      throw notAnOperator(person, 'may start runs that can change the cloud');
    }
    const site = opts.on ?? onlySite(service);
    const result = await service.start({
      runbook: opts.runbook,
      args: opts.args,
      site,
      requestedBy: person.userId,
      via: person.via,
    });
    const record = result.record;
    process.stdout.write(
      result.kind === 'joined'
        ? `run id: ${record.runId} (${record.runbook} on ${record.site}, ${record.status}): the same read-only run was already going, requested by ${record.requestedBy}; joined it\n`
        : `run id: ${record.runId} (${record.runbook} on ${record.site}, queued)\n`,
    );
    return opts.follow ? await followRun(service, record.runId, opts.verbose) : 0;
  });
}

function onlySite(service: RunService): string {
  const names = service.siteNames();
  if (names.length === 1) return names[0] as string;
  throw new CapiError(
    ErrorCode.ConfigInvalid,
    names.length === 0
      ? 'no site profile: pass --site FILE or set SITE_FILE'
      : `several sites are configured (${names.join(', ')}): say which with --on SITE`,
  );
}

export function followCommand(runId: string, verbose: boolean, terminal: Terminal): Promise<number> {
  return withRunService(terminal, 'read', [], (service) => followRun(service, runId, verbose));
}

export function statusCommand(runId: string | undefined, terminal: Terminal): Promise<number> {
  return withRunService(terminal, 'read', [], async (service) => {
    if (runId !== undefined) {
      const record = await service.getRun(runId);
      if (!record)
        throw new CapiError(ErrorCode.RunNotFound, `no run ${runId} (capi-chatops status lists them)`);
      process.stdout.write(`${describeRun(record)}\n`);
      for (const a of await service.pendingApprovals(runId)) {
        process.stdout.write(
          `${terminalText(
            `  waiting for approval ${a.approvalId}: ${a.request.summary} (expires ${a.expiresAt})`,
          )}\n`,
        );
      }
      return 0;
    }
    for (const site of service.siteNames()) {
      for (const h of await service.holds(site)) {
        process.stdout.write(
          `${terminalText(`site ${site} HELD by run ${h.runId} since ${h.heldAt}: ${h.message} (capi-chatops release ${site} --reason TEXT once checked)`)}\n`,
        );
      }
    }
    const runs = await service.listRuns({ limit: 20 });
    if (runs.length === 0) process.stdout.write('no runs yet\n');
    for (const r of runs) process.stdout.write(`${describeRun(r)}\n`);
    return 0;
  });
}

function describeRun(r: RunRecord): string {
  const step = r.currentStep ? ` at ${r.currentStep}` : '';
  const cancel = r.cancelRequestedBy ? ` (cancel asked by ${r.cancelRequestedBy})` : '';
  const message = r.message ? `: ${r.message}` : '';
  const via = r.requestedVia ? ` via ${r.requestedVia}` : '';
  // Names, messages and who asked come from the cloud and Slack: nothing in them may drive the terminal.
  return terminalText(
    `run id: ${r.runId}  ${r.status}${step}  ${r.runbook} on ${r.site}, by ${r.requestedBy}${via}, ${r.createdAt}${cancel}${message}`,
  );
}

export function timelineCommand(runId: string, terminal: Terminal): Promise<number> {
  return withRunService(terminal, 'read', [], async (service) => {
    const entries = await service.readTimeline(runId);
    if (entries.length === 0) throw new CapiError(ErrorCode.RunNotFound, `run ${runId} has no timeline`);
    process.stdout.write(renderMarkdown(entries));
    return 0;
  });
}

/**
 * Writes a run's postmortem before its retention runs out: `<run>.md` (the timeline as Markdown) and
 * `<run>.json` (the record, every approval with its decision, every destructive attempt, every event).
 */
export function exportCommand(runId: string, outDir: string, terminal: Terminal): Promise<number> {
  return withRunService(terminal, 'read', [], async (service) => {
    const archive = await service.archiveRun(runId);
    if (!archive) {
      throw new CapiError(
        ErrorCode.RunNotFound,
        `no run ${runId}: a wrong id, or it finished longer ago than RUN_RETENTION and has expired (capi-chatops status lists runs)`,
      );
    }
    const { record, approvals, attempts, timeline, expiresInMs } = archive;
    const exported = {
      format: 'capi-chatops-run/1',
      exportedAt: new Date().toISOString(),
      record,
      approvals,
      attempts,
      timeline,
    };
    await mkdir(outDir, { recursive: true });
    const md = path.join(outDir, `${runId}.md`);
    const json = path.join(outDir, `${runId}.json`);
    await writeFile(md, renderMarkdown(timeline));
    await writeFile(json, `${JSON.stringify(exported, null, 2)}\n`);
    const expiry =
      expiresInMs !== null
        ? `it expires from Redis on ${new Date(Date.now() + expiresInMs).toISOString()}`
        : 'it does not expire yet (not finished)';
    process.stdout.write(`wrote ${md} and ${json}; ${expiry}\n`);
    return 0;
  });
}

export function cancelCommand(runId: string, terminal: Terminal): Promise<number> {
  return withRunService(terminal, 'act', [], async (service, session) => {
    const person = session.identify(terminal.unixUser());
    if (!(await isListed(person, session.operators))) throw notAnOperator(person, 'may cancel runs');
    const record = await service.cancel(runId, person.userId, person.via);
    process.stdout.write(
      `cancel requested for run ${record.runId} (${record.status}); its agent stops it now\n`,
    );
    if (record.unconfirmed !== undefined) {
      process.stderr.write(`${unconfirmedNotice('cancel', record.unconfirmed)}\n`);
    }
    return 0;
  });
}

/**
 * Frees a site held after a run ended OUTCOME UNKNOWN, once an operator has checked by hand what its command
 * did; the reason (what was checked) is required and audited. Operators only, like cancel.
 */
export function releaseCommand(
  opts: { readonly site: string; readonly reason: string },
  terminal: Terminal,
): Promise<number> {
  return withRunService(terminal, 'act', [], async (service, session) => {
    const person = session.identify(terminal.unixUser());
    if (!(await isListed(person, session.operators))) {
      throw notAnOperator(person, 'may release a site held after an unknown outcome');
    }
    const released = await service.release(opts.site, person.userId, opts.reason, person.via);
    if (released.length === 0) {
      process.stdout.write(`site ${terminalText(opts.site)} is not held: nothing to release\n`);
      return 1;
    }
    for (const h of released) {
      process.stdout.write(
        `${terminalText(`released site ${opts.site} from run ${h.runId} (attempt ${h.attemptId}: ${h.command}), checked by hand: ${opts.reason}`)}\n`,
      );
    }
    return 0;
  });
}

/**
 * Signs with the operator's own key, then checks at once that the deployment's allowed_signers accepts the
 * signature for this person, as every agent will: a decision no agent would accept is not recorded at all.
 */
function checkedSigner(session: TerminalSession, userId: string, keyFile: string): DecisionSigner {
  const { allowedSigners } = session;
  if (allowedSigners === undefined) {
    throw new CapiError(
      ErrorCode.NotAllowed,
      `${session.policyFile} sets no CAPI_ALLOWED_SIGNERS, so no agent could verify a decision signed here; decide in Slack, or ask whoever runs capi-chatops to list your SSH key for ${userId}. Nothing was done.`,
    );
  }
  const signer = sshKeygenSigner(keyFile);
  return {
    async sign(statement): Promise<SignedDecision> {
      const signed = await signer.sign(statement);
      const checked = allowedSigners.verify(userId, statement, signed.signature);
      if (!checked.ok) {
        throw new CapiError(
          ErrorCode.NotAllowed,
          `refused: ${checked.why}; the agents would refuse this decision. Sign with the key listed for you (--key FILE), or ask whoever runs capi-chatops to add your public key for ${userId} to ${allowedSigners.source}. Nothing was done.`,
        );
      }
      return signed;
    },
  };
}

export function decideCommand(
  opts: {
    readonly approvalId: string;
    readonly verdict: string;
    /** Why, in the decider's words: signed, stored with the decision and audited. */
    readonly reason?: string;
    /** The SSH key to sign with (default ~/.ssh/id_ed25519, id_ecdsa, id_rsa). */
    readonly key?: string;
  },
  terminal: Terminal,
): Promise<number> {
  if (opts.verdict !== 'approve' && opts.verdict !== 'deny') {
    throw new CapiError(ErrorCode.ConfigInvalid, `say approve or deny, not '${opts.verdict}'`);
  }
  return withRunService(terminal, 'act', [], async (service, session) => {
    const person = session.identify(terminal.unixUser());
    const signer = checkedSigner(session, person.userId, signingKeyFile(opts.key));
    // No group counts here: a terminal cannot vouch for a membership (the agent counts a group only in a
    // decision serve signed after asking Slack itself), so only an approver listed by user id decides here.
    const result = await service.decide(
      opts.approvalId,
      { userId: person.userId, groupIds: [] },
      opts.verdict === 'approve',
      person.via,
      { signer, ...(opts.reason !== undefined ? { reason: opts.reason } : {}) },
    );
    if (result.unconfirmed !== undefined) {
      const what = opts.verdict === 'approve' ? 'approval' : 'denial';
      process.stderr.write(`${unconfirmedNotice(what, result.unconfirmed)}\n`);
    }
    switch (result.outcome) {
      case 'decided':
        process.stdout.write(`${opts.verdict === 'approve' ? 'approved' : 'denied'}: the run continues\n`);
        return 0;
      case 'voted':
        process.stdout.write(
          `approval counted: ${result.approval.votes?.length ?? 0} of ${result.approval.request.quorum ?? 1} approvers; the step waits for the others\n`,
        );
        return 0;
      case 'already_voted':
        process.stdout.write(
          `your approval was already counted (${result.approval.votes?.length ?? 0} of ${result.approval.request.quorum ?? 1}); another approver must add theirs\n`,
        );
        return 1;
      case 'already_decided':
      case 'expired': {
        const d = result.approval.decision;
        process.stdout.write(
          `already decided: ${d?.approved ? 'approved' : d?.reason === 'expired' ? 'expired' : 'denied'} by ${d?.by} at ${d?.at}\n`,
        );
        return 1;
      }
      case 'superseded':
        process.stderr.write(
          `superseded: this request was replaced (${result.approval.superseded?.why === 'stale' ? 'it was approved too long ago' : 'the action changed'}); decide the newer request (capi-chatops status RUN lists it)\n`,
        );
        return 1;
      case 'refused': {
        const viaGroup =
          result.refusal.kind === 'not_an_approver' &&
          result.refusal.approvers.some((id) => id.startsWith('S'))
            ? ' (a user group counts only for a decision taken in Slack; from a terminal, only an approver listed by user id decides)'
            : '';
        process.stderr.write(`refused: ${describeRefusal(result.refusal)}${viaGroup}\n`);
        // The thread and the postmortem show a refused decision, as they do for a refused click.
        await service.recordRefusal(opts.approvalId, person.userId, describeRefusal(result.refusal));
        return 3;
      }
      case 'not_found':
        process.stderr.write(
          `no approval ${opts.approvalId} (capi-chatops status RUN lists a run's pending ones)\n`,
        );
        return 2;
    }
  });
}
