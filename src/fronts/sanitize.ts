/**
 * Text from the cloud (names, CLI errors), from Slack (arguments, user names) or from a command's output is
 * untrusted: it may carry characters that change how the text around it looks. Every front passes such text
 * through here before showing it.
 *
 * - Bidi controls and zero-width or invisible characters are made VISIBLE (`[U+202E]`), never removed: a
 *   target whose name holds one must not look like the target without it, in an approval above all.
 * - For terminals, ANSI/VT escape sequences (colours, cursor moves, screen clears, OSC titles and links) are
 *   removed, and the remaining control characters (CR, backspace, BEL, C1) shown as `^M`-style or `\x9b`, so a
 *   line cannot overwrite or hide what was printed before it, around the y/N prompt above all.
 */

/**
 * Bidi embeddings, overrides and isolates; zero-width spaces and joiners; the BOM; invisible separators,
 * fillers and the tag characters that can smuggle text unseen. Emoji variation selectors are harmless and left.
 */
const INVISIBLE =
  /\u034F|\u180B|\u180C|\u180D|\u180F|[\u00AD\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200F\u2028-\u202E\u2060-\u206F\u3164\uFEFF\uFFA0\uFFF9-\uFFFB]|\u{E0000}|[\u{E0001}-\u{E007F}]/gu;

/** `[U+202E]`: what the character is, in plain ASCII. */
export function codePointLabel(ch: string): string {
  return `[U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}]`;
}

/** Makes every invisible or direction-changing character visible as `[U+XXXX]`. */
export function revealInvisible(text: string): string {
  return text.replace(INVISIBLE, codePointLabel);
}

/**
 * ECMA-48 sequences: CSI (`ESC [` or the one-byte 0x9B) with parameters and a final byte; OSC, DCS, SOS, PM and
 * APC strings up to their terminator (BEL or `ESC \`), or to the end of the line when it never comes; and
 * two-character escapes (`ESC c` resets the screen). Linear: no quantified group is nested.
 */
const ANSI_SEQUENCE =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control sequences is the point
  /(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]?|(?:\u001b[\]PX^_]|[\u0090\u0098\u009d\u009e\u009f])[^\u0007\u001b\u009c]*(?:\u0007|\u001b\\|\u009c)?|\u001b[ -~]?/g;

/** C0 controls but tab and newline, DEL and C1 controls. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

function controlLabel(ch: string): string {
  const code = ch.charCodeAt(0);
  if (code < 0x20) return `^${String.fromCharCode(code + 0x40)}`;
  if (code === 0x7f) return '^?';
  return `\\x${code.toString(16)}`;
}

/** Removes terminal escape sequences (colours, cursor moves, OSC titles and hyperlinks). */
export function stripAnsi(text: string): string {
  return text.replace(ANSI_SEQUENCE, '');
}

/** Shows control characters (but newline and tab) as `^M` or `\x9b`, and invisible ones as `[U+200B]`. */
export function revealControls(text: string): string {
  return revealInvisible(text.replace(CONTROL, controlLabel));
}

/**
 * Text safe to write to a terminal: escape sequences removed, other controls and invisible characters shown.
 * Newlines and tabs are kept (callers print several lines at once).
 */
export function terminalText(text: string): string {
  return revealControls(stripAnsi(text));
}
