/**
 * The stand-ins on a simulated juju unit: `unit-tool.js <socat|haproxy|systemctl|ps> args...`, called
 * by the wrappers in the unit's /usr/bin and /usr/sbin (see cloud/units.ts).
 */
import { runBin } from '../cloud/cli.js';
import { simDirFromEnv } from '../cloud/store.js';
import { runUnitTool } from '../cloud/unit-tools.js';
import { UNIT_TOOLS, type UnitTool } from '../cloud/units.js';

function readStdin(): Promise<string> {
  // Only socat reads its input (the admin-socket command); the others must not wait for EOF.
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => chunks.push(c));
    process.stdin.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.once('error', () => resolve(''));
  });
}

runBin('unit-tool', async () => {
  const [tool, ...argv] = process.argv.slice(2);
  if (!UNIT_TOOLS.includes(tool as UnitTool)) {
    return { code: 1, stdout: '', stderr: `capi-sim unit-tool: unknown tool ${String(tool)}\n` };
  }
  const stdin = tool === 'socat' ? await readStdin() : '';
  return runUnitTool({ dir: simDirFromEnv(), tool: tool as UnitTool, argv, env: process.env, stdin });
});
