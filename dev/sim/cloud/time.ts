/**
 * Time model. Scenario durations are in site seconds; a run compresses them by `timeScale`
 * (0.01 => 210 site seconds pass in 2.1 real seconds). Everything stored in the state is an
 * absolute real-clock millisecond timestamp, and every visible status is derived from those at
 * read time, so no background process is needed to move the simulated cloud forward.
 */

export interface SimClock {
  /** Real wall-clock ms when the scenario was instantiated; site time and real time agree here. */
  readonly startedAt: number;
  readonly timeScale: number;
}

/** Real milliseconds that `seconds` of site time take at this scale. */
export function siteSecondsToMs(clock: SimClock, seconds: number): number {
  return seconds * 1000 * clock.timeScale;
}

/**
 * The site-clock instant matching a real instant. Ages and ISO timestamps shown by the fake CLIs
 * use site time so that "12d" ages and 108 s failovers look like the real site even when compressed.
 */
export function toSiteMs(clock: SimClock, realMs: number): number {
  return clock.startedAt + (realMs - clock.startedAt) / clock.timeScale;
}

export function siteIso(clock: SimClock, realMs: number): string {
  return new Date(Math.round(toSiteMs(clock, realMs))).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Site seconds elapsed between a real instant and now. */
export function siteAgeSeconds(clock: SimClock, realMs: number, now: number): number {
  return (now - realMs) / 1000 / clock.timeScale;
}

/** kubectl's duration.HumanDuration, so AGE columns read like the real tool. */
export function humanDuration(totalSeconds: number): string {
  const seconds = Math.floor(totalSeconds);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const days = Math.floor(hours / 24);
    const y = Math.floor(days / 365);
    const d = days % 365;
    return d === 0 ? `${y}y` : `${y}y${d}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

/** Blocking sleep for the short-lived CLI processes (lock retries), without a busy loop. */
export function sleepSync(ms: number): void {
  if (ms <= 0) return;
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
