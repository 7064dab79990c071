import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { analyzeSamples } from '../../core/detect/analyze.ts';
import { WindowFeatureStream } from '../../core/features/window-stream.ts';
import { loadModelFile } from '../../core/model/load.ts';

/**
 * The shipped model was trained on these features: a change to the feature code that moves a
 * single bit of a window's vector (a faster FFT, a cheaper pitch search) must come with a
 * retrained, re-validated model. Signals are generated here (no sox/espeak version drift):
 * a vibrato shriek, a chirp, speech-like harmonics with pauses, noise, clicks, near-silence.
 */
function signals(): Record<string, Float32Array> {
  const n = 16000 * 6;
  let seed = 11;
  const rnd = () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647 - 0.5;
  };
  const make = (f: (t: number, i: number) => number) =>
    Float32Array.from({ length: n }, (_, i) => f(i / 16000, i));
  let phase = 0;
  return {
    shriek: make((t) => {
      phase += (2 * Math.PI * (1100 + 120 * Math.sin(2 * Math.PI * 6 * t))) / 16000;
      return 0.5 * (Math.sin(phase) + 0.4 * Math.sin(2 * phase) + 0.2 * Math.sin(3 * phase)) + 0.02 * rnd();
    }),
    chirp: make((t) => 0.3 * Math.sin(2 * Math.PI * (200 * t + 600 * t * t))),
    speechLike: make((t) => {
      const f0 = 160 + 60 * Math.sin(t * 1.7);
      const gate = t % 1.3 < 0.9 ? 1 : 0.02;
      return (
        gate * 0.2 * (Math.sin(2 * Math.PI * f0 * t) + 0.6 * Math.sin(4 * Math.PI * f0 * t)) + 0.005 * rnd()
      );
    }),
    noise: make(() => 0.3 * rnd()),
    clicks: make((_, i) => (i % 4000 < 40 ? 0.8 * rnd() : 0.001 * rnd())),
    nearSilence: make(() => 2e-5 * rnd()),
  };
}

function digest(values: Float64Array[] | number[]): string {
  const h = createHash('sha256');
  for (const v of values)
    h.update(
      typeof v === 'number'
        ? Buffer.from(new Float64Array([v]).buffer)
        : Buffer.from(v.buffer, v.byteOffset, v.byteLength),
    );
  return h.digest('hex').slice(0, 16);
}

describe('feature golden values (the shipped model was trained on exactly these)', () => {
  it('window feature vectors and model probabilities are unchanged to the bit', () => {
    const model = loadModelFile();
    const got: Record<string, { features: string; probabilities: string }> = {};
    for (const [name, x] of Object.entries(signals())) {
      const windows = new WindowFeatureStream().push(x);
      got[name] = {
        features: digest(windows.map((w) => Float64Array.from(w.values))),
        probabilities: digest(analyzeSamples(x, model).windows.map((w) => w.probability)),
      };
    }
    expect(got).toEqual(GOLDEN);
  });
});

// Features: unchanged since they were recorded. Probabilities: of the shipped model
// 2026-12-04-c0d7b46e (retraining changes them; the features must not change without a new featureSet).
const GOLDEN = {
  shriek: { features: 'd53db55344deb567', probabilities: '4fe0600755001d3c' },
  chirp: { features: '514fbeb17775ff33', probabilities: 'a3321a509d992ece' },
  speechLike: { features: '9738a21f9deab64c', probabilities: 'd5d79118c4330788' },
  noise: { features: '417e312dfeb3e250', probabilities: 'e877c9eb6b1d7222' },
  clicks: { features: '86c3d971ceb9af58', probabilities: '7f4e4d027dd080ee' },
  nearSilence: { features: '7e9b40a541c43371', probabilities: '5b6fb58e61fa4759' },
};
