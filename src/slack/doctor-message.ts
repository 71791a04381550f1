/**
 * `/capi doctor`'s one message, posted at once ("checking…") and updated in place with the report: what
 * needs a look first (fail, then warn, each with its fix), then the checks that passed, in one line each.
 * Every text from the jumphost or Slack is untrusted: escaped and clipped like the thread's.
 */
import { countsText, type DoctorLevel, type DoctorReport, worstLevel } from '../doctor/report.js';
import { mention, type SlackMessage } from './blocks.js';
import { slackName, slackText } from './escape.js';
import { BLOCK_KIT_LIMITS } from './limits.js';

export const DOCTOR_EMOJI: Readonly<Record<DoctorLevel, string>> = {
  ok: ':white_check_mark:',
  warn: ':warning:',
  fail: ':x:',
};

const SECTION_MAX = BLOCK_KIT_LIMITS.sectionText - 50;
const MAX_SECTIONS = 30;

function sections(lines: readonly string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let current = '';
  for (const l of lines) {
    if (current !== '' && current.length + l.length + 1 > SECTION_MAX) {
      out.push({ type: 'section', text: { type: 'mrkdwn', text: current } });
      current = '';
    }
    current = current === '' ? l : `${current}\n${l}`;
  }
  if (current !== '') out.push({ type: 'section', text: { type: 'mrkdwn', text: current } });
  return out.slice(0, MAX_SECTIONS);
}

export function doctorMessage(
  site: string,
  requestedBy: string,
  report: DoctorReport | { readonly checking: true },
): SlackMessage {
  const head = { type: 'header', text: { type: 'plain_text', text: `Doctor: site ${site}`.slice(0, 150) } };
  const asked = `asked by ${mention(requestedBy)}`;
  if ('checking' in report) {
    const text = `:stethoscope: Checking site ${slackName(site, 63)}, ${asked}: the jumphost (through an agent), Redis and Slack…`;
    return {
      text: `Doctor: checking site ${site}`,
      blocks: [head, { type: 'section', text: { type: 'mrkdwn', text } }],
    };
  }
  const worst = worstLevel(report.lines);
  const counts = countsText(report.lines);
  const attention = report.lines
    .filter((l) => l.level !== 'ok')
    .sort((a, b) => (a.level === b.level ? 0 : a.level === 'fail' ? -1 : 1))
    .flatMap((l) => [
      `${DOCTOR_EMOJI[l.level]} *${slackText(l.check, 80)}*: ${slackText(l.detail, 1200)}`,
      ...(l.fix !== undefined ? [`    _Fix:_ ${slackText(l.fix, 1200)}`] : []),
    ]);
  const passed = report.lines
    .filter((l) => l.level === 'ok')
    .map((l) => `${DOCTOR_EMOJI.ok} *${slackText(l.check, 80)}*: ${slackText(l.detail, 300)}`);
  const summary = `${DOCTOR_EMOJI[worst]} *${worst === 'ok' ? 'ready' : worst === 'warn' ? 'ready, with warnings' : 'NOT ready'}*: ${counts}, ${asked} (${slackText(report.at.slice(0, 16).replace('T', ' '), 20)} UTC)`;
  return {
    text: `Doctor for site ${site}: ${counts}`,
    blocks: [
      head,
      ...sections([summary, ...attention]),
      ...(passed.length > 0 ? [{ type: 'divider' }] : []),
      ...sections(passed),
    ].slice(0, 50),
  };
}
