import { describe, expect, it } from 'vitest';
import { WINDOW_FEATURE_NAMES } from '../../core/features/window-features.ts';
import type { FeatureWindow } from '../../core/features/window-stream.ts';
import {
  activeRms,
  applyRecordingChain,
  bandEnergies,
  changeSpeed,
  eqTilt,
  lowPass,
  randomRecordingChain,
  reverberate,
  softClip,
  telephoneBand,
} from '../../core/train/augment.ts';
import type { Clip } from '../../core/train/dataset.ts';
import {
  buildMixes,
  type ClipFeatures,
  clipFeaturesOf,
  DEFAULT_AUGMENT,
  windowsOf,
} from '../../core/train/pipeline.ts';
import { seededRandom } from '../../core/train/random.ts';

function whiteNoise(n: number, seed = 3): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * 0.3);
}
const share = (e: number[], i: number) => e[i]! / e.reduce((a, b) => a + b, 0);

describe('recording-chain augmentation', () => {
  it('low-pass removes the energy above its cut and keeps what is below', () => {
    const x = whiteNoise(16000 * 2);
    for (const cut of [3400, 4000, 5500]) {
      const before = bandEnergies(x, [cut * 0.8, cut * 1.3]);
      const after = bandEnergies(lowPass(x, cut), [cut * 0.8, cut * 1.3]);
      // above 1.3 x cut: at least 30 dB less energy than before
      expect(after[2]! / before[2]!).toBeLessThan(1e-3);
      // below 0.8 x cut: within 1 dB
      expect(Math.abs(10 * Math.log10(after[0]! / before[0]!))).toBeLessThan(1);
    }
  });

  it('the telephone band removes both ends', () => {
    const x = whiteNoise(16000 * 2);
    const e = bandEnergies(telephoneBand(x), [150, 500, 3000, 4500]);
    expect(share(e, 0)).toBeLessThan(0.005);
    expect(share(e, 4)).toBeLessThan(0.001);
    expect(share(e, 2)).toBeGreaterThan(0.8);
  });

  it('EQ tilt moves energy between the low and the high band by about its gain', () => {
    const x = whiteNoise(16000 * 2);
    const ratio = (y: Float32Array) => {
      const e = bandEnergies(y, [800, 4000]);
      return 10 * Math.log10(e[2]! / e[0]!);
    };
    expect(ratio(eqTilt(x, 9)) - ratio(x)).toBeGreaterThan(6);
    expect(ratio(eqTilt(x, -9)) - ratio(x)).toBeLessThan(-6);
  });

  it('reverb keeps the length, the active level (±1 dB) and full scale, and leaves a decaying tail', () => {
    const r = seededRandom(5);
    const x = new Float32Array(16000 * 2);
    for (let i = 4000; i < 8000; i++) x[i] = 0.5 * Math.sin((2 * Math.PI * 900 * i) / 16000);
    const energy = (y: Float32Array, from: number, to: number) => {
      let e = 0;
      for (let i = from; i < to; i++) e += y[i]! ** 2;
      return e;
    };
    for (const rt60S of [0.2, 0.6, 1.0]) {
      const y = reverberate(x, { rt60S, directToReverbDb: 0 }, r);
      expect(y.length).toBe(x.length);
      expect(Math.abs(20 * Math.log10(activeRms(y) / activeRms(x)))).toBeLessThan(1);
      expect(Math.max(...y.map(Math.abs))).toBeLessThanOrEqual(1);
      // 150-250 ms after the tone stops (past the delay lines' first pass): a tail that
      // decays by about 60 dB per rt60 (15 dB per 50 ms at 0.2 s, 3 dB at 1 s)
      const tail1 = energy(y, 10400, 11200);
      const tail2 = energy(y, 11200, 12000);
      expect(tail1).toBeGreaterThan(0);
      expect(tail2).toBeLessThan(tail1);
      if (rt60S === 1.0) expect(tail2 / tail1).toBeGreaterThan(0.3);
      if (rt60S === 0.2) expect(tail2 / tail1).toBeLessThan(0.1);
    }
  });

  it('soft clipping keeps the peak and compresses the crest factor', () => {
    const x = Float32Array.from({ length: 1600 }, (_, i) => 0.8 * Math.sin((2 * Math.PI * 200 * i) / 16000));
    const y = softClip(x, 12);
    expect(Math.max(...y)).toBeCloseTo(0.8, 3);
    expect(activeRms(y)).toBeGreaterThan(activeRms(x) * 1.15);
  });

  it('a random chain keeps the length and stays within full scale, reproducibly', () => {
    const x = whiteNoise(16000);
    const a = seededRandom(9);
    const b = seededRandom(9);
    for (let i = 0; i < 20; i++) {
      const ya = applyRecordingChain(x, randomRecordingChain(a), a);
      const yb = applyRecordingChain(x, randomRecordingChain(b), b);
      expect(ya.length).toBe(x.length);
      expect(ya).toEqual(yb);
      expect(Math.max(...ya.map(Math.abs))).toBeLessThanOrEqual(1);
    }
  });

  it('a speed change moves pitch and length together, within the band', () => {
    const x = Float32Array.from({ length: 16000 }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 800 * i) / 16000));
    const crossings = (y: Float32Array) => {
      let n = 0;
      for (let i = 1000; i < y.length - 1000; i++) if (y[i - 1]! < 0 && y[i]! >= 0) n++;
      return n / ((y.length - 2000) / 16000);
    };
    for (const factor of [0.85, 1.15]) {
      const y = changeSpeed(x, factor);
      expect(Math.abs(y.length - 16000 / factor)).toBeLessThanOrEqual(2);
      expect(crossings(y)).toBeCloseTo(800 * factor, -1);
      expect(Math.max(...y.map(Math.abs))).toBeLessThan(0.52);
    }
    expect(() => changeSpeed(x, 3)).toThrow(/speed factor/);
  });
});

