/**
 * Serve's agent on a thread of its own (node:worker_threads): the Slack front's event loop does nothing a run
 * does, so every step's Redis round trips, lease renewals, SSH output and JSON handling never queue in front
 * of an ack that Slack gives up on after 3 s. The thread reads the same environment and files as serve
 * (agent-thread-main.ts) and answers a few questions over its message port: is it ready, its metrics, close.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { z } from 'zod';

export interface AgentThreadOptions {
  /** --site flags (SITE_FILE otherwise), as serve got them. */
  readonly siteFiles: readonly string[];
  readonly logger: Logger;
  /** The thread stopped without being asked to (an uncaught error): serve fails loudly, once. */
  readonly onCrash: (why: string) => void;
  /** How long a question (readiness, metrics) may wait for its answer: within /readyz's own 2 s. Default 1 s. */
  readonly answerTimeoutMs?: number;
  /**
   * How long close() waits for the agent to hand its runs over before the thread is stopped (its runs are then
   * taken over like those of a killed agent). Default 30 s, above the agent's own shutdown grace.
   */
  readonly closeTimeoutMs?: number;
}

export interface AgentThread {
  readonly queueNames: readonly string[];
  /** true when every worker of the agent runs; otherwise why not (the thread not answering included). */
  check(): Promise<true | string>;
  /** The thread's metrics, as prom-client's getMetricsAsJSON() gives them, for serve's /metrics. */
  metrics(): Promise<object[]>;
  /** Repeat-safe: the second call returns the first call's promise. */
  close(): Promise<void>;
}

/** What the thread says (validated: it is another program's message as far as this side is concerned). */
const fromThread = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready'), queueNames: z.array(z.string()) }),
  z.object({ type: z.literal('answer'), id: z.number().int(), value: z.unknown() }),
  z.object({ type: z.literal('closed') }),
  z.object({ type: z.literal('blocking'), ms: z.number() }),
]);

export type ToThread = { type: 'check'; id: number } | { type: 'metrics'; id: number } | { type: 'close' };

export interface AgentThreadData {
  readonly siteFiles: readonly string[];
}

const ENTRY = new URL('./agent-thread-main.js', import.meta.url);

/**
 * The thread's young generation, in MB (V8's default is several times this): the thread is a whole second
 * heap in serve's RSS, and what a smaller one costs (more frequent scavenges) is paid on the agent's loop,
 * never the front's. An idle serve measured 195 MB with the default and 175 MB with 8 (the front alone: 123).
 */
const AGENT_YOUNG_GENERATION_MB = 8;

/** Starts the thread and resolves once its agent takes jobs; rejects with the thread's own start-up error. */
export function startAgentThread(opts: AgentThreadOptions): Promise<AgentThread> {
  const { logger } = opts;
  const answerTimeoutMs = opts.answerTimeoutMs ?? 1_000;
  const data: AgentThreadData = { siteFiles: [...opts.siteFiles] };
  const worker = new Worker(ENTRY, {
    workerData: data,
    name: 'capi-agent',
    resourceLimits: { maxYoungGenerationSizeMb: AGENT_YOUNG_GENERATION_MB },
  });
  const waiting = new Map<number, (value: unknown) => void>();
  let nextId = 1;
  let closing: Promise<void> | undefined;
  let exited = false;
  let closed: (() => void) | undefined;
  const gone = new Promise<void>((resolve) => worker.once('exit', () => resolve()));

  const ask = (type: 'check' | 'metrics'): Promise<unknown> => {
    if (exited) return Promise.reject(new Error('the agent thread has stopped'));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`the agent thread did not answer within ${answerTimeoutMs} ms`));
      }, answerTimeoutMs);
      waiting.set(id, (value) => {
        clearTimeout(timer);
        resolve(value);
      });
      worker.postMessage({ type, id } satisfies ToThread);
    });
  };

  return new Promise((resolve, reject) => {
    let started = false;
    worker.on('message', (raw: unknown) => {
      const parsed = fromThread.safeParse(raw);
      if (!parsed.success) {
        logger.error(
          { issues: parsed.error.issues.length },
          'the agent thread sent a message of unknown shape',
        );
        return;
      }
      const msg = parsed.data;
      switch (msg.type) {
        case 'ready':
          started = true;
          resolve({
            queueNames: msg.queueNames,
            check: () =>
              ask('check').then(
                (v) => (v === true ? true : String(v)),
                (err: Error) => err.message,
              ),
            metrics: async () => {
              const v = await ask('metrics');
              return Array.isArray(v) ? (v as object[]) : [];
            },
            close: () => {
              closing ??= close();
              return closing;
            },
          });
          break;
        case 'answer':
          waiting.get(msg.id)?.(msg.value);
          waiting.delete(msg.id);
          break;
        case 'closed':
          closed?.();
          break;
        case 'blocking':
          logger.warn(
            { ms: msg.ms },
            'the agent thread blocks its event loop (CAPI_TEST_BLOCK_AGENT_THREAD_MS)',
          );
          break;
      }
    });
    worker.on('error', (err) => {
      if (!started) reject(err);
      else logger.error({ err: err.message }, 'the agent thread failed');
    });
    worker.on('exit', (code) => {
      exited = true;
      closed?.();
      if (!started) {
        reject(new Error(`the agent thread stopped with code ${code} before its agent started`));
      } else if (closing === undefined) {
        const why = `the agent thread stopped with code ${code} without being asked to`;
        logger.fatal({ code }, why);
        opts.onCrash(why);
      }
    });
  });

  async function close(): Promise<void> {
    if (exited) return;
    const done = new Promise<void>((r) => {
      closed = r;
    });
    worker.postMessage({ type: 'close' } satisfies ToThread);
    const timeoutMs = opts.closeTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => {
      timer = setTimeout(() => r('late'), timeoutMs);
    });
    const outcome = await Promise.race([done, late]);
    clearTimeout(timer);
    if (outcome === 'late') {
      logger.warn({ timeoutMs }, 'the agent thread did not close in time: stopped; its runs are taken over');
    } else {
      // Closed: the thread ends by itself once its last log lines are written; stopped if anything lingers.
      let linger: NodeJS.Timeout | undefined;
      await Promise.race([gone, new Promise((r) => (linger = setTimeout(r, 2_000)))]);
      clearTimeout(linger);
    }
    await worker.terminate();
  }
}
