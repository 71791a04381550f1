/**
 * The layering, checked on the import statements: fronts reach runs only through RunService, the engine
 * knows nothing of Slack, Redis, BullMQ or ssh2, and the runbook model never reaches transport.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Every .ts file below `dir`, as repo-relative paths with `/`. */
function filesUnder(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => `${dir}/${f.split(path.sep).join('/')}`);
}

interface Import {
  readonly file: string;
  /** A package name (`ioredis`, `node:fs`) or a repo-relative path without extension (`src/runs/lock`). */
  readonly target: string;
}

/** Static imports, re-exports and dynamic `import('...')`, type-only ones included. */
function importsOf(file: string): Import[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const specs = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)].map(
    (m) => m[1] as string,
  );
  return specs.map((spec) => ({
    file,
    target: spec.startsWith('.')
      ? path.posix.join(path.posix.dirname(file), spec).replace(/\.js$/, '')
      : spec.split('/')[0] === '@slack'
        ? spec.split('/').slice(0, 2).join('/')
        : (spec.split('/')[0] as string),
  }));
}

function violations(files: readonly string[], forbidden: (target: string) => boolean): string[] {
  return files
    .flatMap(importsOf)
    .flatMap((i) => (forbidden(i.target) ? [`${i.file} imports ${i.target}`] : []));
}

/** The CLI files that wire Redis, the stores and the agent together; every other CLI file is a front. */
const COMPOSITION_ROOTS = [
  'src/cli/agent.ts',
  'src/cli/serve.ts',
  // Serve's agent thread: the agent, wired as `agent` wires it.
  'src/cli/agent-thread-main.ts',
  'src/cli/session.ts',
  // Checks SSH, Redis and Slack themselves, so it wires all three (and keeps each site's last report).
  'src/cli/doctor.ts',
];
const FRONTS = [
  ...filesUnder('src/slack'),
  ...filesUnder('src/fronts'),
  ...filesUnder('src/cli').filter((f) => !COMPOSITION_ROOTS.includes(f)),
];

describe('the layers', () => {
  it('should find the imports it checks', () => {
    // Guards the checks below against passing because nothing was read.
    expect(FRONTS).toContain('src/slack/poster.ts');
    expect(FRONTS).not.toContain('src/cli/serve.ts');
    expect(importsOf('src/cli/serve.ts').map((i) => i.target)).toEqual(
      expect.arrayContaining(['src/service/run-service', 'src/runs/redis-checks', 'src/slack/app']),
    );
  });

  it('should let fronts reach runs only through RunService', () => {
    const inside = (t: string) => t.startsWith('src/runs/') || t.startsWith('src/queue/');
    expect(violations(FRONTS, (t) => inside(t) && t !== 'src/service/run-service')).toEqual([]);
  });

  it('should keep Slack away from SSH, the agent and the queue machinery', () => {
    const far = ['ssh2', 'bullmq', 'ioredis'];
    expect(
      violations(
        filesUnder('src/slack'),
        (t) => t.startsWith('src/ssh/') || t.startsWith('src/agent/') || far.includes(t),
      ),
    ).toEqual(
      // The thread poster keeps its own cursors and its replica lease in Redis (its state, not the runs'),
      // given the client; so do the per-user flood counters and the signatures already seen (replays).
      // They name the client's type from src/redis/connection and import no Redis driver themselves.
      [],
    );
  });

  it('should keep the engine free of Slack, Redis, BullMQ, ssh2 and the stores', () => {
    const far = ['ssh2', 'bullmq', 'ioredis', '@slack/bolt', '@slack/web-api'];
    const layers = ['src/slack/', 'src/runs/', 'src/queue/', 'src/agent/', 'src/fronts/', 'src/cli/'];
    expect(
      violations(filesUnder('src/engine'), (t) => far.includes(t) || layers.some((l) => t.startsWith(l))),
    ).toEqual([]);
  });

  it('should keep the runbook model away from transport', () => {
    expect(violations(filesUnder('src/runbook'), (t) => t === 'ssh2' || t.startsWith('src/ssh/'))).toEqual(
      [],
    );
  });

  it('should keep product code away from development code', () => {
    expect(violations(filesUnder('src'), (t) => t.startsWith('dev/') || t.startsWith('test/'))).toEqual([]);
  });
});
