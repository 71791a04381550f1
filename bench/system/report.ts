/**
 * The table `npm run bench:system` prints, each figure flagged against its target, and the section of
 * bench/RESULTS.md it writes (between two markers, so the hand-written findings around it stay).
 */
import type { SystemBenchSettings } from './settings.js';
import { round } from './stats.js';

export interface AckFigures {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly errors: number;
}

export interface LevelResult {
  readonly runs: number;
  readonly succeeded: number;
  /** Thread posts the design makes for the timeline (dev/slack/thread-check.ts) that were not in Slack when the
   * threads settled (or at the deadline); a step that only confirmed has none: the root's checklist tells it. */
  readonly eventsLost: number;
  /** Posts beyond what the timeline called for (at-least-once repeats). */
  readonly duplicates: number;
  /** Threads whose posts are not in timeline order. */
  readonly outOfOrder: number;
  /** Every thread complete and every root final before the deadline. */
  readonly settled: boolean;
  /** From the last run's end until every thread was complete (or the deadline). */
  readonly settleS: number;
  /** 429s on the thread poster's calls (posts, edits, uploads), and on the /capi replies. */
  readonly limitedThreads: number;
  readonly limitedReplies: number;
  /** /capi replies answered ok, by how they went: `response_url`, or `chat.postEphemeral` without one. */
  readonly repliesByMethod: Readonly<Record<string, number>>;
  /** 429s by method, for the reader who wants to know which limit bit. */
  readonly limitedByMethod: Readonly<Record<string, number>>;
  readonly gapMeanMs: number;
  readonly gapP99Ms: number;
  readonly ack: AckFigures;
  readonly activeDuringLoad: { readonly min: number; readonly max: number };
  readonly lifeMedianMs: number;
  readonly rssPeakMb: number;
  /** Peak after the /capi load ended, while the runs go on: what running and mirroring them costs. */
  readonly rssRunsOnlyMb: number;
  readonly redisPerRunKb: number;
  readonly runMedianS: number;
  /** The bare Bolt app's acks, measured in turns with the product's (A B A B) while these runs go. */
  readonly bareAck: AckFigures;
  /**
   * Time per step under this load, in turns (A B A B) while these runs go: the product's `bench-steps` run
   * (per step, first step start to last step end) and the ssh2 exec floor on the same sshd (total of `count`).
   */
  readonly steps: {
    readonly count: number;
    readonly productPerStepMs: readonly number[];
    readonly floorTotalsMs: readonly number[];
  };
  /** Runs going while the step turns ran (they start after the ack turns). */
  readonly activeDuringSteps: { readonly min: number; readonly max: number };
  /** The 1-minute load average when the level's runs started and when its last run ended. */
  readonly load: { readonly before: number; readonly after: number };
}

export interface SystemResults {
  /** The bare Bolt app's acks on an otherwise idle machine (before any run). */
  readonly bareAck: AckFigures;
  readonly steps: {
    readonly count: number;
    /** Per repeat: total ms of `count` execs of `true` on one ssh2 connection. */
    readonly floorTotalsMs: readonly number[];
    /** Per repeat: the product's time per step, first step start to last step end. */
    readonly productPerStepMs: readonly number[];
    readonly byHandTotalMs: number;
  };
  readonly lifeMs: readonly number[];
  readonly levels: readonly LevelResult[];
}

export interface Environment {
  readonly date: string;
  readonly machine: string;
  readonly loadBefore: readonly number[];
  readonly loadAfter: readonly number[];
  readonly versions: Readonly<Record<string, string>>;
  readonly durationS: number;
}

type Verdict = 'ok' | 'MISSED' | 'info';

interface Row {
  readonly n: string;
  readonly what: string;
  readonly product: string;
  readonly floor: string;
  readonly compare: string;
  readonly target: string;
  readonly verdict: Verdict;
}

