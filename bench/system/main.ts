/**
 * `npm run bench:system [-- --quick]`: the product and its bare building blocks, side by side, in one run on
 * this machine; prints one table and writes it to bench/RESULTS.md. Never fails on a timing: the exit code
 * says only whether the script could measure. Everything listens on 127.0.0.1; every process it starts
 * (redis-server, sshd, the fake Slack, serve, a bare Bolt app) is stopped by its pid at the end.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startSshd } from '../../dev/sim/sshd.js';
import { checkThread } from '../../dev/slack/thread-check.js';
import { opensshVersion, ssh2ExecFloor, sshProcessLoop } from './floors.js';
import { openLoop } from './load.js';
import { Children, until } from './processes.js';
import { type BenchRedis, startRedis } from './redis.js';
import {
  type AckFigures,
  type Environment,
  headline,
  headlineTable,
  howToRead,
  type LevelResult,
  levelsTable,
  resultsSection,
  type SystemResults,
  withSection,
} from './report.js';
import { betweenStepGaps, entryMs, perStepMs, RunsView, startApprover } from './runs.js';
import { APPROVER, BOT_TOKEN, OPERATOR, SIGNING_SECRET, startBareBolt, startServe } from './serve.js';
import { FULL, QUICK, type SystemBenchSettings } from './settings.js';
import { slashCommand } from './signed.js';
import { channelId, startSimSites, writePlainSite } from './sites.js';
import { type FakeSlackProcess, startFakeSlackProcess } from './slack.js';
import { median, summarize } from './stats.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const RESULTS = path.join(REPO, 'bench', 'RESULTS.md');

const say = (line: string) => process.stdout.write(`[bench:system] ${line}\n`);

interface Context {
  readonly settings: SystemBenchSettings;
  readonly root: string;
  readonly children: Children;
  readonly redis: BenchRedis;
  readonly slack: FakeSlackProcess;
  readonly commandsDir: string;
}

const STEPS_CHANNELS = (n: number) => Array.from({ length: n }, (_, i) => channelId('steps', i + 1));
const LIFE_CHANNELS = (n: number) => Array.from({ length: n }, (_, i) => channelId('life', i + 1));
const LEVEL_CHANNELS = (n: number) => Array.from({ length: n }, (_, i) => channelId(`n${n}`, i + 1));
/** The channels of a level's `bench-steps` runs, one per turn. */
const LEVEL_STEPS_CHANNELS = (n: number, turns: number) =>
  Array.from({ length: turns }, (_, i) => channelId(`n${n}steps`, i + 1));
const BARE_CHANNEL = channelId('bare', 1);

/** The product's runbooks plus two of trivial steps: `bench-steps` (N x `true`) and `bench-one`. */
async function prepareRunbooks(dir: string, steps: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const src = path.join(REPO, 'commands');
  for (const f of await readdir(src))
    if (f.endsWith('.yaml')) await copyFile(path.join(src, f), path.join(dir, f));
  const runbook = (name: string, n: number) =>
    [
      `name: ${name}`,
      `summary: ${n} trivial steps for bench:system`,
      'source: bench/system',
      'read_only: true',
      'params: []',
      'steps:',
      ...Array.from({ length: n }, (_, i) => `  - id: s${i + 1}\n    title: Step ${i + 1}\n    run: "true"`),
      '',
    ].join('\n');
  await writeFile(path.join(dir, 'bench-steps.yaml'), runbook('bench-steps', steps));
  await writeFile(path.join(dir, 'bench-one.yaml'), runbook('bench-one', 1));
}

function ackFigures(latencies: readonly number[], errors: number): AckFigures {
  const s = summarize(latencies);
  return { n: s.n, p50: s.p50, p99: s.p99, max: s.max, errors };
}

/**
 * The product (A) and the bare Bolt app (B) in turns, A B A B, under whatever load is on the machine: one
 * warm-up each (discarded), then `turns` measured windows each, measureS split between them.
 */
async function ackTurns(
  ctx: Context,
  product: { base: string; channel: string },
  bare: { base: string; channel: string },
): Promise<{ product: AckFigures; bare: AckFigures }> {
  const { ack, turns } = ctx.settings;
  const load = async (base: string, channel: string, durationS: number) => {
    const urls = await ctx.slack.responseUrls(OPERATOR, channel, Math.round(ack.ratePerS * durationS));
    return openLoop({
      base,
      secret: SIGNING_SECRET,
      ratePerS: ack.ratePerS,
      durationS,
      body: (i) => slashCommand(OPERATOR, channel, ack.text, urls[i] as string),
    });
  };
  await load(product.base, product.channel, ack.warmupS);
  await load(bare.base, bare.channel, ack.warmupS);
  const a = { latencies: [] as number[], errors: 0 };
  const b = { latencies: [] as number[], errors: 0 };
  for (let t = 0; t < turns; t++) {
    for (const [side, into] of [
      [product, a],
      [bare, b],
    ] as const) {
      const r = await load(side.base, side.channel, ack.measureS / turns);
      into.latencies.push(...r.latenciesMs);
      into.errors += r.errors;
    }
  }
  return { product: ackFigures(a.latencies, a.errors), bare: ackFigures(b.latencies, b.errors) };
}

