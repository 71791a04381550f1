/**
 * Secret redaction for free text (command output, chat messages, log lines).
 *
 * Product rule from the source runbooks: no secret is ever printed. `maas list` prints the API key, `vault
 * operator init` prints unseal keys and the root token, kubeconfigs carry client keys and openrc files hold
 * OS_PASSWORD, and all of that can reach Slack or the terminal through a step's output.
 *
 * Design notes:
 * - Labels are kept and only values are replaced (`OS_PASSWORD=[REDACTED]`), so the operator still sees what
 *   was hidden and can tell a redacted value from a missing one.
 * - Everything is line-oriented: the same state machine serves streamed output (one line at a time) and
 *   whole texts, so both views of a step's output hide exactly the same things and keep the same line count.
 * - Every pattern is linear: runs of a character class can only start where the previous character is outside
 *   that class (a negative lookbehind), so no run is rescanned from every offset, and no pattern nests
 *   quantifiers over overlapping classes. Values are delimited by hand rather than by regex for the same reason.
 * - Redacting twice gives the same text as redacting once: markers never match a value pattern, and a value
 *   that is already a marker is left alone.
 */

export const REDACTED = '[REDACTED]';
export const REDACTED_PRIVATE_KEY = '[REDACTED PRIVATE KEY]';

/** Redacts a whole text (any line endings are kept). */
export function redactText(text: string): string {
  return createLineRedactor()(text);
}

/**
 * Returns a redactor for one stream of lines. It is stateful because a PEM private key, a YAML block scalar or
 * a JSON array of unseal keys spans several lines: the label is on one line and the secret on the next ones.
 * Every input line gives exactly one output line. A string holding several lines is also accepted.
 */
export function createLineRedactor(): (line: string) => string {
  const state: RedactorState = {
    pem: false,
    block: undefined,
    table: undefined,
    k8sData: undefined,
    wrapped: false,
    publicPem: false,
  };
  return (line: string): string => {
    if (!line.includes('\n')) return redactLine(state, line);
    return line
      .split('\n')
      .map((part) => redactLine(state, part))
      .join('\n');
  };
}

/**
 * YAML `literal`: a block scalar (`|`, `>`) where every line is value. Otherwise nested `key: value` lines are
 * judged on their own, so `secret:` over `secretName: foo` (a pod volume) does not hide the whole spec.
 */
type Block =
  | { readonly kind: 'yaml'; readonly column: number; readonly literal: boolean }
  | { readonly kind: 'json' };

interface RedactorState {
  /** Inside a `-----BEGIN ... PRIVATE KEY-----` block whose END line has not been seen yet. */
  pem: boolean;
  /** Inside the multi-line value of a secret key (`password: |`, `unseal_keys_b64: [`, `token:` + list). */
  block: Block | undefined;
  /** Inside an openstackclient table: `head` right after its top border, then the columns to hide. */
  table:
    | { readonly phase: 'head' }
    | { readonly phase: 'columns' | 'body' | 'end'; readonly columns: readonly number[] }
    | undefined;
  /** Inside the `data:` of a Kubernetes Secret (`kubectl get secret -o yaml|json`): every value is secret. */
  k8sData: { readonly column: number; readonly json: boolean; readonly plain: boolean } | undefined;
  /** The previous line was one long base64 line: `base64` wraps at 76, and the last piece is short. */
  wrapped: boolean;
  /** Inside a certificate or public key PEM block: public, its base64 lines are left as they are. */
  publicPem: boolean;
}

// Certificates and public keys are deliberately not matched: they are public and operators need to read them.
const PEM_BEGIN = /-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_END = /-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----/g;