const ms = (v: number) => (Number.isFinite(v) ? `${round(v, v < 10 ? 2 : 1)} ms` : 'n/a');
const triple = (a: AckFigures) => `${round(a.p50, 1)} · ${round(a.p99, 1)} · ${round(a.max, 1)} ms`;

function medianOf(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor((s.length - 1) / 2)] as number);
}

function verdict(ok: boolean): Verdict {
  return ok ? 'ok' : 'MISSED';
}

/**
 * One row per figure of issue 20's targets. The ratios the targets use are against the floors measured under
 * the same load (in turns with the product while the same runs go); the idle floors are shown beside them.
 */
export function headline(results: SystemResults, settings: SystemBenchSettings): Row[] {
  const rows: Row[] = [];
  const at = results.levels.find((l) => l.runs === settings.ackRunsLevel);
  if (at) {
    const ratio = at.ack.p99 / at.bareAck.p99;
    rows.push({
      n: '1',
      what: `/capi ack p50 · p99 · max, ${settings.ack.ratePerS}/s open loop, ${at.runs} runs going`,
      product: triple(at.ack),
      floor: `${triple(at.bareAck)} (bare Bolt, same load); idle ${triple(results.bareAck)}`,
      compare: `p99 ${round(ratio, 2)}x loaded`,
      target: 'p99 <= 1.5x loaded bare and < 300 ms',
      verdict: verdict(ratio <= 1.5 && at.ack.p99 < 300),
    });
    const floorPerStep = medianOf(at.steps.floorTotalsMs) / at.steps.count;
    const productPerStep = medianOf(at.steps.productPerStepMs);
    const over = productPerStep - floorPerStep;
    rows.push({
      n: '2',
      what: `time per step, ${at.steps.count} steps of \`true\` via queue + agent, thread mirrored, ${at.activeDuringSteps.min}-${at.activeDuringSteps.max} runs going (median of ${at.steps.productPerStepMs.length})`,
      product: ms(productPerStep),
      floor: `${ms(floorPerStep)} (ssh2 exec, same load)`,
      compare: `+${ms(over)}`,
      target: '<= +2 ms over loaded',
      verdict: verdict(over <= 2),
    });
  }
  const n = results.steps.count;
  const idleFloorPerStep = medianOf(results.steps.floorTotalsMs) / n;
  const idlePerStep = medianOf(results.steps.productPerStepMs);
  rows.push({
    n: '2',
    what: `the same, idle: ${n} steps, nothing else running (median of ${results.steps.productPerStepMs.length})`,
    product: ms(idlePerStep),
    floor: `${ms(idleFloorPerStep)} (ssh2 exec, idle)`,
    compare: `+${ms(idlePerStep - idleFloorPerStep)}`,
    target: '',
    verdict: 'info',
  });
  const idleLife = medianOf(results.lifeMs);
  if (at) {
    rows.push({
      n: '3',
      what: `ack -> root message in Slack, median of the ${at.runs} runs started at once`,
      product: ms(at.lifeMedianMs),
      floor: `${ms(idleLife)} (single runs, idle; median of ${results.lifeMs.length})`,
      compare: '',
      target: '< 300 ms',
      verdict: verdict(at.lifeMedianMs < 300),
    });
    rows.push({
      n: '3',
      what: `between steps (one step's end to the next one's start), mean · p99, ${at.runs} runs`,
      product: `${ms(at.gapMeanMs)} · ${ms(at.gapP99Ms)}`,
      floor: '',
      compare: '',
      target: 'mean < 10 ms',
      verdict: verdict(at.gapMeanMs < 10),
    });
  } else {
    rows.push({
      n: '3',
      what: `ack -> root message in Slack (median of ${results.lifeMs.length} single runs, idle)`,
      product: ms(idleLife),
      floor: '',
      compare: '',
      target: '< 300 ms',
      verdict: verdict(idleLife < 300),
    });
  }
  const lost = results.levels.reduce((a, l) => a + l.eventsLost, 0);
  const complete = results.levels.every((l) => l.settled);
  rows.push({
    n: '4',
    what: `events lost, all levels (${results.levels.map((l) => l.runs).join(', ')} runs)`,
    product: String(lost),
    floor: '',
    compare: complete ? 'every thread complete' : 'some threads not complete at the deadline',
    target: '0, every thread complete',
    verdict: verdict(lost === 0 && complete),
  });
  const at20 = at ?? results.levels.at(-1);
  if (at20) {
    rows.push({
      n: '4',
      what: `serve RSS peak at ${at20.runs} runs, with the /capi load (runs only)`,
      product: `${round(at20.rssPeakMb, 0)} MB (${round(at20.rssRunsOnlyMb, 0)} MB)`,
      floor: '',
      compare: '',
      target: '< 150 MB',
      verdict: verdict(at20.rssPeakMb < 150),
    });
  }
  const at50 = results.levels.find((l) => l.runs === 50);
  if (at50) {
    rows.push({
      n: '4',
      what: '/capi ack p50 · p99 · max, 50 runs going',
      product: triple(at50.ack),
      floor: `${triple(at50.bareAck)} (bare Bolt, same load)`,
      compare: `p99 ${round(at50.ack.p99 / at50.bareAck.p99, 2)}x loaded`,
      target: 'p99 < 1 s',
      verdict: verdict(at50.ack.p99 < 1000),
    });
  }
  const productTotal = idlePerStep * n;
  rows.push({
    n: '5',
    what: `the same ${n} steps as one \`ssh host true\` process each`,
    product: `${ms(productTotal)} (product)`,
    floor: `${ms(results.steps.byHandTotalMs)} (by hand)`,
    compare: `by hand ${round(results.steps.byHandTotalMs / productTotal, 1)}x slower`,
    target: '',
    verdict: 'info',
  });
  return rows;
}

