import { describe, expect, it } from 'vitest';
import { choosePoints, faultMatrix, SAMPLED_PER_CASE } from './support/fault-matrix.js';

/** 20 kill points; every fifth one is always tried. */
const POINTS = Array.from({ length: 20 }, (_, i) => ({ label: `p${i}`, always: i % 5 === 0 }));
const labels = (ps: readonly { label: string }[]) => ps.map((p) => p.label);
const choose = (seed: number, caseName = 'recover') =>
  labels(choosePoints(POINTS, (p) => p.always, faultMatrix({ CAPI_FAULT_SEED: String(seed) }), caseName));

describe('the fault-injection matrix', () => {
  it('should try every point it must and a few others by default, the same ones for the same seed', () => {
    const chosen = choose(42);
    expect(chosen).toEqual(expect.arrayContaining(['p0', 'p5', 'p10', 'p15']));
    expect(chosen).toHaveLength(4 + SAMPLED_PER_CASE);
    expect(choose(42)).toEqual(chosen);
    // In the matrix's own order, so the log reads like the runbook.
    expect(chosen).toEqual([...chosen].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))));
  });

  it('should draw other points for another seed or another case', () => {
    const draws = new Set(Array.from({ length: 10 }, (_, seed) => choose(seed).join()));
    expect(draws.size).toBeGreaterThan(5);
    expect(new Set(['a', 'b', 'c', 'd', 'e'].map((c) => choose(7, c).join())).size).toBeGreaterThan(1);
  });

  it('should try every point when CAPI_FAULT_MATRIX=full and say how to try the same again', () => {
    const full = faultMatrix({ CAPI_FAULT_MATRIX: 'full' });
    expect(choosePoints(POINTS, (p) => p.always, full, 'recover')).toEqual(POINTS);
    expect(full.again).toBe('CAPI_FAULT_MATRIX=full');
    expect(faultMatrix({ CAPI_FAULT_SEED: '1234' })).toMatchObject({
      seed: 1234,
      again: 'CAPI_FAULT_SEED=1234',
    });
    expect(faultMatrix({}).full).toBe(false);
  });

  it('should refuse a seed or a matrix it does not know, naming the variable', () => {
    expect(() => faultMatrix({ CAPI_FAULT_SEED: 'abc' })).toThrow(/^CAPI_FAULT_SEED must be a whole number/);
    expect(() => faultMatrix({ CAPI_FAULT_MATRIX: 'all' })).toThrow(/^CAPI_FAULT_MATRIX must be "full"/);
  });
});
