import type { Scope } from '../runbook/model.js';

/** The text that actually runs: the scope's preamble (named once in scopes.yaml), then the step. */
export function withPreamble(scope: Scope | undefined, script: string): string {
  return scope ? `${scope.preamble.trimEnd()}\n${script}` : script;
}

/**
 * The command as an approver reads it: scope named, `$VAR` references shown with their values.
 * Display only; what runs still receives the values as quoted environment variables.
 */
export function displayCommand(
  scope: Scope | undefined,
  script: string,
  env: Readonly<Record<string, string>>,
): string {
  const filled = script.replace(
    /\$\{([A-Z][A-Z0-9_]*)\}|\$([A-Z][A-Z0-9_]*)/g,
    (whole, braced?: string, bare?: string) => {
      const name = braced ?? bare ?? '';
      return env[name] ?? whole;
    },
  );
  const head = scope ? `# in ${scope.name} scope (${scope.description})\n` : '';
  return `${head}${filled.trimEnd()}`;
}
