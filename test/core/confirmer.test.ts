import { describe, expect, it } from 'vitest';
import { ScreamConfirmer } from '../../core/detect/confirmer.ts';

function run(probs: number[], opts = { threshold: 0.5, k: 2, n: 3, releaseWindows: 2 }) {
  const c = new ScreamConfirmer(opts);
  const updates = probs.map((p, i) =>
    c.push({ index: i, startS: i * 0.5, endS: i * 0.5 + 1, probability: p }),
  );
  const fin = c.finish();
  return {
    updates: [...updates, fin].filter((u) => u !== null),
    confirmedAt: updates.map((u, i) => (u?.type === 'confirmed' ? i : -1)).filter((i) => i >= 0),
  };
}

describe('ScreamConfirmer (k of n with hysteresis)', () => {
  it('one window over the threshold is not an event', () => {
    expect(run([0.1, 0.9, 0.1, 0.1, 0.1]).confirmedAt).toEqual([]);
  });

  it('2 of 3 confirms at the second hit, even with a gap between', () => {
    expect(run([0.9, 0.1, 0.9]).confirmedAt).toEqual([2]);
    expect(run([0.1, 0.9, 0.9]).confirmedAt).toEqual([2]);
  });

  it('hits further apart than n windows do not combine', () => {
    expect(run([0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.9]).confirmedAt).toEqual([]);
  });

  it('a long scream with a one-window breath is one event', () => {
    const r = run([0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1]);
    expect(r.confirmedAt).toEqual([1]);
    const ended = r.updates.filter((u) => u.type === 'ended');
    expect(ended).toHaveLength(1);
    expect(ended[0]!.event).toMatchObject({ startS: 0, endS: 4, detectedAtS: 1.5, peakProbability: 0.9 });
  });

  it('after release, a new scream is a new event', () => {
    expect(run([0.9, 0.9, 0.1, 0.1, 0.9, 0.9]).confirmedAt).toEqual([1, 5]);
  });

  it('tracks the peak probability and closes an open event at finish()', () => {
    const r = run([0.6, 0.7, 0.95, 0.8]);
    const ended = r.updates.at(-1)!;
    expect(ended.type).toBe('ended');
    expect(ended.event.peakProbability).toBe(0.95);
    expect(ended.event.peakWindowIndex).toBe(2);
  });

  it('the threshold is inclusive', () => {
    expect(run([0.5, 0.5]).confirmedAt).toEqual([1]);
  });

  it('rejects impossible settings with the reason', () => {
    expect(() => new ScreamConfirmer({ threshold: 0.5, k: 4, n: 3, releaseWindows: 1 })).toThrow(
      /k must be an integer in 1\.\.n/,
    );
    expect(() => new ScreamConfirmer({ threshold: 1.5, k: 1, n: 1, releaseWindows: 1 })).toThrow(/threshold/);
  });
});
