/**
 * Everything behind the playground's page, on 127.0.0.1: the simulated jumphost, the strict fake Slack Web
 * API, and the real `capi-chatops serve` (Bolt's HTTP receiver, an agent and the thread poster, unchanged) as
 * a child process whose Slack is the fake: SLACK_API_URL points at it, the signing secret is generated for
 * this run, and the site profile links the simulated site to the playground's channel.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { writeDecisionKey } from '../decision-key.js';
import { freePort } from '../net.js';
import { type SimJumphost, startSimJumphost } from '../sim/jumphost.js';
import { type FakeSlack, startFakeSlack } from '../slack/fake-slack.js';
import { CHANNEL, PEOPLE, RULES_ENV } from './cast.js';
import { packageRoot } from './root.js';

const BIN = path.join(packageRoot(), 'bin', 'capi-chatops.js');
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

export interface StackOptions {
  readonly scenario: string;
  /** Real seconds per simulated second (0.01: a 10-minute recovery in about 6 s of commands). */
  readonly timeScale: number;
  /** Default REDIS_URL or redis://127.0.0.1:6379. */
  readonly redisUrl?: string;
  /** serve's LOG_LEVEL; default info. */
  readonly logLevel?: string;
  /** Extra environment for serve (APPROVAL_TIMEOUT, CAPI_ALLOW_SELF_APPROVAL …); cannot change the wiring. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface Stack {
  readonly sim: SimJumphost;
  readonly fake: FakeSlack;
  readonly siteName: string;
  readonly scenarioDescription: string;
  /** serve's Request URL, where Slack would POST commands and clicks. */
  readonly requestUrl: string;
  readonly signingSecret: string;
  /** serve's log (pino JSON lines), kept while the stack runs. */
  readonly logPath: string;
  /** Resolves with serve's exit code when it ends (on its own or by stop()). */
  readonly serveExited: Promise<number | null>;
  stop(): Promise<void>;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // Best effort: one part failing to stop must not leave the others running.
      }
    }
  };
  try {
    const botToken = `xoxb-${randomDigits(12)}-${randomDigits(13)}-${randomBytes(12).toString('hex')}`;
    const signingSecret = randomBytes(16).toString('hex');
    const fake = await startFakeSlack({
      token: botToken,
      channels: [CHANNEL.id],
      users: Object.fromEntries(PEOPLE.map((p) => [p.id, { groups: p.groups }])),
    });
    cleanups.push(() => fake.close());
    const sim = await startSimJumphost({ scenario: opts.scenario, timeScale: opts.timeScale });
    cleanups.push(() => sim.stop());
    const dir = await mkdtemp(path.join(os.tmpdir(), 'capi-playground-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    // serve signs every decision taken in Slack with its own key, made here for this stack.
    const key = await writeDecisionKey(dir);
    const siteFile = path.join(dir, 'site.yaml');
    await writeFile(siteFile, stringify({ ...sim.site, slack_channels: [CHANNEL.id] }));
    const port = await freePort();
    const redisUrl = opts.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const prefix = `capi-playground-${randomBytes(4).toString('hex')}`;
    cleanups.push(() => deleteKeys(redisUrl, prefix));
    const logPath = path.join(dir, 'serve.log');

    const inherited = { ...process.env };
    // Socket Mode would bypass the Request URL; nothing of a real workspace may leak in.
    for (const name of Object.keys(inherited)) if (name.startsWith('SLACK_')) delete inherited[name];
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: {
        ...inherited,
        ...opts.env,
        SITE_FILE: siteFile,
        REDIS_URL: redisUrl,
        QUEUE_PREFIX: prefix,
        SLACK_BOT_TOKEN: botToken,
        SLACK_SIGNING_SECRET: signingSecret,
        SLACK_API_URL: fake.url,
        PORT: String(port),
        HOST: '127.0.0.1',
        ...RULES_ENV,
        CAPI_DECISION_SIGNING_KEY: key.privateFile,
        LOG_LEVEL: opts.logLevel ?? 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const serveExited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanups.push(() => stopChild(child, serveExited));
    const log = createWriteStream(logPath);
    cleanups.push(() => new Promise((resolve) => log.end(resolve)));
    child.stderr?.pipe(log, { end: false });
    await waitReady(child, serveExited, log, logPath);

    const stop = async () => cleanup();
    return {
      sim,
      fake,
      siteName: sim.site.name,
      scenarioDescription: sim.description,
      requestUrl: `http://127.0.0.1:${port}/slack/events`,
      signingSecret,
      logPath,
      serveExited,
      stop,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

function randomDigits(n: number): string {
  return Array.from(randomBytes(n), (b) => String(b % 10)).join('');
}

/** Copies serve's log lines into the log file and resolves at its "ready" line; fails if it exits first. */
async function waitReady(
  child: ChildProcess,
  exited: Promise<number | null>,
  log: NodeJS.WritableStream,
  logPath: string,
): Promise<void> {
  if (!child.stdout) throw new Error('serve has no stdout');
  const lines = createInterface({ input: child.stdout });
  let tail: string[] = [];
  const ready = new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      log.write(`${line}\n`);
      tail = [...tail.slice(-9), line];
      const entry = parseLog(line);
      if (entry?.msg === 'capi-chatops ready') resolve();
      // Errors are worth seeing where the demo runs; the rest stays in the log file.
      if (entry !== undefined && typeof entry.level === 'number' && entry.level >= 50) {
        process.stderr.write(
          `serve: ${String(entry.msg)}${entry.err !== undefined ? `: ${String(entry.err)}` : ''}\n`,
        );
      }
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exited.then((code) => `exited with code ${code}` as const),
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    throw new Error(
      `capi-chatops serve did not get ready (${outcome === 'timeout' ? `no "capi-chatops ready" within ${READY_TIMEOUT_MS / 1000} s` : outcome}); log ${logPath}:\n${tail.join('\n')}`,
    );
  }
}

function parseLog(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** SIGTERM (serve hands its runs over and exits), then SIGKILL if it takes too long. */
async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, STOP_TIMEOUT_MS);
  });
  await Promise.race([exited, killed]);
  clearTimeout(timer);
  await exited;
}

/** The demo's runs, queues and locks live under their own prefix; none outlives the demo. */
async function deleteKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
