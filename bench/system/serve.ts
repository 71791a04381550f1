/** The product as it is deployed: `capi-chatops serve` (Slack front + agent) in a process of its own. */
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDecisionKey } from '../../dev/decision-key.js';
import { freePort } from '../../dev/net.js';
import { type Children, rssSampler, waitForLine } from './processes.js';

export const BOT_TOKEN = ['xoxb', '1000000001', '2000000000002', 'benchBENCHbenchBENCHbench'].join('-');
export const SIGNING_SECRET = 'be4c4be4c4be4c4be4c4be4c4be4c4b0';
export const OPERATOR = 'U0OPERATOR';
export const APPROVER = 'U0APPROVER';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/capi-chatops.js');

export interface ServeOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly siteFiles: readonly string[];
  readonly commandsDir: string;
  readonly slackApiUrl: string;
  readonly concurrency: number;
  readonly logFile: string;
}

export interface ServeProcess {
  readonly base: string;
  readonly pid: number;
  readonly rss: ReturnType<typeof rssSampler>;
  stop(): Promise<void>;
}

export async function startServe(opts: ServeOptions, children: Children): Promise<ServeProcess> {
  const port = await freePort();
  // serve signs every Slack decision; a key made for this run, next to its log.
  const key = await writeDecisionKey(path.dirname(opts.logFile));
  const log = openSync(opts.logFile, 'a');
  // For looking into a figure: node flags such as `--cpu-prof --cpu-prof-dir=DIR`, space separated.
  const nodeArgs = (process.env.CAPI_BENCH_SERVE_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child: ChildProcess = children.spawn(process.execPath, [...nodeArgs, BIN, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      SITE_FILE: opts.siteFiles.join(','),
      COMMANDS_DIR: opts.commandsDir,
      REDIS_URL: opts.redisUrl,
      QUEUE_PREFIX: opts.prefix,
      AGENT_CONCURRENCY: String(opts.concurrency),
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: opts.slackApiUrl,
      PORT: String(port),
      CAPI_OPERATORS: OPERATOR,
      CAPI_APPROVERS: APPROVER,
      CAPI_DECISION_SIGNING_KEY: key.privateFile,
      // One bench user starts every read-only run (bench-steps, bench-one, in turns, at every level): far more
      // than a person's default share, which is what the limit is for. The bench measures speed, not the limit.
      CAPI_READONLY_PER_PERSON: '1000',
      CAPI_READONLY_PER_SITE: '1000',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  await waitForLine(opts.logFile, /capi-chatops ready/, 30_000);
  const pid = child.pid as number;
  const rss = rssSampler(pid);
  return {
    base: `http://127.0.0.1:${port}`,
    pid,
    rss,
    async stop() {
      rss.stop();
      await children.stop(child, 15_000);
    },
  };
}

export async function startBareBolt(
  slackApiUrl: string,
  logFile: string,
  children: Children,
): Promise<{ base: string; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const log = openSync(logFile, 'a');
  const child = children.spawn(
    process.execPath,
    [path.join(path.dirname(fileURLToPath(import.meta.url)), 'bare-bolt.js'), String(port), slackApiUrl],
    {
      env: { ...process.env, SLACK_BOT_TOKEN: BOT_TOKEN, SLACK_SIGNING_SECRET: SIGNING_SECRET },
      stdio: ['ignore', log, log],
    },
  );
  closeSync(log);
  await waitForLine(logFile, /bare bolt ready/, 30_000);
  return {
    base: `http://127.0.0.1:${port}`,
    pid: child.pid as number,
    stop: () => children.stop(child, 5000),
  };
}
