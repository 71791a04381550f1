/**
 * bench:system is not part of `npm test` (it runs for minutes and its timings would fail builds on a busy
 * machine). What is checked here is what a reader of bench/RESULTS.md relies on: each figure is flagged
 * against its target, and a new run replaces only the measured section, not the notes around it.
 */
import { describe, expect, it } from 'vitest';
import {
  END_MARK,
  headline,
  headlineTable,
  type LevelResult,
  levelsTable,
  START_MARK,
  type SystemResults,
  withSection,
} from '../bench/system/report.js';
import { FULL } from '../bench/system/settings.js';

const ack = (p99: number) => ({ n: 1000, p50: 1, p99, max: p99 * 2, errors: 0 });

function level(runs: number, over: Partial<LevelResult> = {}): LevelResult {
  return {
    runs,
    succeeded: runs,
    eventsLost: 0,
    duplicates: 0,
    outOfOrder: 0,
    settled: true,
    settleS: 30,
    limitedThreads: 0,
    limitedReplies: 0,
    limitedByMethod: {},
    repliesByMethod: { response_url: 0, 'chat.postEphemeral': 0 },
    gapMeanMs: 1,
    gapP99Ms: 3,
    ack: ack(5),
    activeDuringLoad: { min: runs, max: runs },
    lifeMedianMs: 80,
    rssPeakMb: 120,
    rssRunsOnlyMb: 110,
    redisPerRunKb: 200,
    runMedianS: 30,
    bareAck: ack(4),
    steps: { count: 50, floorTotalsMs: [125, 130, 140], productPerStepMs: [4, 4.2, 4.4] },
    activeDuringSteps: { min: runs, max: runs },
    load: { before: 0.5, after: 3.25 },
    ...over,
  };
}

function results(over: Partial<SystemResults> = {}): SystemResults {
  return {
    bareAck: ack(4),
    steps: {
      count: 50,
      floorTotalsMs: [125, 130, 140],
      productPerStepMs: [4, 4.2, 4.4],
      byHandTotalMs: 10_000,
    },
    lifeMs: [90, 100, 110],
    levels: FULL.levels.map((n) => level(n)),
    ...over,
  };
}

const verdicts = (r: SystemResults) => headline(r, FULL).map((row) => `${row.n} ${row.verdict}`);

describe('bench:system report', () => {
  it('should flag every figure ok when each is within its target', () => {
    expect(verdicts(results())).toEqual([
      '1 ok',
      '2 ok',
      '2 info',
      '3 ok',
      '3 ok',
      '4 ok',
      '4 ok',
      '4 ok',
      '5 info',
    ]);
    // Floor: the median of 130 ms / 50 steps = 2.6 ms; product median 4.2 ms: 1.6 ms over.
    expect(headlineTable(headline(results(), FULL))).toContain('+1.6 ms');
  });

  it('should flag each missed target where the figure is over it', () => {
    const missed = results({
      levels: FULL.levels.map((n) =>
        n === 20
          ? level(n, {
              ack: ack(7),
              steps: { count: 50, floorTotalsMs: [130], productPerStepMs: [5] },
              lifeMedianMs: 400,
              gapMeanMs: 12,
              rssPeakMb: 180,
              eventsLost: 2,
              settled: false,
            })
          : n === 50
            ? level(n, { ack: ack(1500) })
            : level(n),
      ),
    });
    expect(verdicts(missed)).toEqual([
      '1 MISSED',
      '2 MISSED',
      '2 info',
      '3 MISSED',
      '3 MISSED',
      '4 MISSED',
      '4 MISSED',
      '4 MISSED',
      '5 info',
    ]);
  });

  it('should judge the ack and the step against the floors measured under the same load, not the idle ones', () => {
    // 30 ms is 7.5x the idle floor, but 1.2x the floor measured while the same runs went: ok.
    const loaded = results({
      bareAck: ack(4),
      steps: { count: 50, floorTotalsMs: [50], productPerStepMs: [4], byHandTotalMs: 10_000 },
      levels: FULL.levels.map((n) =>
        n === 20
          ? level(n, {
              ack: ack(30),
              bareAck: ack(25),
              steps: { count: 50, floorTotalsMs: [500], productPerStepMs: [11] },
            })
          : level(n),
      ),
    });
    const rows = headline(loaded, FULL);
    expect(rows.map((r) => `${r.n} ${r.verdict}`).slice(0, 2)).toEqual(['1 ok', '2 ok']);
    const table = headlineTable(rows);
    expect(table).toContain('p99 1.2x loaded');
    expect(table).toContain('(bare Bolt, same load); idle 1 · 4 · 8 ms');
    expect(table).toContain('10 ms (ssh2 exec, same load)');
    // The idle step is shown, not judged: 4 ms against an idle floor of 1 ms.
    expect(rows[2]).toMatchObject({ verdict: 'info', compare: '+3 ms' });
  });

  it('should miss the ack when it is over 300 ms even within 1.5x of a slow loaded floor', () => {
    const slow = results({
      levels: FULL.levels.map((n) => (n === 20 ? level(n, { ack: ack(400), bareAck: ack(300) }) : level(n))),
    });
    expect(headline(slow, FULL)[0]).toMatchObject({ n: '1', verdict: 'MISSED', compare: 'p99 1.33x loaded' });
  });

  it('should show each level with its loaded floors and the load average before and after', () => {
    const table = levelsTable([level(20)]);
    expect(table).toContain('| 20 | 0.5 · 3.25 |');
    expect(table).toContain('1 · 5 ms (1 · 4 ms; 20-20 runs going)');
    expect(table).toContain('4.2 ms (2.6 ms; 20-20 runs going)');
  });

  it('should replace only the measured section of RESULTS.md and keep the notes around it', () => {
    const first = withSection('# Benchmark results\n\nnotes above\n', 'run one');
    expect(first).toContain(`${START_MARK}\nrun one\n${END_MARK}`);
    const edited = `${first}\nfindings written by hand\n`;
    const second = withSection(edited, 'run two');
    expect(second).not.toContain('run one');
    expect(second).toContain('run two');
    expect(second).toContain('notes above');
    expect(second).toContain('findings written by hand');
  });
});
