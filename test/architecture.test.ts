/**
 * The layering, checked on the import statements. The layers, top-down; each file imports only from its own
 * layer or those below it:
 *
 *   composition roots   the CLI files that wire Redis, the stores, the agent and the fronts together
 *   fronts              src/slack/, the CLI's commands (src/cli/), the terminal and shared formatting (src/fronts/)
 *   application service src/service/ (RunService: the one door from a front to runs)
 *   stores and agent    src/runs/, src/agent/, and what runs beside the agent: src/doctor/, src/recording/
 *   observability       src/ops/ (audit, metrics, the ops endpoints)
 *   engine              src/engine/
 *   runbook model       src/runbook/, src/expr/
 *   ports; adapters     the executor port (src/ssh/types.ts); src/ssh/, src/redis/, src/queue/ (BullMQ transport)
 *   shared              src/config/, src/signing/, the files at src/ itself (errors, log, redact, ids)
 *
 * On top of that: fronts reach runs only through RunService, the engine knows nothing of Slack, Redis, BullMQ
 * or ssh2, the runbook model never reaches transport, and nothing below the stores reaches an adapter but
 * through a port. The terminal's second door (`run` and the terminal reach the engine and ssh directly, by
 * design) is named once, in SECOND_DOOR; the other imports against the layers are EXCEPTIONS, each with why.
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
  // The program's entry: parses the command line and hands each command to its own module.
  'src/cli/main.ts',
  'src/cli/agent.ts',
  'src/cli/serve.ts',
  // Serve's agent thread: the agent, wired as `agent` wires it.
  'src/cli/agent-thread-main.ts',
  'src/cli/session.ts',
  // Checks SSH, Redis and Slack themselves, so it wires all three (and keeps each site's last report).
  'src/cli/doctor.ts',
  // Records a site's real outputs over its own ssh connection (no run, no Redis): wires ssh into the recorder.
  'src/cli/recording.ts',
];
const FRONTS = [
  ...filesUnder('src/slack'),
  ...filesUnder('src/fronts'),
  ...filesUnder('src/cli').filter((f) => !COMPOSITION_ROOTS.includes(f)),
];

/**
 * The terminal's second door, by design: `capi-chatops run` and the terminal front run the engine in-process
 * over their own ssh connection, without Redis, the agent or RunService (README "Terminal"). The only fronts
 * that reach the engine's running parts or ssh.
 */
const SECOND_DOOR = ['src/cli/run.ts', 'src/fronts/terminal.ts'];

/** The layers, top-down (see the top of this file); the first prefix that matches a file places it. */
const LAYERS: readonly { readonly name: string; readonly paths: readonly string[] }[] = [
  { name: 'composition roots', paths: COMPOSITION_ROOTS },
  { name: 'fronts', paths: ['src/slack/', 'src/cli/', 'src/fronts/'] },
  { name: 'application service', paths: ['src/service/'] },
  { name: 'stores and agent', paths: ['src/runs/', 'src/agent/', 'src/doctor/', 'src/recording/'] },
  { name: 'observability', paths: ['src/ops/'] },
  { name: 'engine', paths: ['src/engine/'] },
  { name: 'runbook model', paths: ['src/runbook/', 'src/expr/'] },
  // The executor port still lives in the adapter's folder; it is placed here by its own path.
  { name: 'ports', paths: ['src/ssh/types.ts'] },
  { name: 'adapters', paths: ['src/ssh/', 'src/redis/', 'src/queue/'] },
  {
    name: 'shared',
    paths: [
      'src/config/',
      'src/signing/',
      'src/errors.ts',
      'src/log.ts',
      'src/redact.ts',
      'src/run-id.ts',
      'src/validation.ts',
      'src/host-key.ts',
      'src/jumphost-target.ts',
    ],
  },
];

/** The layer's index in LAYERS (0 is the top); -1 for a file no layer names. */
function layerOf(file: string): number {
  const f = file.endsWith('.ts') ? file : `${file}.ts`;
  return LAYERS.findIndex((l) => l.paths.some((p) => (p.endsWith('/') ? f.startsWith(p) : f === p)));
}

/** Ports and adapters share one rank: an adapter implements a port, and a port never imports an adapter. */
function rankOf(file: string): number {
  const i = layerOf(file);
  return LAYERS[i]?.name === 'adapters' ? i - 1 : i;
}

/**
 * Imports against the layers that moving would take more than a few lines; each is a known debt (issue #23)
 * with the reason it is still here. `file imports target`, as the checks word it.
 */
