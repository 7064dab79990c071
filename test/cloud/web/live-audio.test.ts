import { describe, expect, it } from 'vitest';
import { ChunkResampler, rmsDbfs } from '../../../cloud/web/client/live-audio.ts';
import { resample } from '../../../core/audio/resample.ts';

function tone(rate: number, seconds: number, hz: number): Float32Array {
  return Float32Array.from(
    { length: Math.round(rate * seconds) },
    (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * i) / rate),
  );
}

describe('live microphone resampling (browser)', () => {
  for (const rate of [48_000, 44_100, 16_000]) {
    it(`turns ${rate} Hz input in odd-sized blocks into 0.25 s chunks at 16 kHz matching a whole-buffer resample`, () => {
      const input = tone(rate, 2, 1000);
      const r = new ChunkResampler(rate);
      const out: Float32Array[] = [];
      // ScriptProcessor hands over 4096-sample blocks, which do not line up with 0.25 s
      for (let at = 0; at < input.length; at += 4096) out.push(...r.push(input.subarray(at, at + 4096)));
      expect(out.every((c) => c.length === 4000)).toBe(true);
      // one chunk is held back until its right-hand context arrives
      expect(out.length).toBe(7);
      const joined = new Float32Array(out.length * 4000);
      for (const [i, c] of out.entries()) joined.set(c, i * 4000);
      const whole = resample(input, rate, 16_000);
      let maxErr = 0;
      for (let i = 200; i < joined.length; i++) maxErr = Math.max(maxErr, Math.abs(joined[i]! - whole[i]!));
      // chunk seams are inaudible: the same samples as resampling the recording at once
      expect(maxErr).toBeLessThan(0.01);
    });
  }

  it('reports the level in dBFS', () => {
    expect(rmsDbfs(tone(16_000, 1, 440))).toBeCloseTo(-9.03, 1);
    expect(rmsDbfs(new Float32Array(100))).toBe(-120);
  });
});
