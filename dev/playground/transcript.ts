/**
 * The channel as text, as one person sees it (their own ephemerals included): what `npm run demo -- --yes`
 * prints, and a readable dump when a test fails.
 */
import { richToText } from './mrkdwn.js';
import type { BlockView, ChannelState, ElementView, MessageView } from './web/view-types.js';

function indent(text: string, by: string): string {
  return text.replace(/^/gm, by);
}

function element(e: ElementView): string {
  return e.kind === 'button' ? `[${e.text}]` : `[${e.type}]`;
}

function blockText(b: BlockView): string {
  switch (b.type) {
    case 'header':
      return `# ${b.text}`;
    case 'section': {
      const parts = [
        ...(b.text ? [richToText(b.text)] : []),
        ...(b.fields ?? []).map((f) => richToText(f)),
        ...(b.accessory ? [element(b.accessory)] : []),
      ];
      return parts.join('\n');
    }
    case 'context':
      return b.elements.map((e) => richToText(e)).join('  ');
    case 'divider':
      return '---';
    case 'actions':
      return b.elements.map(element).join(' ');
    case 'other':
      return `[${b.blockType} block]`;
  }
}

export function messageText(m: MessageView): string {
  const body = m.blocks.length > 0 ? m.blocks.map(blockText).join('\n') : richToText(m.text);
  const lines = [body];
  for (const f of m.files) lines.push(`[file] ${f.title} (${f.name}, ${f.bytes} bytes)`);
  if (m.refusal) {
    lines.unshift(
      `REFUSED by Slack (${m.refusal.method}: ${m.refusal.error}) ${m.refusal.details.join('; ')}`,
    );
  }
  for (const r of m.refusedEdits) lines.push(`EDIT REFUSED by Slack (${r.error}) ${r.details.join('; ')}`);
  return lines.filter((l) => l !== '').join('\n');
}

function heading(m: MessageView, state: ChannelState): string {
  const to = state.people.find((p) => p.id === m.to)?.name ?? m.to;
  const only = m.to !== undefined ? ` (only visible to ${to})` : '';
  return `[${m.time}] ${m.author}${only}${m.edited ? ' (edited)' : ''}`;
}

/** Every message `viewer` would see, threads under their root. */
export function channelTranscript(state: ChannelState, viewer: string): string {
  const visible = state.messages.filter((m) => m.to === undefined || m.to === viewer);
  const out: string[] = [`#${state.channel.name}`];
  for (const m of visible.filter((v) => v.threadTs === undefined)) {
    out.push(heading(m, state), indent(messageText(m), '  '));
    const replies = visible.filter((r) => r.threadTs === m.ts && m.kind === 'bot');
    if (replies.length > 0) {
      out.push(`  thread (${m.replies ?? replies.length} replies):`);
      for (const r of replies) out.push(indent(heading(r, state), '    '), indent(messageText(r), '      '));
    }
  }
  return out.join('\n');
}
