/**
 * The one way tests wait for something that is not an event: ask `check` again and again until it returns
 * a value other than undefined (and, with `until`, one that `until` accepts), and fail after `timeoutMs`
 * saying what never came and what was seen last. (A run's events are waited for with waitForEvent in
 * agent.ts, which follows the timeline instead of polling.)
 */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  opts: {
    readonly timeoutMs?: number;
    readonly intervalMs?: number;
    readonly until?: (value: T) => boolean;
  } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && (opts.until === undefined || opts.until(v))) return v;
    if (Date.now() > deadline) {
      const seen = v === undefined ? '' : `; last saw ${JSON.stringify(v).slice(0, 500)}`;
      throw new Error(`waited ${timeoutMs} ms for ${what}${seen}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 25));
  }
}
