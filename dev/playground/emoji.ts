/**
 * Slack's emoji shortcodes (`:white_check_mark:`) as the Unicode characters Slack shows for them. The names
 * come from `emoji-datasource` (iamcal/emoji-data), the data set Slack's own emoji picker is built on, so an
 * alias Slack knows (`:+1:`, `:thumbsup:`) is known here too and a name Slack would not draw is not.
 */
import { createRequire } from 'node:module';
import { z } from 'zod';

/** One emoji as the data set describes it; `unified` is its code points in hex, e.g. `26A0-FE0F`. */
const EmojiEntry = z.object({
  unified: z.string().regex(/^[0-9A-F]{4,6}(-[0-9A-F]{4,6})*$/, 'unified: hex code points joined by "-"'),
  short_names: z.array(z.string().min(1)).min(1),
});

let byName: ReadonlyMap<string, string> | undefined;

function table(): ReadonlyMap<string, string> {
  if (byName !== undefined) return byName;
  const raw: unknown = createRequire(import.meta.url)('emoji-datasource');
  const parsed = z.array(EmojiEntry).safeParse(raw);
  if (!parsed.success) {
    throw new Error(
      `emoji-datasource's emoji.json is not the shape the playground reads (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}); reinstall it with npm install`,
    );
  }
  const map = new Map<string, string>();
  for (const e of parsed.data) {
    const char = String.fromCodePoint(...e.unified.split('-').map((hex) => Number.parseInt(hex, 16)));
    for (const name of e.short_names) map.set(name, char);
  }
  byName = map;
  return map;
}

/** The character Slack shows for `:name:` (name without colons), or undefined when Slack knows no such emoji. */
export function emojiChar(name: string): string | undefined {
  return table().get(name);
}

/** A shortcode not glued to a word before it (so `10:30:00` and `host:port:x` stay as they are). */
const SHORTCODE = /(?<![\p{L}\p{N}]):([a-z0-9_+'-]+):/gu;

/** Plain text with every known shortcode replaced by its character (plain_text objects with `emoji: true`). */
export function emojify(text: string): string {
  return text.replace(SHORTCODE, (whole, name: string) => emojiChar(name) ?? whole);
}