describe('copies per non-scream clip', () => {
  const random = seededRandom(5);
  const clips: Clip[] = Array.from({ length: 42 }, (_, i) => ({
    file: `${i < 2 ? 'scream' : 'non_scream'}/c${i}.wav`,
    label: i < 2 ? 1 : 0,
    source: `s${i % 3}`,
    recording: `r${i}`,
    license: 'test',
    samples: Float32Array.from({ length: 16000 }, () => 0.2 * (random() - 0.5)),
    durationS: 1,
  }));
  // one window per copy: the test counts copies, not features
  const featurize = (): FeatureWindow[] => [
    {
      values: new Float64Array(WINDOW_FEATURE_NAMES.length),
      levelDbfs: -20,
      index: 0,
      startS: 0,
      endS: 1.024,
    },
  ];
  const features: ClipFeatures[] = clips.map((c, i) => ({
    clip: i,
    label: c.label,
    source: c.source,
    durationS: 1,
    windows: featurize(),
  }));
  const copiesPerClip = (share: number) => {
    const mixes = buildMixes(
      clips,
      features,
      3,
      { ...DEFAULT_AUGMENT, nonScreamShare: share },
      undefined,
      featurize,
    );
    const n = new Map<number, number>();
    for (const m of mixes) if (m.label === 0) n.set(m.clips[0], (n.get(m.clips[0]) ?? 0) + 1);
    return clips.slice(2).map((_c, i) => n.get(i + 2) ?? 0);
  };

  it('a whole number is that many copies of every clip; a fraction adds one more by chance', () => {
    expect(copiesPerClip(2)).toEqual(new Array(40).fill(2));
    expect(copiesPerClip(1)).toEqual(new Array(40).fill(1));
    const mixed = copiesPerClip(1.5);
    expect(mixed.every((c) => c === 1 || c === 2)).toBe(true);
    const total = mixed.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThan(50);
    expect(total).toBeLessThan(70);
    expect(copiesPerClip(0).every((c) => c === 0)).toBe(true);
  });
});

describe('scream copies set inside their background', () => {
  // one 0.6 s scream-like sweep, and noise-like non-scream clips to serve as backgrounds
  const random = seededRandom(9);
  const scream = Float32Array.from(
    { length: 9600 },
    (_, i) => 0.5 * Math.sin(2 * Math.PI * (900 + i / 20) * (i / 16000)),
  );
  const clips: Clip[] = [
    {
      file: 'scream/s.wav',
      label: 1,
      source: 'a',
      recording: 'a',
      license: 't',
      samples: scream,
      durationS: 0.6,
    },
    ...Array.from({ length: 4 }, (_, i) => ({
      file: `non_scream/n${i}.wav`,
      label: 0 as const,
      source: 'b',
      recording: `b${i}`,
      license: 't',
      samples: Float32Array.from({ length: 16000 * 4 }, () => 0.1 * (random() * 2 - 1)),
      durationS: 4,
    })),
  ];
  const features = clipFeaturesOf(clips);
  const copies = (mixContext?: { leadMaxS: number; tailMinS: number; tailMaxS: number }) => {
    const heard: Float32Array[] = [];
    const mixes = buildMixes(
      clips,
      features,
      4,
      { ...DEFAULT_AUGMENT, perScream: 12, nonScreamShare: 0, mixShare: 1, speedShare: 0, mixContext },
      undefined,
      (samples) => {
        heard.push(samples);
        return windowsOf(samples);
      },
    );
    return mixes.map((m, i) => ({ mix: m, samples: heard[i]! }));
  };

  it('puts 0..lead s of the room before the scream and tail s after, and keeps only the windows on the scream', () => {
    const withContext = copies({ leadMaxS: 1.5, tailMinS: 1, tailMaxS: 1.5 });
    expect(withContext).toHaveLength(12);
    for (const { mix, samples } of withContext) {
      const extraS = samples.length / 16000 - 0.6;
      expect(extraS).toBeGreaterThanOrEqual(1 - 1e-3);
      expect(extraS).toBeLessThanOrEqual(3 + 1e-3);
      // the last second is the room alone, not digital silence
      const tail = samples.subarray(samples.length - 16000);
      expect(Math.sqrt(tail.reduce((a, v) => a + v * v, 0) / tail.length)).toBeGreaterThan(1e-4);
      // a 0.6 s scream is one clean window: every copy keeps the window nearest to where the
      // lead put it (one, or two when the scream straddles a hop), never the room before it
      expect(mix.windows.length).toBeGreaterThanOrEqual(1);
      expect(mix.windows.length).toBeLessThanOrEqual(2);
      // lead = extra - tail with the tail in 1..1.5 s: the first kept window starts within
      // half a hop of the lead (a mapping that ignored the lead would keep the room's window 0)
      expect(mix.windows[0]!.startS).toBeLessThanOrEqual(extraS - 1 + 0.256 + 1e-9);
      expect(mix.windows[0]!.startS).toBeGreaterThanOrEqual(extraS - 1.5 - 0.256 - 1e-9);
    }
    expect(withContext.some(({ mix }) => mix.windows[0]!.startS >= 0.5)).toBe(true);
    // the leads differ from copy to copy
    expect(new Set(withContext.map((c) => c.samples.length)).size).toBeGreaterThan(6);
    // without it a copy is exactly as long as its clip (and padded with silence to one window)
    for (const { samples, mix } of copies(undefined)) {
      expect(samples.length).toBe(9600);
      expect(mix.windows).toHaveLength(1);
    }
  });
});
