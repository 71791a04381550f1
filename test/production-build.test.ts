/**
 * The production build (tsconfig.build.json: `npm run build`, the Dockerfile) holds the product only: no
 * simulator, no fake Slack, no benchmark and none of the simulator's key material, which secret scanners
 * would flag in an image. Checked on the files tsc compiles for it (each becomes one .js in dist/), so a
 * product file that imports development code fails here too.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PRIVATE_KEY_BLOCK = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
/** Marks the simulator's fake keys carry (dev/sim/jumphost.ts, dev/sim/cloud/kubeconfig.ts). */
const SIM_KEY_MARK = /capisim/i;

function compiledFiles(project: string): string[] {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const out = execFileSync(process.execPath, [tsc, '-p', project, '--listFilesOnly'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .filter((f) => f !== '' && !f.includes(`${path.sep}node_modules${path.sep}`))
    .map((f) => path.relative(ROOT, f));
}

function withKeyMaterial(files: readonly string[]): string[] {
  return files.filter((f) => {
    const text = readFileSync(path.join(ROOT, f), 'utf8');
    return PRIVATE_KEY_BLOCK.test(text) || SIM_KEY_MARK.test(text);
  });
}

describe('the production build', () => {
  it('should compile only src/ and no file holding key material', () => {
    const files = compiledFiles('tsconfig.build.json');
    expect(files.length).toBeGreaterThan(20);
    expect(files.filter((f) => !f.startsWith(`src${path.sep}`))).toEqual([]);
    expect(files.filter((f) => /sim|fake|bench/i.test(f))).toEqual([]);
    expect(withKeyMaterial(files)).toEqual([]);
  });

  it('should recognise the simulator key material where it lives, in dev/', () => {
    // Proves the patterns above match the simulator's keys: a key moved into src/ would be caught.
    const keyFiles = [
      path.join('dev', 'sim', 'jumphost.ts'),
      path.join('dev', 'sim', 'cloud', 'kubeconfig.ts'),
    ];
    expect(withKeyMaterial(keyFiles)).toEqual(keyFiles);
  });

  it('should build the image from src/ with tsconfig.build.json and copy nothing from development', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const copies = dockerfile.split('\n').filter((l) => /^\s*COPY\b/.test(l));
    expect(copies.filter((l) => /\b(dev|bench|test|sim)\b/.test(l))).toEqual([]);
    expect(copies.some((l) => /\btsconfig\.build\.json\b/.test(l))).toBe(true);
    expect(copies.some((l) => /\btsconfig\.dev\.json\b/.test(l))).toBe(false);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    // npm install in the image runs `prepare`, which is the production build.
    expect(pkg.scripts.prepare).toBe('npm run build');
    expect(pkg.scripts.build).toBe('tsc -p tsconfig.build.json');
  });
});