export function headlineTable(rows: readonly Row[]): string {
  return [
    '| # | figure | product | floor | ratio / over | target | |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) => `| ${r.n} | ${r.what} | ${r.product} | ${r.floor} | ${r.compare} | ${r.target} | ${r.verdict} |`,
    ),
  ].join('\n');
}

export function levelsTable(levels: readonly LevelResult[]): string {
  return [
    '| runs | load avg 1 min before · after | succeeded | events lost | 429s threads · replies | between steps mean · p99 | ack p50 · p99 (bare Bolt, same load) | per step (ssh2 floor, same load) | root after ack (median) | serve RSS peak (runs only) | Redis per finished run | run time (median) | threads complete |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...levels.map((l) => {
      const floorPerStep = medianOf(l.steps.floorTotalsMs) / l.steps.count;
      return `| ${l.runs} | ${round(l.load.before, 2)} · ${round(l.load.after, 2)} | ${l.succeeded} | ${l.eventsLost}${l.duplicates > 0 ? ` (+${l.duplicates} repeated)` : ''}${l.outOfOrder > 0 ? ` (${l.outOfOrder} out of order)` : ''} | ${l.limitedThreads} · ${l.limitedReplies} | ${round(l.gapMeanMs, 2)} · ${round(l.gapP99Ms, 0)} ms | ${round(l.ack.p50, 1)} · ${round(l.ack.p99, 1)} ms (${round(l.bareAck.p50, 1)} · ${round(l.bareAck.p99, 1)} ms; ${l.activeDuringLoad.min}-${l.activeDuringLoad.max} runs going) | ${ms(medianOf(l.steps.productPerStepMs))} (${ms(floorPerStep)}; ${l.activeDuringSteps.min}-${l.activeDuringSteps.max} runs going) | ${round(l.lifeMedianMs, 0)} ms | ${round(l.rssPeakMb, 0)} MB (${round(l.rssRunsOnlyMb, 0)} MB) | ${round(l.redisPerRunKb, 1)} KB | ${round(l.runMedianS, 1)} s | ${l.settled ? `${round(l.settleS, 0)} s after the last run` : `NOT after ${round(l.settleS, 0)} s`} |`;
    }),
    '',
    ...levels.map(
      (l) =>
        `- 429s at ${l.runs} runs by method: ${
          Object.entries(l.limitedByMethod)
            .filter(([, n]) => n > 0)
            .map(([m, n]) => `${m} ${n}`)
            .join(', ') || 'none'
        }; /capi replies by ${
          Object.entries(l.repliesByMethod)
            .map(([m, n]) => `${m} ${n}`)
            .join(', ') || 'none'
        }`,
    ),
  ].join('\n');
}