/** Warm-up (discarded), then the measured window, of signed `/capi <text>` at the configured rate. */
async function ackLoad(ctx: Context, base: string, channel: string): Promise<AckFigures> {
  const { ack } = ctx.settings;
  // Each command carries its own response_url, issued before the load so that the fake's IPC is not timed.
  const load = async (durationS: number) => {
    const urls = await ctx.slack.responseUrls(OPERATOR, channel, Math.round(ack.ratePerS * durationS));
    return openLoop({
      base,
      secret: SIGNING_SECRET,
      ratePerS: ack.ratePerS,
      durationS,
      body: (i) => slashCommand(OPERATOR, channel, ack.text, urls[i] as string),
    });
  };
  await load(ack.warmupS);
  const r = await load(ack.measureS);
  return ackFigures(r.latenciesMs, r.errors);
}

// ---------------------------------------------------------------------------------------------------------

async function benchBareBolt(ctx: Context): Promise<AckFigures> {
  say('(1) bare Bolt: ack-only listener under the open-loop load');
  const bolt = await startBareBolt(ctx.slack.url, path.join(ctx.root, 'bare-bolt.log'), ctx.children);
  try {
    return await ackLoad(ctx, bolt.base, BARE_CHANNEL);
  } finally {
    await bolt.stop();
  }
}

async function benchSteps(ctx: Context): Promise<{ steps: SystemResults['steps']; lifeMs: number[] }> {
  const { settings } = ctx;
  const n = settings.steps.count;
  const home = path.join(ctx.root, 'steps-home');
  await mkdir(home, { recursive: true });
  const sshdDir = path.join(ctx.root, 'steps-sshd');
  const sshd = await startSshd({ dir: sshdDir, homeDir: home, pathPrepend: [] });
  const stepsChannels = STEPS_CHANNELS(settings.steps.repeats);
  const lifeChannels = LIFE_CHANNELS(settings.lifeSamples);
  const siteFile = await writePlainSite(ctx.root, 'steps', sshd.target, [...stepsChannels, ...lifeChannels]);
  const prefix = 'bench-steps';
  const serve = await startServe(
    {
      redisUrl: ctx.redis.url,
      prefix,
      siteFiles: [siteFile],
      commandsDir: ctx.commandsDir,
      slackApiUrl: ctx.slack.url,
      concurrency: 2,
      logFile: path.join(ctx.root, 'serve-steps.log'),
    },
    ctx.children,
  ).catch(async (err: unknown) => {
    await sshd.stop();
    throw err;
  });
  const runs = new RunsView(ctx.redis.client, prefix, ctx.slack);
  try {
    const floorTotalsMs: number[] = [];
    const productPerStepMs: number[] = [];
    for (const [i, channel] of stepsChannels.entries()) {
      say(
        `(2) floor: ${n} x ssh2 exec \`true\`; product: /capi bench-steps (${i + 1}/${stepsChannels.length})`,
      );
      floorTotalsMs.push(await ssh2ExecFloor(sshd.target, n));
      const run = await runs.start(serve.base, channel, 'bench-steps');
      await runs.finished([run.runId], settings.runTimeoutS * 1000);
      productPerStepMs.push(perStepMs(await runs.timeline.read(run.runId), n));
    }
    say(`(5) by hand: ${n} x \`ssh host true\``);
    const byHandTotalMs = await sshProcessLoop(sshd.target, sshdDir, n);

    const lifeMs: number[] = [];
    for (const channel of lifeChannels) {
      const run = await runs.start(serve.base, channel, 'bench-one');
      const view = await until(
        `the root message of ${run.runId} in ${channel}`,
        async () => (await ctx.slack.channels([channel]))[channel]?.root,
        30_000,
        10,
      );
      lifeMs.push(view.at - run.ackAt);
      await runs.finished([run.runId], 60_000);
    }
    say(`(3) ack -> root message: ${lifeMs.map((v) => Math.round(v)).join(', ')} ms`);
    return { steps: { count: n, floorTotalsMs, productPerStepMs, byHandTotalMs }, lifeMs };
  } finally {
    await serve.stop();
    await sshd.stop();
  }
}

