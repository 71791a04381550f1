/**
 * Open-loop load: requests leave on a fixed schedule whether or not earlier ones were answered, and each
 * latency is measured from the moment the request was DUE, not from when it left, so a stalled server
 * (or a stalled generator) cannot hide its queueing delay (coordinated omission, as wrk2 avoids it).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { postSigned } from './signed.js';

export interface LoadResult {
  readonly latenciesMs: number[];
  /** Requests that failed, timed out (10 s) or were answered with another status than 200. */
  readonly errors: number;
  readonly sent: number;
}

export async function openLoop(opts: {
  readonly base: string;
  readonly secret: string;
  readonly ratePerS: number;
  readonly durationS: number;
  readonly body: (i: number) => string;
}): Promise<LoadResult> {
  const total = Math.round(opts.ratePerS * opts.durationS);
  const interval = 1000 / opts.ratePerS;
  const latencies: number[] = [];
  let errors = 0;
  const inflight: Promise<void>[] = [];
  const start = performance.now() + 20;
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const body = opts.body(i);
    inflight.push(
      postSigned(opts.base, opts.secret, body).then(
        (status) => {
          if (status === 200) latencies.push(performance.now() - due);
          else errors += 1;
        },
        () => {
          errors += 1;
        },
      ),
    );
  }
  await Promise.all(inflight);
  return { latenciesMs: latencies, errors, sent: total };
}
