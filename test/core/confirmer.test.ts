import { describe, expect, it } from 'vitest';
import { type ConfirmerOptions, ScreamConfirmer } from '../../core/detect/confirmer.ts';

function run(probs: number[], opts: ConfirmerOptions = { threshold: 0.5, k: 2, n: 3, releaseWindows: 2 }) {
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

describe('ScreamConfirmer: short-scream rule and what the event carries', () => {
  const opts = { threshold: 0.5, k: 2, n: 2, releaseWindows: 2, singleWindowThreshold: 0.9 };

  it('one window at the single-window threshold confirms alone; below it needs k of n', () => {
    expect(run([0.1, 0.95, 0.1, 0.1], opts).confirmedAt).toEqual([1]);
    expect(run([0.1, 0.85, 0.1, 0.1], opts).confirmedAt).toEqual([]);
    const r = run([0.1, 0.95, 0.1, 0.1], opts);
    const confirmed = r.updates.find((u) => u.type === 'confirmed')!;
    expect(confirmed.event).toMatchObject({ rule: 'single-window', startS: 0.5, detectedAtS: 1.5 });
    expect(run([0.6, 0.7], opts).updates[0]!.event.rule).toBe('k-of-n');
  });

  it('the event carries its peak window and its window scores', () => {
    const c = new ScreamConfirmer<{
      index: number;
      startS: number;
      endS: number;
      probability: number;
      tag: string;
    }>({ threshold: 0.5, k: 2, n: 3, releaseWindows: 2 });
    const w = (i: number, p: number) => ({ index: i, startS: i, endS: i + 1, probability: p, tag: `w${i}` });
    expect(c.push(w(0, 0.2))).toBeNull();
    expect(c.push(w(1, 0.8))).toBeNull();
    const u = c.push(w(2, 0.6))!;
    expect(u.type).toBe('confirmed');
    expect(u.event.peakWindow.tag).toBe('w1');
    expect(u.event.windows.map((x) => x.probability)).toEqual([0.2, 0.8, 0.6]);
    c.push(w(3, 0.99));
    c.push(w(4, 0.1));
    const end = c.push(w(5, 0.1))!;
    expect(end.type).toBe('ended');
    expect(end.event.peakWindow.tag).toBe('w3');
    expect(end.event.windows.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5]);
    // the confirmed update was a snapshot: later windows did not change it
    expect(u.event.windows).toHaveLength(3);
  });

  it('rejects a single-window threshold outside (0, 1]', () => {
    expect(() => new ScreamConfirmer({ ...opts, singleWindowThreshold: 1.2 })).toThrow(
      /singleWindowThreshold/,
    );
  });
});
