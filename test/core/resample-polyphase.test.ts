import { describe, expect, it } from 'vitest';
import { resample, resamplePolyphase } from '../../core/audio/resample.ts';

function signal(n: number, seed: number): Float32Array {
  let s = seed;
  const rnd = () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647 - 0.5;
  };
  return Float32Array.from({ length: n }, (_, i) => 0.4 * Math.sin(i * 0.173) + 0.3 * rnd());
}

describe('polyphase resampling (training-time speed copies)', () => {
  // the speed copies' rate pairs (13.6-18.4 kHz in 100 Hz steps -> 16 kHz) and decoder-like ones
  const pairs: [number, number][] = [
    [13_600, 16_000],
    [15_200, 16_000],
    [16_900, 16_000],
    [18_400, 16_000],
    [44_100, 16_000],
    [8_000, 16_000],
  ];
  for (const [from, to] of pairs) {
    it(`${from} -> ${to} Hz: the same samples as the per-sample kernel, edges included`, () => {
      for (const n of [1, 7, 200, 12_345]) {
        const x = signal(n, n + from);
        const a = resample(x, from, to);
        const b = resamplePolyphase(x, from, to);
        expect(b.length).toBe(a.length);
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        // tap positions are exact fractions here, per-sample divisions there: float rounding only
        expect(worst).toBeLessThan(1e-6);
      }
    });
  }

  it('returns the input at equal rates and refuses what it cannot tabulate', () => {
    const x = signal(100, 3);
    expect(resamplePolyphase(x, 16_000, 16_000)).toBe(x);
    expect(() => resamplePolyphase(x, 16_001, 16_000)).toThrow(/16000 kernel phases/);
    expect(() => resamplePolyphase(x, 15_999.5, 16_000)).toThrow(/positive integers/);
  });
});
