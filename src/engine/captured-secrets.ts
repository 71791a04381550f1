/**
 * Secrets a run captured from command output (`capture: app_secret: out`). A later step may need the value
 * itself (to pass it to a command), so the engine keeps it in memory while the run works; but:
 *
 * - every event leaves the engine with every known captured secret replaced by `[REDACTED]`, even where the
 *   secret has no shape redaction would recognise (a short password in a `say:` message, a target);
 * - the checkpoint stored in Redis holds captured values redacted: a secret is never stored in clear. A run
 *   taken over by another agent has lost those secrets, and a command that would receive one is refused
 *   (`lostIn`) rather than sent with the placeholder.
 *
 * A captured string is a secret when its capture's name or the key above it names one (`app_secret`,
 * `{"secret": ...}`), when its step is `sensitive: true`, or when redaction changes it (the parts it hides are
 * learned).
 */
import { isSecretKey, REDACTED, REDACTED_PRIVATE_KEY, redactText } from '../redact.js';

/** Parts shorter than this are not masked in free text: `abc` would hide pieces of ordinary words. */
const MIN_SECRET_LENGTH = 6;
const MARKERS = /\[REDACTED(?: PRIVATE KEY)?\]/;

export class CapturedSecrets {
  private readonly values = new Set<string>();
  /** Longest first, so a secret that contains another is masked whole. */
  private ordered: string[] = [];
  /** Captures whose every string is a secret, however short (a sensitive step's). */
  private readonly secretNames = new Set<string>();

  get size(): number {
    return this.values.size;
  }

  /** Learns the secrets inside one captured value; every string in it when `secret` (a sensitive step's). */
  learn(name: string, value: unknown, secret = false): void {
    if (secret) this.secretNames.add(name);
    this.walk(value, secret || isSecretKey(name));
    this.ordered = [...this.values].sort((a, b) => b.length - a.length);
  }

  private walk(value: unknown, secret: boolean): void {
    if (typeof value === 'string') {
      if (secret) this.add(value);
      for (const part of hiddenParts(value)) this.add(part);
    } else if (Array.isArray(value)) {
      for (const v of value) this.walk(v, secret);
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) this.walk(v, secret || isSecretKey(k));
    }
  }

  private add(text: string): void {
    for (const line of text.split('\n')) {
      const trimmed = line.trim();
      if (trimmed.length >= MIN_SECRET_LENGTH && !MARKERS.test(trimmed)) this.values.add(trimmed);
    }
  }

  /** `text` with every known secret replaced by the marker. */
  mask(text: string): string {
    let out = text;
    for (const secret of this.ordered) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  }

  /** A copy of `value` with every string masked (keys are the engine's own names and stay). */
  maskDeep<T>(value: T): T {
    if (this.values.size === 0) return value;
    return mapStrings(value, (s) => this.mask(s)) as T;
  }

  /** What may be stored of a captured value: known secrets masked, then redacted. */
  storable(name: string, value: unknown): unknown {
    if (isSecretKey(name) || this.secretNames.has(name)) return mapStrings(value, () => REDACTED);
    return mapStrings(this.maskDeep(value), redactText, true);
  }
}

/** True when a value restored from a checkpoint held a secret that was stored as a marker. */
export function holdsMarker(value: unknown): boolean {
  let found = false;
  mapStrings(value, (s) => {
    if (s.includes(REDACTED) || s.includes(REDACTED_PRIVATE_KEY)) found = true;
    return s;
  });
  return found;
}

function mapStrings(value: unknown, f: (s: string) => string, censorSecretKeys = false): unknown {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f, censorSecretKeys));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        censorSecretKeys && isSecretKey(k) && typeof v === 'string' && v !== ''
          ? REDACTED
          : mapStrings(v, f, censorSecretKeys),
      ]),
    );
  }
  return value;
}

/**
 * The parts of `text` that redaction hides. The redacted text is the original with some parts replaced by a
 * marker, so the pieces between markers are found in the original in order, and what lies between them was
 * hidden.
 */
function hiddenParts(text: string): string[] {
  const redacted = redactText(text);
  if (redacted === text) return [];
  const kept = redacted.split(/\[REDACTED(?: PRIVATE KEY)?\]/);
  const parts: string[] = [];
  let pos = 0;
  for (const [i, piece] of kept.entries()) {
    const at = i === 0 ? 0 : piece === '' && i === kept.length - 1 ? text.length : text.indexOf(piece, pos);
    if (at === -1) break;
    if (i > 0) parts.push(text.slice(pos, at));
    pos = at + piece.length;
  }
  return parts;
}
