import { ErrorCode, HostKeyMismatchError, SshError } from '../errors.js';
import type { JumphostTarget } from '../jumphost-target.js';

/** A failed connection to the jumphost as the operator needs it: what went wrong, and what to check or change. */
export function connectError(
  err: Error & { level?: string; code?: string },
  target: JumphostTarget,
  where: string,
  readyTimeoutMs: number,
  presentedKey: string | undefined,
): Error {
  if (presentedKey !== undefined && presentedKey !== target.hostKey) {
    return new HostKeyMismatchError(`${target.host}:${target.port}`, target.hostKey, presentedKey);
  }
  const cause = { cause: err };
  if (err.code === 'ECONNREFUSED') {
    return new SshError(
      ErrorCode.SshConnect,
      `cannot connect to ${where}: connection refused. Check the jumphost host and port, and that sshd is running there.`,
      cause,
    );
  }
  if (err.level === 'client-authentication') {
    return new SshError(
      ErrorCode.SshConnect,
      `${where} did not accept the key ${target.privateKeyPath}: add its public key to ~${target.user}/.ssh/authorized_keys on the jumphost, or fix the user name.`,
      cause,
    );
  }
  if (err.level === 'client-timeout') {
    return new SshError(
      ErrorCode.SshConnect,
      `no SSH handshake with ${where} within ${readyTimeoutMs} ms: check that the host is reachable from here (firewall, VPN) and that the port runs sshd.`,
      cause,
    );
  }
  return new SshError(
    ErrorCode.SshConnect,
    `SSH connection to ${where} failed: ${err.message}${err.code ? ` (${err.code})` : ''}. Check the jumphost host, port and network path.`,
    cause,
  );
}
