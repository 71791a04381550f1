import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningSshd, startSshd } from '../dev/sim/sshd.js';
import { threadMessage } from '../src/slack/blocks.js';
import { connectSsh } from '../src/ssh/executor.js';
import { LineSplitter, lineCutNote } from '../src/ssh/line-splitter.js';
import type { RemoteExecutor } from '../src/ssh/types.js';
import { atSecond, ref, stepFinished } from './support/events.js';

function split(chunks: readonly Buffer[], maxLineBytes: number): { line: string; complete: boolean }[] {
  const lines: { line: string; complete: boolean }[] = [];
  const s = new LineSplitter((line, complete) => lines.push({ line, complete }), { maxLineBytes });
  for (const c of chunks) s.push(c);
  s.end();
  return lines;
}

describe('LineSplitter: RUN_MAX_LINE_BYTES', () => {
  it('should keep the first bytes and say how many were cut when a line is longer than the cap', () => {
    const long = 'x'.repeat(100_000);
    const chunks = [
      Buffer.from(`short\n${long.slice(0, 30_000)}`),
      Buffer.from(`${long.slice(30_000)}\nafter\n`),
    ];
    expect(split(chunks, 1024)).toEqual([
      { line: 'short', complete: true },
      { line: `${'x'.repeat(1024)}${lineCutNote(100_000 - 1024)}`, complete: true },
      { line: 'after', complete: true },
    ]);
  });

  it('should hold no more than the cap in memory when one line never ends', () => {
    const s = new LineSplitter(() => undefined, { maxLineBytes: 4096 });
    const chunk = Buffer.alloc(64 * 1024, 'y');
    for (let i = 0; i < 200; i++) s.push(chunk);
    // 12.5 MiB pushed: what the splitter holds of the line stays at the cap.
    expect((Reflect.get(s, 'partial') as string).length).toBe(4096);
    const out: string[] = [];
    const t = new LineSplitter((line) => out.push(line), { maxLineBytes: 4096 });
    for (let i = 0; i < 200; i++) t.push(chunk);
    t.end();
    expect(out).toEqual([`${'y'.repeat(4096)}${lineCutNote(200 * 64 * 1024 - 4096)}`]);
  });

  it('should cut between characters when the cap falls inside a multi-byte character', () => {
    const [cut] = split([Buffer.from(`${'é'.repeat(1000)}\n`)], 1025);
    expect(cut?.line).toBe(`${'é'.repeat(512)}${lineCutNote(2000 - 1024)}`);
    expect(cut?.line).not.toContain('\uFFFD');
  });

  it('should drop the token the cap fell in when the line has blanks, so no half secret is kept', () => {
    const token = 'A1b2C3d4'.repeat(20);
    const line = `${'w '.repeat(500)}token ${token} tail`;
    const [cut] = split([Buffer.from(line)], 1010);
    expect(cut?.line).toBe(`${'w '.repeat(500)}token${lineCutNote(Buffer.byteLength(line) - 1006)}`);
    expect(cut?.line).not.toContain('A1b2');
  });

  it('should leave lines under the cap and partial last lines as they were', () => {
    expect(split([Buffer.from('a\nbb\nccc')], 1024)).toEqual([
      { line: 'a', complete: true },
      { line: 'bb', complete: true },
      { line: 'ccc', complete: false },
    ]);
  });
});

describe('SSH executor: one endless line', () => {
  let root: string;
  let sshd: RunningSshd;
  let ex: RemoteExecutor;

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'capi-line-cap-test-'));
    const home = path.join(root, 'home');
    await mkdir(home);
    sshd = await startSshd({ dir: path.join(root, 'sshd'), homeDir: home, pathPrepend: [] });
    ex = await connectSsh({ target: sshd.target, maxLineBytes: 2048 });
  });
  afterAll(async () => {
    await ex?.close();
    await sshd?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('should deliver and return the line cut to RUN_MAX_LINE_BYTES when a command prints 8 MB without a newline', async () => {
    const lines: string[] = [];
    const r = await ex.exec({
      script: "head -c 8000000 /dev/zero | tr '\\0' 'z'; echo; echo done",
      env: {},
      timeoutMs: 20_000,
      onLine: (_stream, line) => lines.push(line),
    });
    expect(r.code).toBe(0);
    expect(lines).toEqual([`${'z'.repeat(2048)}${lineCutNote(8_000_000 - 2048)}`, 'done']);
    expect(r.stdout.length).toBeLessThan(4096);
  });
});

describe('thread post: what was cut', () => {
  it('should say how many bytes of long lines were not kept when a step printed one', () => {
    const long = `${'z'.repeat(2048)}${lineCutNote(7_997_952)}`;
    const post = threadMessage(
      { id: '1-0', at: atSecond(1), event: stepFinished(ref('dump', 1), 'ok', 10) },
      { title: 'Dump', output: ['before', long, 'done'] },
    );
    expect(JSON.stringify(post?.blocks)).toContain(
      '7997952 bytes of over-long output lines were not kept (RUN_MAX_LINE_BYTES)',
    );
  });
});
