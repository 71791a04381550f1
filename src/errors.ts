/**
 * One errors module for the whole product (bolt-js style): every error an operator can meet has a
 * string code and a message that says how to fix it. Unknown throwables are wrapped by asCodedError.
 */
export const ErrorCode = {
  ConfigInvalid: 'capi_config_invalid',
  SiteProfileInvalid: 'capi_site_profile_invalid',
  RunbookInvalid: 'capi_runbook_invalid',
  RunbookNotFound: 'capi_runbook_not_found',
  ParamInvalid: 'capi_param_invalid',
  ExpressionSyntax: 'capi_expression_syntax',
  ExpressionEval: 'capi_expression_eval',
  SshConnect: 'capi_ssh_connect',
  SshHostKeyMismatch: 'capi_ssh_host_key_mismatch',
  SshExec: 'capi_ssh_exec',
  SshOutputTooLarge: 'capi_ssh_output_too_large',
  OutputParse: 'capi_output_parse',
  KubeconfigRefused: 'capi_kubeconfig_refused',
  RemoteKnownError: 'capi_remote_known_error',
  VerifyFailed: 'capi_verify_failed',
  RunIdInvalid: 'capi_run_id_invalid',
  RunExists: 'capi_run_exists',
  RunNotFound: 'capi_run_not_found',
  RunFinished: 'capi_run_finished',
  StoredDataInvalid: 'capi_stored_data_invalid',
  TargetBusy: 'capi_target_busy',
  NotAllowed: 'capi_not_allowed',
  /** A read-only run past its per-person or per-site limit (CAPI_READONLY_PER_PERSON, CAPI_READONLY_PER_SITE). */
  LimitReached: 'capi_limit_reached',
  RunFenced: 'capi_run_fenced',
  AttemptRecorded: 'capi_attempt_recorded',
  JumphostAhead: 'capi_jumphost_fence_ahead',
  NotReplicated: 'capi_not_replicated',
  Unknown: 'capi_unknown',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface CodedError extends Error {
  code: ErrorCode;
}

export class CapiError extends Error implements CodedError {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A config value (env or site profile) failed validation; `issues` name each field and its fix. */
export class ConfigError extends CapiError {
  constructor(
    code: typeof ErrorCode.ConfigInvalid | typeof ErrorCode.SiteProfileInvalid,
    readonly source: string,
    readonly issues: readonly string[],
  ) {
    super(code, `${source} is invalid:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
  }
}

/** A runbook file is refused at load time: names the file, the path inside it and what is wrong. */
export class RunbookError extends CapiError {
  constructor(
    readonly file: string,
    readonly issues: readonly string[],
  ) {
    super(
      ErrorCode.RunbookInvalid,
      `runbook ${file} is invalid:\n${issues.map((i) => `  - ${i}`).join('\n')}`,
    );
  }
}

/** A runbook parameter was refused before any connection was opened. */
export class ParamError extends CapiError {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(ErrorCode.ParamInvalid, message);
  }
}

export class SshError extends CapiError {}

export class HostKeyMismatchError extends SshError {
  constructor(
    readonly host: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      ErrorCode.SshHostKeyMismatch,
      `refusing to connect to ${host}: its host key is ${actual} but JUMPHOST_HOST_KEY pins ${expected}. ` +
        'If the jumphost was rebuilt, verify the new key out of band (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the host) and update the pin.',
    );
  }
}

/**
 * This agent no longer owns the run: another agent took it over (its fencing token is newer) or this
 * agent lost BullMQ's job lock. Nothing more may be written or sent for the run from here.
 */
export class RunFencedError extends CapiError {
  constructor(
    readonly runId: string,
    /** What ended this agent's hold on the run, in a few words. */
    readonly why: string,
  ) {
    super(
      ErrorCode.RunFenced,
      `run ${runId}: this agent no longer owns the run (${why}); it stops without writing or sending anything more`,
    );
  }
}

/**
 * The jumphost refused a command of this run: it has seen a newer owner's fencing token (`seen`) than this
 * agent's (`token`). Nothing of the command ran. Usually another agent took the run over; when Redis still
 * names this agent the owner, it is JumphostAheadError instead.
 */
export class JumphostFencedError extends RunFencedError {
  constructor(
    runId: string,
    readonly token: number,
    readonly seen: number,
  ) {
    super(runId, `the jumphost refused the command: token ${token} < ${seen}`);
  }
}

/**
 * The jumphost refused a command of the run's rightful owner: Redis names this agent the owner, but the
 * jumphost has seen a newer token for the run, which only a Redis that lost writes (or whose clock went back)
 * can explain. Nothing of the command ran; the run ends with this message.
 */
export class JumphostAheadError extends CapiError {
  constructor(
    readonly runId: string,
    readonly token: number,
    readonly seen: number,
  ) {
    super(
      ErrorCode.JumphostAhead,
      `the jumphost refused the command: it has seen a newer owner's fencing token for run ${runId} (${seen}) than this agent's (${token}), while Redis names this agent the run's owner. Redis has lost writes (restarted from an older snapshot, restored from a backup, or failed over onto a replica that lagged) or its host's clock went back. Nothing of this command ran and the run stops here. Check what Redis lost (INFO persistence, INFO replication) and the Redis hosts' clocks, then start a new run if it is still needed: a new run has its own token on the jumphost (~/.capi-chatops/fence/<run>)`,
    );
  }
}

/**
 * The jumphost refused a destructive send: the step's attempt marker is already there, so an earlier send
 * of this step reached the jumphost (its attempt record in Redis was lost since). Nothing of the step ran.
 */
export class AttemptOnRecordError extends CapiError {
  readonly runId: string;
  readonly slot: string;
  /** The marker's path on the jumphost (under the jumphost user's home). */
  readonly marker: string;
  /** When the first send was made (UTC, the jumphost's clock); absent when its marker has no time. */
  readonly sentAt?: string;
  /** The action digest of the first send, when its marker says. */
  readonly digest?: string;

  constructor(found: {
    readonly runId: string;
    readonly slot: string;
    readonly marker: string;
    readonly sentAt?: string;
    readonly digest?: string;
  }) {
    super(
      ErrorCode.AttemptRecorded,
      `run ${found.runId}: the jumphost refused to send ${found.slot} again: an earlier send is on record there (${found.marker}, sent ${found.sentAt ?? 'at an unknown time'}); nothing was sent`,
    );
    this.runId = found.runId;
    this.slot = found.slot;
    this.marker = found.marker;
    if (found.sentAt !== undefined) this.sentAt = found.sentAt;
    if (found.digest !== undefined) this.digest = found.digest;
  }
}

export function isCodedError(err: unknown): err is CodedError {
  return err instanceof Error && typeof (err as Partial<CodedError>).code === 'string';
}

export function asCodedError(err: unknown): CodedError {
  if (isCodedError(err)) return err;
  if (err instanceof Error) return new CapiError(ErrorCode.Unknown, err.message, { cause: err });
  return new CapiError(ErrorCode.Unknown, String(err));
}
