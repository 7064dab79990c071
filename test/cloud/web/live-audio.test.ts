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
    it(`turns ${rate} Hz input in odd-sized blocks into 0.25 s chunks at 16 kHz, the same samples as a whole-buffer resample`, () => {
      const input = tone(rate, 2, 1000);
      const r = new ChunkResampler(rate);
      const out: Float32Array[] = [];
      // ScriptProcessor hands over 4096-sample blocks, which do not line up with 0.25 s
      for (let at = 0; at < input.length; at += 4096) out.push(...r.push(input.subarray(at, at + 4096)));
      expect(out.every((c) => c.length === 4000)).toBe(true);
      // at 44.1/48 kHz the last few samples wait for their right-hand taps: 7 whole chunks of 8
      expect(out.length).toBe(rate === 16_000 ? 8 : 7);
      const joined = new Float32Array(out.length * 4000);
      for (const [i, c] of out.entries()) joined.set(c, i * 4000);
      const whole = resample(input, rate, 16_000);
      // what the sensor's decoder and the upload analysis compute, to the bit (no seams)
      expect(joined).toEqual(whole.subarray(0, joined.length));
    });
  }

  it('reports the level in dBFS', () => {
    expect(rmsDbfs(tone(16_000, 1, 440))).toBeCloseTo(-9.03, 1);
    expect(rmsDbfs(new Float32Array(100))).toBe(-120);
  });
});
