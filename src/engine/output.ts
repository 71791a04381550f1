import { parse as parseYaml } from 'yaml';
import { CapiError, ErrorCode } from '../errors.js';
import type { ParseMode } from '../runbook/model.js';
import { parseKubeconfig } from './kubeconfig.js';

/** Turns a command's stdout into the `out` that expressions read. */
export function parseOutput(mode: ParseMode, stdout: string): unknown {
  const trimmed = stdout.replace(/\n+$/, '');
  switch (mode) {
    case 'text':
      return trimmed;
    case 'lines':
      return trimmed === '' ? [] : trimmed.split('\n');
    case 'json':
      return parseStructured(mode, trimmed, () => JSON.parse(trimmed));
    case 'yaml':
      return parseStructured(mode, trimmed, () => parseYaml(trimmed));
    case 'kubeconfig':
      return parseKubeconfig(trimmed);
  }
}

function parseStructured(mode: ParseMode, text: string, parse: () => unknown): unknown {
  // openstackclient prints nothing at all for an empty list in yaml mode.
  if (text === '') return mode === 'yaml' ? [] : null;
  try {
    return parse() ?? null;
  } catch (err) {
    const head = text.split('\n').slice(0, 3).join(' | ');
    throw new CapiError(
      ErrorCode.OutputParse,
      `the command's output is not valid ${mode} (${(err as Error).message.split('\n')[0]}); it began: ${head.slice(0, 200)}`,
    );
  }
}
