import { readdir, readFile, utimes } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AttemptOnRecordError, ErrorCode } from '../src/errors.js';
import { type AttemptMarker, markerPath, withAttemptMarker } from '../src/ssh/attempt-marker.js';
import { usePlainJumphost } from './support/engine.js';

const jump = usePlainJumphost();
const DIGEST_A = 'a'.repeat(64);
const DIGEST_B = 'b'.repeat(64);
const SECRET = 'hunter2-never-on-disk';
const DAY = 86_400_000;

const marker = (runId: string, slot: string, digest = DIGEST_A): AttemptMarker => ({
  runId,
  slot,
  digest,
  shown: '# in admin scope\nopenstack loadbalancer failover 1b000000-0000-4000-8000-000000000001',
});

/** The destructive step: appends its mark to ~/sent; its env carries a value that must never reach the marker. */
const send = (m: AttemptMarker, mark: string) =>
  jump.executor.exec({
    script: `echo ${mark} >> ~/sent`,
    env: { OS_PASSWORD: SECRET },
    timeoutMs: 10_000,
    attempt: m,
  });

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('the attempt marker on the jumphost', () => {
  it('should send a step once, record when and what, and refuse a second send before anything of it runs', async () => {
    const m = marker('rmark1', 'failover-lb#0');
    expect((await send(m, 'first')).code).toBe(0);
    const file = path.join(jump.home, markerPath(m));
    const [sentAt, slot, ...shown] = (await readFile(file, 'utf8')).trimEnd().split('\n');
    expect(sentAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Math.abs(Date.parse(sentAt ?? '') - Date.now())).toBeLessThan(60_000);
    expect(slot).toBe('slot failover-lb#0');
    expect(shown.join('\n')).toBe(m.shown);
    expect(await readFile(file, 'utf8')).not.toContain(SECRET);

    // Redis forgot the attempt: the same step is sent again, even as another action (another digest).
    const again = await refusal(send(marker('rmark1', 'failover-lb#0', DIGEST_B), 'second'));
    expect(again).toBeInstanceOf(AttemptOnRecordError);
    expect(again).toMatchObject({
      code: ErrorCode.AttemptRecorded,
      runId: 'rmark1',
      slot: 'failover-lb#0',
      sentAt,
      digest: DIGEST_A,
    });
    expect(await jump.lines('sent')).toEqual(['first']);
    // The wire form: a distinct exit code and one recognisable stderr line, nothing else of the step.
    const raw = await jump.executor.exec({
      script: withAttemptMarker('echo third >> ~/sent', m, 30 * DAY),
      env: {},
      timeoutMs: 10_000,
    });
    expect(raw.code).toBe(77);
    expect(raw.stderr).toBe(
      `capi-chatops: attempt on record: sent_at=${sentAt} digest=${DIGEST_A} marker=~/${path.dirname(markerPath(m))}\n`,
    );
    expect(await jump.lines('sent')).toEqual(['first']);

    // Another slot of the same run, and the same slot of another run, are their own attempts.
    expect((await send(marker('rmark1', 'sweep/delete-orphan#2'), 'other-slot')).code).toBe(0);
    expect((await send(marker('rmark2', 'failover-lb#0'), 'other-run')).code).toBe(0);
    expect(await jump.lines('sent')).toEqual(['first', 'other-slot', 'other-run']);
  });

  it('should let exactly one of several simultaneous sends of a step through', async () => {
    await jump.write('sent', '');
    const m = marker('rmark3', 'delete-orphan#1');
    const results = await Promise.allSettled([1, 2, 3, 4].map((n) => send(m, `racer-${n}`)));
    const sent = results.filter((r) => r.status === 'fulfilled');
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    expect(sent).toHaveLength(1);
    expect(refused).toHaveLength(3);
    for (const r of refused) expect(r).toBeInstanceOf(AttemptOnRecordError);
    expect(await jump.lines('sent')).toHaveLength(1);
  });

  it("should remove other runs' markers past the retention and keep the sending run's own", async () => {
    const root = path.join(jump.home, '.capi-chatops', 'attempts');
    const old = new Date(Date.now() - 31 * DAY);
    expect((await send(marker('rmarkold', 'zap#0'), 'old')).code).toBe(0);
    expect((await send(marker('rmarkrecent', 'zap#0'), 'recent')).code).toBe(0);
    expect((await send(marker('rmarknow', 'zap#0'), 'now-first')).code).toBe(0);
    await utimes(path.join(root, 'rmarkold'), old, old);
    await utimes(path.join(root, 'rmarknow'), old, old);

    // The default retention is 30 days: the next send prunes the 31-day-old run, never its own.
    expect((await send(marker('rmarknow', 'zap2#0'), 'now-second')).code).toBe(0);
    const runs = await readdir(root);
    expect(runs).not.toContain('rmarkold');
    expect(runs).toEqual(expect.arrayContaining(['rmarkrecent', 'rmarknow']));
    expect(await refusal(send(marker('rmarknow', 'zap#0'), 'now-again'))).toBeInstanceOf(
      AttemptOnRecordError,
    );
  });
});