/**
 * `count` concurrent recover runs, each on its own simulated site and channel. While they go, the product
 * and its floors take turns (A B A B): /capi acks against the bare Bolt app, then a `bench-steps` run
 * against the ssh2 exec floor on the same plain sshd, so each floor is measured under the same load.
 */
async function benchLevel(ctx: Context, count: number): Promise<LevelResult> {
  const { settings } = ctx;
  say(`(4) ${count} concurrent recover runs: starting ${count} simulated sites`);
  const dir = path.join(ctx.root, `level-${count}`);
  await mkdir(dir, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  try {
    const sims = await startSimSites({
      count,
      scenario: settings.recover.scenario,
      timeScale: settings.recover.timeScale,
      nice: settings.simNice,
      dir,
      tag: `n${count}`,
    });
    stops.push(() => sims.stop());
    const stepsHome = path.join(dir, 'steps-home');
    await mkdir(stepsHome, { recursive: true });
    const sshd = await startSshd({ dir: path.join(dir, 'steps-sshd'), homeDir: stepsHome, pathPrepend: [] });
    stops.push(() => sshd.stop());
    const stepsChannels = LEVEL_STEPS_CHANNELS(count, settings.turns);
    const stepsSite = await writePlainSite(dir, `n${count}-steps`, sshd.target, stepsChannels);
    const prefix = `bench-n${count}`;
    const serve = await startServe(
      {
        redisUrl: ctx.redis.url,
        prefix,
        siteFiles: [...sims.sites.map((s) => s.file), stepsSite],
        commandsDir: ctx.commandsDir,
        slackApiUrl: ctx.slack.url,
        concurrency: Math.max(2, count),
        logFile: path.join(dir, 'serve.log'),
      },
      ctx.children,
    );
    stops.push(() => serve.stop());
    const bolt = await startBareBolt(ctx.slack.url, path.join(dir, 'bare-bolt.log'), ctx.children);
    stops.push(() => bolt.stop());
    const runs = new RunsView(ctx.redis.client, prefix, ctx.slack);
    const approver = startApprover(serve.base, ctx.slack);
    stops.push(() => approver.stop());

    const bytesBefore = await ctx.redis.bytesUnder(prefix);
    const callsBefore = await ctx.slack.calls();
    const loadBefore = os.loadavg()[0] ?? Number.NaN;
    serve.rss.reset();
    const started = await Promise.all(sims.sites.map((s) => runs.start(serve.base, s.channel, 'recover')));
    const ids = started.map((r) => r.runId);
    const going = async () =>
      (await runs.registry.list({ active: true, limit: 1000 })).filter((r) => ids.includes(r.runId)).length;

    say(
      `(4) ${count} runs started; /capi ${settings.ack.text} at ${settings.ack.ratePerS}/s, product and bare Bolt in turns`,
    );
    const active: number[] = [];
    const sampler = setInterval(() => {
      void going().then((n) => active.push(n));
    }, 1000);
    const acks = await ackTurns(
      ctx,
      { base: serve.base, channel: sims.sites[0]?.channel ?? BARE_CHANNEL },
      { base: bolt.base, channel: BARE_CHANNEL },
    );
    clearInterval(sampler);
    const rssUnderLoad = serve.rss.peak;
    // From here on the process only runs the runs and mirrors them: the agent's own footprint.
    serve.rss.reset();

    const n = settings.steps.count;
    say(`(4) ${count} runs: ${n} steps of \`true\`, product and ssh2 exec floor in turns`);
    const stepsActive: number[] = [await going()];
    const productPerStepMs: number[] = [];
    const floorTotalsMs: number[] = [];
    for (const channel of stepsChannels) {
      const run = await runs.start(serve.base, channel, 'bench-steps');
      await runs.finished([run.runId], settings.runTimeoutS * 1000);
      productPerStepMs.push(perStepMs(await runs.timeline.read(run.runId), n));
      floorTotalsMs.push(await ssh2ExecFloor(sshd.target, n));
      stepsActive.push(await going());
    }

    const records = await runs.finished(ids, settings.runTimeoutS * 1000).catch(async (err: unknown) => {
      say(`(4) ${(err as Error).message}; going on with what finished`);
      return (await Promise.all(ids.map((id) => runs.registry.get(id)))).filter((r) => r !== null);
    });
    const finishedAt = Date.now();
    const loadAfter = os.loadavg()[0] ?? Number.NaN;
    const rssRunsOnly = serve.rss.peak;
    say(
      `(4) ${records.length} runs ended (${records.filter((r) => r.status === 'succeeded').length} succeeded); waiting for their threads`,
    );

    const timelines = new Map<string, Awaited<ReturnType<typeof runs.timeline.read>>>();
    for (const id of ids) timelines.set(id, await runs.timeline.read(id));
    const channels = started.map((r) => r.channel);
    const settleDeadline = finishedAt + settings.settleTimeoutS * 1000;
    let lost = 0;
    let duplicates = 0;
    let outOfOrder = 0;
    let settled = false;
    let incomplete: string[] = [];
    for (;;) {
      const views = await ctx.slack.channels(channels);
      lost = 0;
      duplicates = 0;
      outOfOrder = 0;
      incomplete = [];
      for (const r of started) {
        const view = views[r.channel];
        // What the thread is designed to show (dev/slack/thread-check.ts): the posts of the events that get
        // one (not a step that only confirmed: the root's checklist tells it), one message per approval.
        const check = checkThread(r.runId, timelines.get(r.runId) ?? [], view?.thread ?? []);
        lost += check.missing.length;
        duplicates += check.extra.length;
        if (!check.inOrder) outOfOrder += 1;
        const final = view?.root?.final === true && view.liveButtons === 0;
        if (!(check.complete && final)) {
          incomplete.push(
            `${r.channel} (run ${r.runId}): ${check.missing.length} missing${check.missing.length > 0 ? ` [${check.missing.slice(0, 3).join(' | ')}]` : ''}, ${check.extra.length} extra${check.extra.length > 0 ? ` [${check.extra.slice(0, 3).join(' | ')}]` : ''}${check.inOrder ? '' : ', out of order'}${view?.root?.final === true ? '' : ', root not final'}${(view?.liveButtons ?? 0) > 0 ? `, ${view?.liveButtons} live approval buttons` : ''}`,
          );
        }
      }
      if (incomplete.length === 0) {
        settled = true;
        break;
      }
      if (Date.now() > settleDeadline) break;
      await sleep(2000);
    }
    for (const line of incomplete) say(`(4) thread not complete: ${line}`);
    const settleS = (Date.now() - finishedAt) / 1000;
    const views = await ctx.slack.channels(channels);
    const lifeMs = started.map((r) => (views[r.channel]?.root?.at ?? Number.NaN) - r.ackAt);

    const callsAfter = await ctx.slack.calls();
    const limited = (method: string) =>
      (callsAfter[method]?.limited ?? 0) - (callsBefore[method]?.limited ?? 0);
    // A /capi reply goes to the command's response_url (no app-wide limit), else by chat.postEphemeral.
    const replyMethods = new Set(['response_url', 'chat.postEphemeral']);
    const threadLimited = Object.keys(callsAfter)
      .filter((m) => !replyMethods.has(m))
      .reduce((a, m) => a + limited(m), 0);

    const gaps = [...timelines.values()].flatMap(betweenStepGaps);
    const gapSummary = summarize(gaps);
    const durations = [...timelines.values()].map((entries) => {
      const first = entries[0];
      const last = entries.findLast((e) => e.event.type === 'run.finished');
      return first && last ? (entryMs(last) - entryMs(first)) / 1000 : Number.NaN;
    });
    const bytesAfter = await ctx.redis.bytesUnder(prefix);
    return {
      runs: count,
      succeeded: records.filter((r) => r.status === 'succeeded').length,
      eventsLost: lost,
      duplicates,
      outOfOrder,
      settled,
      settleS,
      limitedThreads: threadLimited,
      limitedReplies: [...replyMethods].reduce((a, m) => a + limited(m), 0),
      repliesByMethod: Object.fromEntries(
        [...replyMethods].map((m) => [m, (callsAfter[m]?.ok ?? 0) - (callsBefore[m]?.ok ?? 0)]),
      ),
      limitedByMethod: Object.fromEntries(Object.keys(callsAfter).map((m) => [m, limited(m)])),
      gapMeanMs: gapSummary.mean,
      gapP99Ms: gapSummary.p99,
      ack: acks.product,
      bareAck: acks.bare,
      activeDuringLoad: { min: Math.min(...active), max: Math.max(...active) },
      steps: { count: n, productPerStepMs, floorTotalsMs },
      activeDuringSteps: { min: Math.min(...stepsActive), max: Math.max(...stepsActive) },
      lifeMedianMs: median(lifeMs),
      rssPeakMb: Math.max(rssUnderLoad, rssRunsOnly),
      rssRunsOnlyMb: rssRunsOnly,
      // Bench-steps runs are in the prefix too: a few KB beside the recover runs.
      redisPerRunKb: (bytesAfter - bytesBefore) / count / 1024,
      runMedianS: median(durations),
      load: { before: loadBefore, after: loadAfter },
    };
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

// ---------------------------------------------------------------------------------------------------------

async function packageVersion(name: string): Promise<string> {
  const file = path.join(REPO, 'node_modules', ...name.split('/'), 'package.json');
  return (JSON.parse(await readFile(file, 'utf8')) as { version: string }).version;
}

async function environment(redis: BenchRedis, loadBefore: number[], startedAt: number): Promise<Environment> {
  const versions: Record<string, string> = { node: process.version };
  for (const p of ['@slack/bolt', '@slack/web-api', 'bullmq', 'ioredis', 'ssh2'])
    versions[p] = await packageVersion(p);
  versions['redis-server'] = redis.version;
  versions.OpenSSH = await opensshVersion();
  const cpus = os.cpus();
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    machine: `${os.hostname()}, ${cpus.length} x ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}`,
    loadBefore,
    loadAfter: os.loadavg(),
    versions,
    durationS: (Date.now() - startedAt) / 1000,
  };
}

async function main(): Promise<number> {
  const quick = process.argv.includes('--quick');
  // --levels=20 (or 1,5): only those concurrency levels; for looking into one figure, not for RESULTS.md.
  const levelsArg = process.argv.find((a) => a.startsWith('--levels='))?.slice('--levels='.length);
  const partial = levelsArg !== undefined;
  const base = quick ? QUICK : FULL;
  const settings: SystemBenchSettings = partial
    ? { ...base, levels: levelsArg.split(',').map(Number), ackRunsLevel: Number(levelsArg.split(',')[0]) }
    : base;
  const startedAt = Date.now();
  const loadBefore = os.loadavg();
  say(
    `load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} cores${quick ? ' (--quick: numbers mean nothing)' : ''}`,
  );
  const root = await mkdtemp(path.join(os.tmpdir(), 'capi-bench-system-'));
  const children = new Children();
  let redis: BenchRedis | undefined;
  let slack: FakeSlackProcess | undefined;
  try {
    redis = await startRedis(root, children);
    const channels = [
      BARE_CHANNEL,
      ...STEPS_CHANNELS(settings.steps.repeats),
      ...LIFE_CHANNELS(settings.lifeSamples),
      ...settings.levels.flatMap(LEVEL_CHANNELS),
      ...settings.levels.flatMap((n) => LEVEL_STEPS_CHANNELS(n, settings.turns)),
    ];
    slack = await startFakeSlackProcess(
      {
        token: BOT_TOKEN,
        channels,
        users: { [OPERATOR]: { groups: [] }, [APPROVER]: { groups: [] } },
        postRatePerChannelPerS: settings.slack.postPerChannelPerS,
        methodLimitsPerMinute: settings.slack.methodLimitsPerMinute,
      },
      children,
    );
    const commandsDir = path.join(root, 'commands');
    await prepareRunbooks(commandsDir, settings.steps.count);
    const ctx: Context = { settings, root, children, redis, slack, commandsDir };

    const bareAck = await benchBareBolt(ctx);
    const { steps, lifeMs } = partial
      ? {
          steps: { count: 0, floorTotalsMs: [], productPerStepMs: [], byHandTotalMs: Number.NaN },
          lifeMs: [],
        }
      : await benchSteps(ctx);
    const levels: LevelResult[] = [];
    for (const count of settings.levels) levels.push(await benchLevel(ctx, count));

    const results: SystemResults = { bareAck, steps, lifeMs, levels };
    const env = await environment(redis, loadBefore, startedAt);
    process.stdout.write(
      `\n${headlineTable(headline(results, settings))}\n\n${levelsTable(levels)}\n\n${howToRead(settings)}\n`,
    );
    if (!quick && !partial) {
      const current = await readFile(RESULTS, 'utf8').catch(() => '# Benchmark results\n');
      await writeFile(RESULTS, withSection(current, resultsSection(results, settings, env)));
      say(`written to ${path.relative(process.cwd(), RESULTS)}`);
    }
    return 0;
  } finally {
    await slack?.stop();
    await redis?.stop();
    await children.stopAll();
    if (process.env.CAPI_BENCH_KEEP !== '1') await rm(root, { recursive: true, force: true });
    else say(`kept ${root}`);
  }
}

const code = await main().catch((err: unknown) => {
  process.stderr.write(`bench:system could not measure: ${err instanceof Error ? err.stack : String(err)}\n`);
  return 1;
});
// Everything started was stopped above; a handle left behind by a failure must not keep the script alive
// (the sshd exit hooks still run on exit).
process.exit(code);