/** Whole-token secrets whose shape alone identifies them; replaced entirely. */
const TOKEN_PATTERNS: readonly RegExp[] = [
  // Slack bot/user/app/config/refresh tokens, including rotated `xoxe.xoxp-` ones, and app-level `xapp-` tokens.
  /(?<![\w-])(?:xox[abeoprs](?:\.xox[abeoprs])?|xapp)-[A-Za-z0-9-]{8,}/g,
  // Vault service, batch and recovery tokens.
  /(?<![\w.-])hv[sbr]\.[A-Za-z0-9_-]{20,}/g,
  // Legacy Vault tokens. 24+ base62 characters keep `s.t` and `status.ready` untouched.
  /(?<![\w.-])s\.[A-Za-z0-9]{24,}(?![\w-])/g,
  // JWTs (kubeconfig and service-account tokens): base64url JSON header `eyJ`, payload, optional signature.
  /(?<![\w-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g,
  // Keystone Fernet tokens (`openstack token issue` prints one under the harmless-looking key `id`).
  /(?<![\w-])gAAAAA[A-Za-z0-9_-]{80,}={0,2}/g,
  // MAAS API keys as `maas list` and `maas apikey` print them: consumer:token:secret.
  /(?<![A-Za-z0-9])[A-Za-z0-9]{18}:[A-Za-z0-9]{18}:[A-Za-z0-9]{32}(?![A-Za-z0-9])/g,
  // AWS access key ids (long-term and STS).
  /(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])/g,
];

/** Secrets that follow a label worth keeping: `$1` is kept, the rest of the match is replaced. */
const LABELLED_PATTERNS: readonly RegExp[] = [
  /(?<![\w-])(bearer[ \t]+)[A-Za-z0-9._~+/-]{16,}=*/gi,
  // The password in a URL's user info, e.g. redis://:pw@host or postgres://user:pw@host.
  // The password runs to the LAST `@` before the host: `https://admin:p@ss@host` hides `p@ss`.
  /(?<![\w+.-])([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s/]+(?=@[^\s/@]*(?:[\s/?#]|$))/gi,
];

/**
 * Key names whose value is a secret. A key matches when it ENDS with one of these, so `OS_PASSWORD`,
 * `client_secret` and `x-auth-token` match while `secretName`, `password_expires_at` and `tokens_total` don't.
 */
const SECRET_KEYWORDS =
  'password|passwd|passphrase|secret|token|api[_-]?key|private[_-]?key|secret[_-]?(?:access[_-]?)?key|' +
  'client[_-]key(?:[_-]data)?|\\.key|authorization|(?:unseal|recovery)[_-]keys?(?:[_-](?:b64|hex))?|' +
  // `OS_PASSWORD_INPUT` (openrc's prompt variable), `token_b64`: a secret under a suffix that says how it is held.
  '(?:password|passwd|secret|token)[_-](?:input|b64|base64|hex|value|plain(?:text)?)|' +
  // `openstack credential show`'s `blob` (an EC2 pair or a TOTP seed).
  'blob';

// `$1` opening quote, `$2` key, `$3` closing quote, `$4` separator. A whitespace-only separator is only
// accepted for command-line flags (`--os-password value`); prose such as "the token expired" is left alone.
// The lookbehinds keep shell references such as `$OS_PASSWORD` and `${OS_PASSWORD:?}` readable.
const KEY_VALUE = new RegExp(
  `(?<![\\w.$-])(?<!\\$\\{)(["']?)((?:unseal|recovery)[ \\t]key[ \\t]\\d+|[\\w.-]*?(?:${SECRET_KEYWORDS}))` +
    `(["']?)([ \\t]*[:=][ \\t]*|[ \\t]+)`,
  'gi',
);

const SECRET_KEY = new RegExp(`^[\\w .-]*?(?:${SECRET_KEYWORDS})$`, 'i');

/** True when a field or key name (`OS_PASSWORD`, `botToken`, `client-key-data`) names a secret value. */
export function isSecretKey(name: string): boolean {
  return SECRET_KEY.test(name);
}

// `openstack ... -f table` rows: `| secret | value |`.
const TABLE_ROW = /^([ \t]*\|)([^|\r\n]*)\|([^|\r\n]*)\|/;

/** Values that are placeholders, references or structure, not secrets. */
const NOT_A_SECRET =
  /^(?:|true|false|null|none|nil|~|\*+|<redacted>|redacted|data\+omitted|\$\([^)\r\n]*\)|[|>][-+]?\d?)$/i;
/**
 * Shell references (`$OS_PASSWORD_INPUT`, `${TOKEN:?unset}`, `$1`) are how scripts pass secrets and stay
 * readable. Only upper-case names count: a value such as `$ecr3t` is a password that starts with `$`.
 */
const SHELL_REFERENCE =
  /^(?:\$[A-Z_][A-Z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*(?:[:?#%/^,@+-][^}\s]*)?\}|\$[0-9@*#?])$/;

function isPlaceholder(value: string): boolean {
  return NOT_A_SECRET.test(value) || SHELL_REFERENCE.test(value);
}
const BLOCK_SCALAR = /^[|>][-+]?\d?$/;
const AUTH_SCHEME = /(?:basic|bearer|digest|negotiate|token|ntlm)[ \t]+/iy;
const LINE_START_PREFIX = /^[ \t]*(?:-[ \t]+)?$/;
const YAML_ITEM_PREFIX = /^[ \t]*(?:-(?:[ \t]+|$))?/;
const YAML_MAPPING_ENTRY = /^(?:[\w.-]+|"[^"]*"|'[^']*')[ \t]*:(?:[ \t]|$)/;

function redactLine(state: RedactorState, rawLine: string): string {
  const cr = rawLine.endsWith('\r') ? '\r' : '';
  let line = cr ? rawLine.slice(0, -1) : rawLine;
  if (PUBLIC_PEM_BEGIN.test(line)) state.publicPem = true;
  else if (state.publicPem && PUBLIC_PEM_END.test(line)) state.publicPem = false;
  else if (state.publicPem && /^[ \t]*[A-Za-z0-9+/]+={0,2}[ \t]*$/.test(line)) return line + cr;
  if (!state.pem) {
    line = redactTableLine(state, line);
    line = redactK8sDataLine(state, line);
    const wrapped = state.wrapped;
    state.wrapped = false;
    if (wrapped && WRAPPED_BASE64.test(line.trim())) {
      state.wrapped = line.trim().length >= WRAP_MIN;
      return (/^[ \t]*/.exec(line)?.[0] ?? '') + REDACTED + cr;
    }
  }

  if (state.block?.kind === 'yaml' && !state.pem && !continuesYamlBlock(state.block.column, line)) {
    state.block = undefined;
  }

  let out = '';
  let pos = 0;
  for (;;) {
    if (state.pem) {
      PEM_END.lastIndex = pos;
      const end = PEM_END.exec(line);
      if (end === null) return out + maskPemBody(line.slice(pos)) + cr;
      out += maskPemBody(line.slice(pos, end.index)) + end[0];
      pos = end.index + end[0].length;
      state.pem = false;
      continue;
    }
    PEM_BEGIN.lastIndex = pos;
    const begin = PEM_BEGIN.exec(line);
    const plain = line.slice(pos, begin === null ? line.length : begin.index);
    out += state.block
      ? redactBlockLine(state, plain, pos === 0, begin === null)
      : redactPlain(state, plain, pos === 0, begin === null);
    if (begin === null) return out + cr;
    out += begin[0];
    pos = begin.index + begin[0].length;
    state.pem = true;
  }
}

function maskPemBody(body: string): string {
  if (body.trim() === '') return body;
  const indent = /^[ \t]*/.exec(body)?.[0] ?? '';
  return indent + REDACTED_PRIVATE_KEY;
}

function continuesYamlBlock(column: number, line: string): boolean {
  if (line.trim() === '') return true;
  const indent = /^[ \t]*/.exec(line)?.[0].length ?? 0;
  if (indent > column) return true;
  return indent === column && /^[ \t]*-(?:[ \t]|$)/.test(line);
}

function isMarker(text: string): boolean {
  return text === REDACTED || text === REDACTED_PRIVATE_KEY;
}

/** A line inside a secret's multi-line value: keep indentation and list/array punctuation, hide the rest. */
function redactBlockLine(
  state: RedactorState,
  text: string,
  atLineStart: boolean,
  lastSegment: boolean,
): string {
  const block = state.block;
  if (block?.kind === 'json') {
    const trimmed = text.trim();
    if (trimmed.startsWith(']')) {
      state.block = undefined;
      return text;
    }
    let sawString = false;
    const out = text.replace(/"(?:[^"\\]|\\.)*"/g, (s) => {
      sawString = true;
      return s === `"${REDACTED}"` ? s : `"${REDACTED}"`;
    });
    if (out.replace(/"(?:[^"\\]|\\.)*"/g, '').includes(']')) state.block = undefined;
    if (sawString || trimmed === '' || isMarker(trimmed)) return out;
    const indent = /^[ \t]*/.exec(text)?.[0] ?? '';
    return indent + REDACTED + (trimmed.endsWith(',') ? ',' : '');
  }
  const prefix = YAML_ITEM_PREFIX.exec(text)?.[0] ?? '';
  const content = text.slice(prefix.length).trimEnd();
  if (block?.kind === 'yaml' && !block.literal && YAML_MAPPING_ENTRY.test(content)) {
    return redactPlain(state, text, atLineStart, lastSegment);
  }
  if (content === '' || isMarker(content)) return text;
  return prefix + REDACTED;
}

function redactPlain(state: RedactorState, text: string, atLineStart: boolean, lastSegment: boolean): string {
  if (text === '') return text;
  let out = atLineStart ? redactTableRow(text) : text;
  const kv = redactKeyValues(out, atLineStart);
  out = kv.text;
  for (const pattern of TOKEN_PATTERNS) out = out.replace(pattern, REDACTED);
  for (const pattern of LABELLED_PATTERNS) out = out.replace(pattern, `$1${REDACTED}`);
  for (const pattern of COMMAND_TOOLS.test(out) ? COMMAND_SECRETS : []) {
    out = out.replace(pattern, (whole: string, head: string, value: string) =>
      isPlaceholder(value) || isMarker(value) ? whole : head + REDACTED,
    );
  }
  out = redactBlobs(out);
  if (atLineStart && lastSegment && out.trim() === REDACTED && text.trim().length >= WRAP_MIN) {
    state.wrapped = WRAPPED_BASE64.test(text.trim());
  }
  if (kv.opens !== undefined && lastSegment) state.block = kv.opens;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Secrets without a label: their shape, their column or their place in a Kubernetes Secret says what they are.

/**
 * Secrets passed as a command's positional argument, as a shell trace (`+ vault operator unseal KEY`) or an
 * echoed command line shows them: `$1` is kept, `$2` is the secret (a `$VAR` reference is left readable).
 */
const COMMAND_TOOLS = /vault|sshpass|curl/;
const COMMAND_SECRETS: readonly RegExp[] = [
  /(?<![\w-])(vault[ \t]+(?:operator[ \t]+unseal|login|unwrap)(?:[ \t]+-[\w-]+(?:=\S*)?)*[ \t]+)([^\s=-][^\s=]*)(?=[ \t;|&]|$)/g,
  /(?<![\w-])(sshpass[ \t]+-p[ \t]*)(\S+)/g,
  /(?<![\w-])(curl[ \t][^\n|;&]*?[ \t](?:-u|--user)(?:[ \t]+|=)['"]?[^\s:'"]+:)([^\s'"]+)/g,
];

/**
 * A long run of base64/base64url characters mixing upper case, lower case and digits: an application
 * credential secret (`-f value`), a bare unseal key, a base64 kubeconfig, a token of a shape not listed above.
 * Names (DNS-1123, lower case), UUIDs and hex ids or digests never mix cases, so they stay readable.
 */
const PUBLIC_PEM_BEGIN = /-----BEGIN (?:CERTIFICATE|[A-Z0-9 ]*PUBLIC KEY|X509 CRL|CERTIFICATE REQUEST)-----/;
const PUBLIC_PEM_END = /-----END (?:CERTIFICATE|[A-Z0-9 ]*PUBLIC KEY|X509 CRL|CERTIFICATE REQUEST)-----/;
const BLOB = /(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/=_-])/g;
const WRAPPED_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** `base64` wraps at 76 and `openssl base64` at 64: a line this long that is all base64 may go on. */
const WRAP_MIN = 60;
/** Digests and key fingerprints are public and name what an operator must compare (`SHA256:...` host keys). */
const DIGEST_PREFIX = /(?:sha(?:1|224|256|384|512)|md5)[:=-]$/i;

function redactBlobs(text: string): string {
  return text.replace(BLOB, (blob: string, offset: number) =>
    looksLikeOpaqueSecret(blob) && !DIGEST_PREFIX.test(text.slice(Math.max(0, offset - 8), offset))
      ? REDACTED
      : blob,
  );
}

function looksLikeOpaqueSecret(blob: string): boolean {
  if (!/[A-Z]/.test(blob) || !/[a-z]/.test(blob) || !/[0-9]/.test(blob)) return false;
  if (/^[0-9a-fA-F-]+$/.test(blob)) return false;
  // `/` is standard base64 and `-`/`_` base64url: a run with both alphabets is a path (`/tmp/capi-Xy12.../f`).
  if (blob.includes('/') && /[-_]/.test(blob)) return false;
  if (new Set(blob).size < 12) return false;
  return !isPublicMaterial(blob);
}

/** Base64 of a certificate, a public key or an SSH public key: public, and what an operator checks. */
function isPublicMaterial(b64: string): boolean {
  const head = Buffer.from(b64.slice(0, 64).replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString(
    'latin1',
  );
  if (/^-----BEGIN (?:CERTIFICATE|[A-Z ]*PUBLIC KEY|X509 CRL)/.test(head)) return true;
  return /^\0\0\0.(?:ssh-|ecdsa-|sk-)/s.test(head);
}

/** Is `value` (a Secret's data value) base64 that could hold a secret? Short lower-case words stay. */
function isSecretDataValue(value: string): boolean {
  if (value.length < 4 || !WRAPPED_BASE64.test(value) || value.length % 4 !== 0) return false;
  // A lower-case word (`true`, `iptables` in a ConfigMap's data) is text, not base64 of anything.
  if (/^[a-z]+$/.test(value)) return false;
  return !isPublicMaterial(value);
}

const TABLE_BORDER = /^[ \t]*\+[-=+]+\+[ \t]*$/;
const TABLE_LINE = /^[ \t]*\|.*\|[ \t]*$/;

/**
 * openstackclient's column tables (`ec2 credentials list`: Access | Secret | ...; `credential list`: ... |
 * Data | ...): the secret is in a column whose header, not its row, names it. The header is the first row after
 * the top border, so a Field | Value table's `| secret | ... |` row is never taken for one.
 */
function redactTableLine(state: RedactorState, line: string): string {
  if (TABLE_BORDER.test(line)) {
    // Top border, header separator, bottom border; a border right after a bottom one starts the next table.
    const t = state.table;
    if (t === undefined || t.phase === 'end') state.table = { phase: 'head' };
    else if (t.phase !== 'head')
      state.table = { phase: t.phase === 'columns' ? 'body' : 'end', columns: t.columns };
    return line;
  }
  if (!TABLE_LINE.test(line) || state.table === undefined) {
    state.table = undefined;
    return line;
  }
  const cells = line.split('|');
  if (state.table.phase === 'head') {
    const columns: number[] = [];
    cells.forEach((cell, i) => {
      const name = cell.trim();
      if (i > 0 && i < cells.length - 1 && (isSecretKey(name) || /^(?:data|blob)$/i.test(name)))
        columns.push(i);
    });
    state.table = { phase: 'columns', columns };
    return line;
  }
  const { columns } = state.table;
  if (columns.length === 0) return line;
  return cells
    .map((cell, i) => {
      const value = cell.trim();
      if (!columns.includes(i) || isPlaceholder(value) || isMarker(value)) return cell;
      const lead = /^[ \t]*/.exec(cell)?.[0] ?? '';
      return `${lead}${REDACTED}${' '.repeat(Math.max(cell.length - lead.length - REDACTED.length, 1))}`;
    })
    .join('|');
}

const K8S_DATA_YAML = /^([ \t]*)(data|stringData):[ \t]*$/;
const K8S_DATA_JSON = /^([ \t]*)"(data|stringData)":[ \t]*\{[ \t]*$/;
const YAML_ENTRY = /^([ \t]*)((?:[\w.-]+|"[^"]*"|'[^']*')[ \t]*:[ \t]*)(.*?)[ \t]*$/;
const JSON_ENTRY = /^([ \t]*"(?:[^"\\]|\\.)*"[ \t]*:[ \t]*)"((?:[^"\\]|\\.)*)"(.*)$/;

/**
 * `data:` (base64) and `stringData:` (plain) of a Kubernetes Secret: the keys are whatever the Secret's owner
 * named them (`value` for a CAPI kubeconfig), so values are judged by their place. A `data:` value that
 * decodes to a certificate stays (ca.crt, tls.crt); a ConfigMap's plain words are not base64 and stay too.
 */
function redactK8sDataLine(state: RedactorState, line: string): string {
  const open = state.k8sData;
  if (open === undefined) {
    const yaml = K8S_DATA_YAML.exec(line);
    const json = yaml === null ? K8S_DATA_JSON.exec(line) : null;
    const m = yaml ?? json;
    if (m !== null) {
      state.k8sData = { column: (m[1] ?? '').length, json: json !== null, plain: m[2] === 'stringData' };
    }
    return line;
  }
  if (line.trim() === '') return line;
  const indent = /^[ \t]*/.exec(line)?.[0].length ?? 0;
  if (open.json ? line.trim().startsWith('}') : indent <= open.column) {
    state.k8sData = undefined;
    return redactK8sDataLine(state, line);
  }
  const hide = (value: string) =>
    !isMarker(value) && (open.plain ? !isPlaceholder(value) : isSecretDataValue(value));
  if (open.json) {
    const m = JSON_ENTRY.exec(line);
    return m !== null && hide(m[2] ?? '') ? `${m[1]}"${REDACTED}"${m[3]}` : line;
  }
  const m = YAML_ENTRY.exec(line);
  if (m === null) return line;
  const raw = m[3] ?? '';
  const quoted = /^(["'])(.*)\1$/.exec(raw);
  const value = quoted?.[2] ?? raw;
  if (!hide(value)) return line;
  return `${m[1]}${m[2]}${quoted ? `${quoted[1]}${REDACTED}${quoted[1]}` : REDACTED}`;
}

function redactTableRow(line: string): string {
  const row = TABLE_ROW.exec(line);
  if (row === null) return line;
  const [whole, open = '', keyCell = '', valueCell = ''] = row;
  if (!isSecretKey(keyCell.trim())) return line;
  const value = valueCell.trim();
  if (isPlaceholder(value) || isMarker(value)) return line;
  const lead = /^[ \t]*/.exec(valueCell)?.[0] ?? '';
  // Pad to the original width so the table's columns stay aligned.
  const pad = Math.max(valueCell.length - lead.length - REDACTED.length, valueCell.endsWith(' ') ? 1 : 0);
  return `${open}${keyCell}|${lead}${REDACTED}${' '.repeat(pad)}|${line.slice(whole.length)}`;
}

interface ValueContext {
  /** A YAML/env line whose key starts the line: the value runs to the end of the line. */
  readonly restOfLine: boolean;
  /** The key was quoted on both sides (JSON, Python dict repr): an unquoted value ends at `,`, `}` or `]`. */
  readonly json: boolean;
  /** The key sits inside a quoted string (`-H "X-Auth-Token: ..."`): the value ends at that quote. */
  readonly enclosingQuote: string | undefined;
  readonly colon: boolean;
  readonly keyColumn: number;
}

interface ValueScan {
  readonly end: number;
  /** Undefined when the value is not a secret and stays as it is. */
  readonly replacement: string | undefined;
  readonly opens?: Block;
}

function redactKeyValues(text: string, atLineStart: boolean): { text: string; opens: Block | undefined } {
  let out = '';
  let copied = 0;
  let opens: Block | undefined;
  KEY_VALUE.lastIndex = 0;
  for (let m = KEY_VALUE.exec(text); m !== null; m = KEY_VALUE.exec(text)) {
    const [whole, openQuote = '', key = '', closeQuote = '', separator = ''] = m;
    const keyEnd = m.index + openQuote.length + key.length;
    const colon = separator.includes(':');
    const spaceOnly = !colon && !separator.includes('=');
    if ((spaceOnly && !key.startsWith('-')) || (/^(?:unseal|recovery)[ \t]/i.test(key) && !colon)) {
      KEY_VALUE.lastIndex = keyEnd;
      continue;
    }
    const valueStart = m.index + whole.length;
    let start = valueStart;
    if (/authorization$/i.test(key)) {
      // Keep the scheme so the operator can still tell Basic from Bearer.
      AUTH_SCHEME.lastIndex = valueStart;
      const scheme = AUTH_SCHEME.exec(text);
      if (scheme !== null) start = valueStart + scheme[0].length;
    }
    const scan = scanValue(text, start, {
      restOfLine:
        atLineStart &&
        openQuote === '' &&
        !key.startsWith('-') &&
        LINE_START_PREFIX.test(text.slice(0, m.index)),
      json: openQuote !== '' && closeQuote !== '',
      enclosingQuote: openQuote !== '' && closeQuote === '' ? openQuote : undefined,
      colon,
      keyColumn: m.index + openQuote.length,
    });
    opens = scan.opens;
    if (scan.replacement !== undefined) {
      out += text.slice(copied, start) + scan.replacement;
      copied = scan.end;
    }
    KEY_VALUE.lastIndex = Math.max(scan.end, keyEnd);
  }
  return { text: copied === 0 ? text : out + text.slice(copied), opens };
}

function scanValue(text: string, start: number, ctx: ValueContext): ValueScan {
  if (text.startsWith(REDACTED, start)) return { end: start + REDACTED.length, replacement: undefined };
  if (text.startsWith(REDACTED_PRIVATE_KEY, start)) {
    return { end: start + REDACTED_PRIVATE_KEY.length, replacement: undefined };
  }
  const first = text[start];
  if (first === undefined || text.slice(start).trim() === '') {
    // `password:` with nothing after it: the value is on the following, more indented lines.
    return {
      end: text.length,
      replacement: undefined,
      ...(ctx.colon ? { opens: { kind: 'yaml', column: ctx.keyColumn, literal: false } as const } : {}),
    };
  }
  if (first === '"' || first === "'") {
    const close = findClosingQuote(text, start + 1, first);
    const inner = text.slice(start + 1, close === -1 ? text.length : close);
    if (isPlaceholder(inner.trim()) || isMarker(inner)) {
      return { end: close === -1 ? text.length : close + 1, replacement: undefined };
    }
    // An unclosed quote means the value was cut or spans lines: hide all of what is there.
    if (close === -1) return { end: text.length, replacement: first + REDACTED };
    // The shell joins quoted and bare pieces into one word (`'it'"'"'s'`): the secret runs to the word's end.
    const end = ctx.json ? close + 1 : shellWordEnd(text, close + 1, ctx.enclosingQuote);
    return { end, replacement: first + REDACTED + first };
  }
  if (first === '[' && ctx.colon) {
    const close = text.indexOf(']', start);
    if (close !== -1) return { end: close + 1, replacement: REDACTED };
    // A JSON array (e.g. `"unseal_keys_b64": [`) whose items follow on the next lines.
    const rest = text.slice(start + 1).trim();
    return { end: text.length, replacement: rest === '' ? undefined : REDACTED, opens: { kind: 'json' } };
  }

  let end: number;
  if (ctx.restOfLine) {
    end = text.trimEnd().length;
  } else {
    end = start;
    while (end < text.length) {
      const c = text[end] as string;
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') break;
      if (ctx.json && (c === ',' || c === '}' || c === ']')) break;
      if (c === ctx.enclosingQuote) break;
      end++;
    }
  }
  const value = text.slice(start, end);
  if (isPlaceholder(value)) {
    const opensBlock = ctx.colon && BLOCK_SCALAR.test(value) && text.slice(end).trim() === '';
    return {
      end,
      replacement: undefined,
      ...(opensBlock ? { opens: { kind: 'yaml', column: ctx.keyColumn, literal: true } as const } : {}),
    };
  }
  if (value === '{' && text.slice(end).trim() === '') return { end, replacement: undefined };
  return { end, replacement: REDACTED };
}

function shellWordEnd(text: string, from: number, enclosingQuote: string | undefined): number {
  let i = from;
  while (i < text.length) {
    const c = text[i] as string;
    if (/[\s,;|&)}\]]/.test(c) || c === enclosingQuote) break;
    if (c === '"' || c === "'") {
      const close = findClosingQuote(text, i + 1, c);
      if (close === -1) return text.length;
      i = close + 1;
    } else {
      i++;
    }
  }
  return i;
}

function findClosingQuote(text: string, from: number, quote: string): number {
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && quote === '"') i++;
    else if (c === quote) return i;
  }
  return -1;
}
