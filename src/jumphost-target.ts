/**
 * Where the jumphost is and how it proves itself: what the configuration produces (env and site profile) and
 * the SSH adapter connects to. Here, below both, so that configuration never imports the adapter.
 */
export interface JumphostTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly privateKeyPath: string;
  /** OpenSSH fingerprint, `SHA256:<base64 without padding>`. */
  readonly hostKey: string;
}
