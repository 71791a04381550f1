import { type SiteProfile, siteEnv } from '../config/site.js';
import type { Command, LeafStep, Runbook, Scope, Step } from '../runbook/model.js';
import { withPreamble } from './script.js';

/**
 * The dry-run view: every command that would run, in order, with its scope preamble and the
 * environment it would receive; destructive steps marked. Nothing is connected to.
 */
export function renderPlan(
  runbook: Runbook,
  site: SiteProfile,
  params: Readonly<Record<string, string>>,
): string {
  const env = { ...siteEnv(site) };
  for (const p of runbook.params) env[p.env] = params[p.name] as string;
  const out: string[] = [
    `# ${runbook.name} on site ${site.name} -- ${runbook.summary}`,
    `# source: ${runbook.source}`,
    '# every command below runs on the jumphost with stdin closed and these values as environment',
    "# variables (single-quoted; ~ is the jumphost login's $HOME):",
    ...Object.entries(env).map(([k, v]) => `#   ${k}=${v}`),
    '',
  ];
  runbook.steps.forEach((step, i) => {
    out.push(...stepLines(step, `${i + 1}/${runbook.steps.length}`));
  });
  return `${out.join('\n')}\n`;
}

function stepLines(step: Step, n: string): string[] {
  if (step.kind === 'report') {
    return [
      `## [${n}] ${step.title.source} (report, runs nothing)`,
      ...step.findings.map((f) => `   finding when ${f.when.source}: ${f.say.source}`),
      '',
    ];
  }
  if (step.kind === 'for_each') {
    const env = step.env.map((b) => `${b.name}=<${b.type} from ${b.value.source}>`).join(' ');
    return [
      `## [${n}] ${step.title.source}`,
      `   for each ${step.as} in ${step.items.source}, strictly one at a time${env ? `; ${env}` : ''}:`,
      ...step.steps.flatMap((inner, j) => stepLines(inner, `${n}.${j + 1}`).map((l) => `   ${l}`)),
    ];
  }
  return leafLines(step, n);
}

function leafLines(step: LeafStep, n: string): string[] {
  const destructive = step.kind === 'run' && step.destructive;
  const lines = [`## [${n}] ${destructive ? 'DESTRUCTIVE -- needs approval: ' : ''}${step.title.source}`];
  if (step.note) lines.push(`   note: ${step.note}`);
  for (const b of step.env) lines.push(`   ${b.name}=<${b.type} from ${b.value.source}>`);
  if (step.kind === 'run') {
    step.guard.forEach((g, i) => {
      lines.push(
        `   guard ${i + 1} (before asking, and again right before running; skip when ${g.skipWhen.source}):`,
      );
      lines.push(...commandLines(step.scope, g.command));
    });
    if (step.approval) lines.push(`   approval: ${step.approval.summary.source}`);
    lines.push(...commandLines(step.scope, step.command));
    if (step.verify) {
      lines.push(`   verify (read back after the command; must hold: ${step.verify.tookEffect.source}):`);
      lines.push(...commandLines(step.scope, step.verify.command));
    }
  } else {
    const first = step.firstAfterMs > 0 ? `, first after ${step.firstAfterMs / 1000}s` : '';
    lines.push(
      `   poll up to ${step.attempts} times every ${step.everyMs / 1000}s${first} until ${step.until.source}:`,
    );
    lines.push(...commandLines(step.scope, step.command));
  }
  for (const d of step.decide) {
    const outcome =
      d.outcome === undefined
        ? 'continue'
        : d.outcome.kind === 'goto'
          ? `goto ${d.outcome.target}`
          : d.outcome.kind;
    lines.push(`   decide: when ${d.when.source} -> ${outcome}`);
  }
  lines.push('');
  return lines;
}

function commandLines(scope: Scope | undefined, command: Command): string[] {
  const head = scope ? [`   | # ${scope.name} scope`] : [];
  if (command.okExit.length > 1) head.push(`   | # exit codes ${command.okExit.join(', ')} are answers (L1)`);
  return [
    ...head,
    ...withPreamble(scope, command.script)
      .trimEnd()
      .split('\n')
      .map((l) => `   | ${l}`),
  ];
}
