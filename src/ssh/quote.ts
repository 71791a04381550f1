/**
 * POSIX single-quoting: inside '...' nothing is special except the closing quote, so a value can only
 * escape by containing `'`, which becomes `'\''` (close, escaped quote, reopen). Newlines, `$(...)`,
 * backticks and `;` stay literal. NUL cannot travel in an argv at all, so callers must refuse it.
 */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}
