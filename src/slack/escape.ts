/**
 * The one place untrusted text becomes Slack text. Thread posts, the root message, approvals, ephemeral
 * replies and `/capi status` all go through it, so they escape the same way:
 *
 * - `&`, `<`, `>` are entities: text cannot mention (`<!channel>`, `<@U...>`), link (`<url|label>`) or forge a
 *   `<!date>`.
 * - Bidi controls and zero-width characters are shown as `[U+202E]` (see fronts/sanitize.ts), and other
 *   control characters as `^M`: a name cannot be made to look like another one.
 * - `slackName` puts a name (a target, an argument, a server, LB or cluster name) in a code span, where Slack
 *   applies no `*bold*`, `_italic_`, `~strike~`, makes no link of a bare URL and no mention of `@here`; a
 *   backtick inside it is shown as `[U+0060]` so it cannot close the span.
 */

import { codePointLabel, revealControls, stripAnsi } from '../fronts/sanitize.js';
import { redactText } from '../redact.js';

const ELLIPSIS = '…';

/** Slack's control characters as entities, and invisible or control characters made visible. */
export function escapeSlack(text: string): string {
  return entities(revealControls(stripAnsi(text)));
}

function entities(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** How long one character of raw text is once escaped (escape sequences are stripped before). */
export function escapedLength(ch: string): number {
  if (ch === '&') return 5;
  if (ch === '<' || ch === '>') return 4;
  return revealControls(ch).length;
}

/** The escaped length of `raw`, counting no further than `stopAt`. */
export function escapedTotal(raw: string, stopAt: number): number {
  let n = 0;
  for (const ch of raw) {
    n += escapedLength(ch);
    if (n > stopAt) return n;
  }
  return n;
}

/**
 * Escapes `raw` and cuts it to at most `max` characters, marking a cut with an ellipsis. Cuts fall between
 * code points and never inside an entity or a `[U+XXXX]`, so the result is always valid Slack text.
 */
export function clipEscaped(input: string, max: number): string {
  const raw = stripAnsi(input);
  let out = '';
  let used = 0;
  let i = 0;
  for (const ch of raw) {
    const len = escapedLength(ch);
    if (used + len > max - ELLIPSIS.length) {
      // Does the rest still fit without an ellipsis?
      const rest = raw.slice(i);
      if (used + escapedTotal(rest, max - used + 1) <= max) return out + entities(revealControls(rest));
      return out + ELLIPSIS;
    }
    out += entities(revealControls(ch));
    used += len;
    i += ch.length;
  }
  return out;
}

/** For one-line places (titles, labels): line breaks and runs of blanks become one space. */
export function oneLine(raw: string): string {
  return raw.replace(/\s+/g, ' ').trim();
}

/** Redacted, on one line, escaped and clipped: the form every untrusted string takes inline in Slack. */
export function slackText(raw: string, max: number): string {
  return clipEscaped(oneLine(redactText(raw)), max);
}

/**
 * A name as a code span: no formatting, link or mention can come out of it. At most `max` characters
 * between the backticks.
 */
export function slackName(raw: string, max: number): string {
  const text = oneLine(redactText(raw)).replace(/`/g, codePointLabel);
  const clipped = clipEscaped(text, max);
  return clipped === '' ? '(empty)' : `\`${clipped}\``;
}
