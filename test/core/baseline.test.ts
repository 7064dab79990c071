import { describe, expect, it } from 'vitest';
import { baselineFeatures, validateBaseline } from '../../core/train/baseline.ts';
import { clipFeaturesOf, clipScores } from '../../core/train/pipeline.ts';
import { seededRandom } from '../../core/train/random.ts';

const RATE = 16000;

function tone(hz: number, seconds: number, amplitude: number): Float32Array {
  const x = new Float32Array(Math.round(seconds * RATE));
  for (let i = 0; i < x.length; i++) x[i] = amplitude * Math.sin((2 * Math.PI * hz * i) / RATE);
  return x;
}

function noise(seconds: number, amplitude: number, random: () => number): Float32Array {
  const x = new Float32Array(Math.round(seconds * RATE));
  for (let i = 0; i < x.length; i++) x[i] = amplitude * (random() * 2 - 1);
  return x;
}

describe('plain whole-clip baseline', () => {
  it('has 27 time means per clip: 13 MFCC, 12 chroma, ZCR and the RMS level', () => {
    const loud = baselineFeatures(tone(1000, 1, 0.5));
    const quiet = baselineFeatures(tone(1000, 1, 0.05));
    expect(loud).toHaveLength(27);
    // a sine of amplitude a has RMS a/sqrt(2): -9.03 dBFS at 0.5, -29.03 at 0.05
    expect(loud[26]).toBeCloseTo(-9.03, 1);
    expect(quiet[26]).toBeCloseTo(-29.03, 1);
    // the spectral means do not depend on level (frames are gain-normalised)
    for (let i = 0; i < 26; i++) expect(quiet[i]).toBeCloseTo(loud[i]!, 6);
    // ZCR of a 1 kHz sine: two crossings a cycle, 2000 of 16000 samples
    expect(loud[25]).toBeCloseTo(0.125, 2);
  });

  it('gives digital silence an RMS marker and no spectral shape instead of NaN', () => {
    const f = baselineFeatures(new Float32Array(RATE));
    expect(f[26]).toBe(-200);
    expect([...f.subarray(0, 26)].every((v) => v === 0)).toBe(true);
  });

  it('takes its rows from the frames clipFeaturesOf already analysed, bit for bit, short and odd-length clips too', () => {
    const random = seededRandom(9);
    const samples = [
      tone(700, 2.3, 0.3),
      noise(0.4, 0.2, random),
      tone(1500, 1.01, 0.1),
      new Float32Array(5000),
    ];
    const clips = samples.map((x, i) => ({
      label: (i % 2) as 0 | 1,
      source: `s${i}`,
      recording: `s${i}/c${i}.wav`,
      license: 'test',
      durationS: x.length / RATE,
      file: `c${i}.wav`,
      samples: x,
    }));
    const features = clipFeaturesOf(clips);
    for (const [i, f] of features.entries()) {
      expect([...f.baselineRow!]).toEqual([...baselineFeatures(samples[i]!)]);
    }
    // and validation on those rows is validation on the samples
    const groups = ['a', 'a', 'b', 'b'];
    const options = { nEstimators: 5, maxDepth: 4, minSamplesSplit: 2, minSamplesLeaf: 1, seed: 1 };
    expect(validateBaseline(features, groups, options)).toEqual(validateBaseline(clips, groups, options));
    expect(() => validateBaseline([{ label: 0, source: 'x' }], ['a'])).toThrow(/baselineRow or its samples/);
  });

  it('ranks held-out groups it can tell apart, deterministically, and skips folds without both classes to train on', () => {
    const random = seededRandom(5);
    const clips: { label: 0 | 1; samples: Float32Array; source: string }[] = [];
    const groups: string[] = [];
    for (let g = 0; g < 4; g++) {
      for (let i = 0; i < 6; i++) {
        clips.push({ label: 1, samples: tone(900 + 150 * i + 40 * g, 1, 0.1 + 0.05 * g), source: `s${g}` });
        clips.push({ label: 0, samples: noise(1, 0.1 + 0.05 * g, random), source: `s${g}` });
        groups.push(`g${g}`, `g${g}`);
      }
    }
    const options = { nEstimators: 20, maxDepth: 8, minSamplesSplit: 2, minSamplesLeaf: 1, seed: 1 };
    const a = validateBaseline(clips, groups, options);
    const b = validateBaseline(clips, groups, options);
    expect(a).toEqual(b);
    expect(a.clips.count).toBe(48);
    expect(a.clips.rocAuc).toBeGreaterThan(0.95);
    expect(a.groups.map((x) => x.group)).toEqual(['g0', 'g1', 'g2', 'g3']);
    expect(a.groups.every((x) => x.clipRocAuc !== null)).toBe(true);

    // with every scream in one group, holding that group out leaves no scream to train on:
    // its clips are not scored at all, rather than scored by a one-class forest
    const onlyScreams = clips.map((c, i) => (c.label === 1 ? 'screams' : groups[i]!));
    const c = validateBaseline(clips, onlyScreams, options);
    expect(c.clips.count).toBe(24);
    expect(c.clips.screams).toBe(0);
    expect(c.groups.find((x) => x.group === 'screams')?.clipRocAuc).toBeNull();
  });
});

describe('clip scores', () => {
  it('score a clip by its highest window and rank clips, not windows', () => {
    const clip = (label: 0 | 1, probs: number[]) => ({
      label,
      durationS: probs.length,
      windows: probs.map((probability, index) => ({ index, startS: index, endS: index + 1, probability })),
    });
    // by windows the scream clip's many low windows rank under the non-screams' highs;
    // by clips the scream clip's one high window puts it first
    const r = clipScores([clip(1, [0.1, 0.1, 0.1, 0.9]), clip(0, [0.5, 0.6]), clip(0, [0.4]), clip(0, [])]);
    expect(r).toEqual({ count: 4, screams: 1, rocAuc: 1, averagePrecision: 1 });
    expect(clipScores([clip(1, [0.3]), clip(0, [0.1, 0.8])]).rocAuc).toBe(0);
  });
});
