import type { z } from 'zod';

/**
 * Turns zod issues into lines an operator can act on: `field.path: what is wrong`.
 * Every schema in the product carries messages that say the fix, so this only adds the location.
 */
export function describeZodIssues(error: z.ZodError, pathPrefix = ''): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.length > 0 ? formatPath(issue.path) : '(top level)';
    return `${pathPrefix}${path}: ${issue.message}`;
  });
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** One line for a log or a job failure: every issue, `path: message`, joined. */
export function validationMessage(error: z.ZodError): string {
  return describeZodIssues(error).join('; ');
}