const EXCEPTIONS = [
  // The default read-only limits are the store's own constants; config reads them to fill its defaults.
  'src/config/env.ts imports src/runs/readonly-runs',
  // Composition code that reads the stores for the ops endpoints (queue depths, pending approvals, the Redis
  // snapshot); it belongs with the CLI's composition roots.
  'src/ops/process-ops.ts imports src/runs/approvals',
  'src/ops/process-ops.ts imports src/runs/registry',
  'src/ops/redis-snapshot.ts imports src/runs/approvals',
  'src/ops/redis-snapshot.ts imports src/runs/registry',
  // The terminal's queue commands (a front) run inside withRunService, which session.ts (the composition
  // root that wires Redis and RunService for a terminal) provides: the front calls the root that wires it.
  'src/cli/queue-commands.ts imports src/cli/session',
];

/** The same, for ports that reach an adapter. */
const PORT_EXCEPTIONS = [
  // The executor port names the attempt marker and the remote fence, defined beside their ssh implementations.
  'src/ssh/types.ts imports src/ssh/attempt-marker',
  'src/ssh/types.ts imports src/ssh/remote-fence',
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

  it('should place every source file in a layer', () => {
    expect(filesUnder('src').filter((f) => layerOf(f) < 0)).toEqual([]);
    expect(LAYERS.map((l) => l.name)).toEqual([
      'composition roots',
      'fronts',
      'application service',
      'stores and agent',
      'observability',
      'engine',
      'runbook model',
      'ports',
      'adapters',
      'shared',
    ]);
  });

  it('should import only from its own layer or the layers below it', () => {
    const upward = filesUnder('src').flatMap((file) =>
      violations([file], (t) => t.startsWith('src/') && rankOf(t) < rankOf(file)),
    );
    expect(upward.filter((v) => !EXCEPTIONS.includes(v))).toEqual([]);
    // An exception that no longer happens is removed from the list, so the list stays the debt as it is.
    expect(EXCEPTIONS.filter((e) => !upward.includes(e))).toEqual([]);
  });

  it("should keep fronts off the engine's running parts and ssh, but for the terminal's second door", () => {
    const running = (t: string) =>
      t === 'ssh2' || t.startsWith('src/ssh/') || (t.startsWith('src/engine/') && t !== 'src/engine/events');
    expect(
      violations(
        FRONTS.filter((f) => !SECOND_DOOR.includes(f)),
        running,
      ),
    ).toEqual([]);
    // The door is still there: naming it keeps meaning something.
    for (const door of SECOND_DOOR) expect(violations([door], running)).not.toEqual([]);
  });

  it('should keep the engine, the runbook model and the ports off the adapters', () => {
    const below = filesUnder('src').filter((f) =>
      ['engine', 'runbook model', 'ports'].includes(LAYERS[layerOf(f)]?.name ?? ''),
    );
    const adapter = (t: string) => t.startsWith('src/') && LAYERS[layerOf(t)]?.name === 'adapters';
    const found = violations(below, adapter);
    expect(found.filter((v) => !PORT_EXCEPTIONS.includes(v))).toEqual([]);
    expect(PORT_EXCEPTIONS.filter((e) => !found.includes(e))).toEqual([]);
  });

  it('should let fronts reach runs only through RunService', () => {
    const inside = (t: string) =>
      t.startsWith('src/runs/') || t.startsWith('src/queue/') || t.startsWith('src/agent/');
    expect(violations(FRONTS, (t) => inside(t) && t !== 'src/service/run-service')).toEqual([]);
  });

  it('should keep Slack away from SSH, the agent and the queue machinery', () => {
    const far = ['ssh2', 'bullmq', 'ioredis'];
    expect(
      violations(
        filesUnder('src/slack'),
        (t) =>
          t.startsWith('src/ssh/') ||
          t.startsWith('src/agent/') ||
          t.startsWith('src/redis/') ||
          far.includes(t),
      ),
    ).toEqual(
      // The thread poster keeps its own cursors and its replica lease in Redis (its state, not the runs'),
      // given the client; so do the per-user flood counters and the signatures already seen (replays). They
      // name the client's type (RedisClient) and import no Redis driver themselves.
      [
        'src/slack/flood-limit.ts imports src/redis/connection',
        'src/slack/poster.ts imports src/redis/connection',
        'src/slack/replay-guard.ts imports src/redis/connection',
        'src/slack/thread-cursors.ts imports src/redis/connection',
        'src/slack/thread-lease.ts imports src/redis/connection',
      ],
    );
  });

  it('should keep the engine free of Slack, Redis, BullMQ, ssh2 and the stores', () => {
    const far = ['ssh2', 'bullmq', 'ioredis', '@slack/bolt', '@slack/web-api'];
    const layers = [
      'src/slack/',
      'src/service/',
      'src/runs/',
      'src/queue/',
      'src/redis/',
      'src/agent/',
      'src/fronts/',
      'src/cli/',
    ];
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
