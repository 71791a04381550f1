import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CapiError, ErrorCode } from '../errors.js';

/**
 * The runbooks live in `<package root>/commands`. A fixed `../../../commands/` relative to this module only
 * works from `dist/src/config/`: from `src/config/` (vitest) it lands one directory above the package. So walk
 * up to the nearest package.json, which is the same directory from both places and from an installed copy.
 */
export function defaultCommandsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'commands');
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new CapiError(
        ErrorCode.ConfigInvalid,
        'cannot find the runbook directory: no package.json above this module; set COMMANDS_DIR',
      );
    }
    dir = parent;
  }
}
