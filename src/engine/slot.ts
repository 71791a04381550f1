/**
 * Where a step's destructive attempt and its approval live: the step's id and, inside a for_each, the
 * identity of the item (its value), never its position. A list read again (a resume, a changed cloud) may
 * hold the same load balancer at another position, or another load balancer at the same position; keyed by
 * position, an attempt made for LB A would be "verified" against LB B. Every store that keys by step
 * (the attempt journal, the approval slots, the jumphost's attempt marker) takes its key from stepSlot.
 */
import { createHash } from 'node:crypto';
import type { StepRef } from './events.js';

/**
 * The identity of one for_each item: a digest of the values the loop binds for it (`env:` of the for_each,
 * each already held to its type: the ids the commands act on), or of the item itself, its keys sorted, when
 * the loop binds none. Two items that bind the same values are one target: their attempts share a slot, so
 * the second is verified, never sent again.
 */
export function itemKey(item: unknown, bound: Readonly<Record<string, string>>): string {
  const names = Object.keys(bound).sort();
  const identity = names.length > 0 ? { bound: names.map((n) => [n, bound[n]]) } : { item: canonical(item) };
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 24);
}

/**
 * The slot of a step: `<stepId>` for a top-level step, `<loop>/<step>#<item key>` inside a for_each.
 * Step ids are `[a-z0-9-]` and keys hex, so the slot is safe as a Redis hash field and a file name part.
 */
export function stepSlot(step: Pick<StepRef, 'stepId' | 'iteration'>): string {
  if (step.iteration === undefined) return step.stepId;
  const key = step.iteration.key;
  if (key === undefined || !/^[0-9a-f]{8,64}$/.test(key)) {
    throw new RangeError(`${step.stepId}: a for_each item needs its identity key to name its slot`);
  }
  return `${step.stepId}#${key}`;
}

/** JSON with every object's keys sorted, so one value always has one text. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