export function howToRead(settings: SystemBenchSettings): string {
  return `How to read this:
- Each floor is measured twice: idle, before any run, and under the product's own load: while the same
  concurrent runs go, in turns with the product (A B A B, ${settings.turns} turns each, ${round(settings.ack.measureS / settings.turns, 1)} s per /capi turn),
  on the same sshd and the same Bolt version. The targets use the loaded floor: the machine's load slows
  both sides alike, so what is left is the product's own cost. Other sessions share these cores too: the
  load average before and after is above, and per level in the second table.
- Medians: the time per step (floor likewise), the root-message time, run times. Percentiles of the acks
  are nearest-rank over every request of the measured turns (warm-up excluded), each timed from when it was
  DUE (open loop), so queueing is counted.
- What limits each: (1) the ack is Bolt's HTTP receiver plus whatever else serve's main thread does at that
  moment (/capi handlers, the thread poster); the runs' engines are on serve's agent thread; (2) the floor is
  sshd forking a session and the login shell running \`true\`; the product adds its remote wrapper (process
  group, env, fence) and two Redis round trips per step (checkpoint, step.started and the record in one
  script; step.finished in the other); (3) the root post waits for the agent to pick the job and connect
  over SSH (one key exchange); (4) the threads are limited by Slack: ~1 post/s per channel and 50
  chat.update per minute for the whole app, so a thread of ~60 posts takes a minute or more whatever the
  product does; (5) every \`ssh\` process pays a full connection (key exchange, auth).
- "between steps" is the time from one step's end to the next one's start (stream ids, 1 ms resolution).
- The simulated cloud's CLIs run at nice ${settings.simNice} (on a real site they run on the jumphost, another machine).`;
}

export function resultsSection(
  results: SystemResults,
  settings: SystemBenchSettings,
  env: Environment,
): string {
  const versions = Object.entries(env.versions)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return [
    `### ${env.date} — ${env.machine}`,
    '',
    `- load average (1, 5, 15 min) before: ${env.loadBefore.map((l) => round(l, 2)).join(', ')}; after: ${env.loadAfter.map((l) => round(l, 2)).join(', ')}; whole run ${round(env.durationS / 60, 1)} min`,
    `- versions: ${versions}`,
    `- settings: \`${JSON.stringify(settings)}\``,
    '',
    headlineTable(headline(results, settings)),
    '',
    'How each figure grows with the number of concurrent `recover` runs (each on its own simulated site and channel):',
    '',
    levelsTable(results.levels),
    '',
    howToRead(settings),
  ].join('\n');
}

export const START_MARK = '<!-- bench:system:start -->';
export const END_MARK = '<!-- bench:system:end -->';

/** RESULTS.md with the section between the markers replaced (appended with the markers the first time). */
export function withSection(current: string, section: string): string {
  const block = `${START_MARK}\n${section}\n${END_MARK}`;
  const start = current.indexOf(START_MARK);
  const end = current.indexOf(END_MARK);
  if (start === -1 || end === -1 || end < start) return `${current.trimEnd()}\n\n${block}\n`;
  return `${current.slice(0, start)}${block}${current.slice(end + END_MARK.length)}`;
}
