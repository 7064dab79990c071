import Meyda from 'meyda';
import { describe, expect, it } from 'vitest';
import {
  FEATURE_SAMPLE_RATE,
  FRAME_SIZE,
  FrameFeatureExtractor,
  meydaChroma,
  meydaMfcc,
  meydaSpectralMoments,
} from '../../core/features/frame-features.ts';
import { MeydaSpectrum } from '../../core/features/spectrum.ts';
import { WINDOW_FEATURE_NAMES, WINDOW_S } from '../../core/features/window-features.ts';
import { WindowFeatureStream } from '../../core/features/window-stream.ts';

const tone = (hz: number, n: number, rate: number, amp = 0.5) =>
  Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * hz * i) / rate));
const featureOf = (values: Float64Array, name: string) => values[WINDOW_FEATURE_NAMES.indexOf(name)]!;

describe('frame features on known signals', () => {
  const ex = new FrameFeatureExtractor();
  const f = ex.extract(tone(1000, FRAME_SIZE, FEATURE_SAMPLE_RATE));

  it('a 1 kHz tone: centroid in Hz (Meyda returns a bin index), pitch, ZCR', () => {
    expect(f.silent).toBe(false);
    expect(f.centroidHz).toBeGreaterThan(900);
    expect(f.centroidHz).toBeLessThan(1150);
    expect(f.f0Hz).toBeGreaterThan(980);
    expect(f.f0Hz).toBeLessThan(1020);
    expect(f.harmonicity).toBeGreaterThan(0.95);
    // a sine crosses zero twice a period: 2 * 1000 / 16000 per sample
    expect(f.zcr).toBeCloseTo(0.125, 2);
    expect(f.rolloffHz).toBeLessThan(1500);
    expect(f.highBandRatio).toBeLessThan(0.01);
  });

  it('spectral features do not depend on loudness', () => {
    const quiet = new FrameFeatureExtractor().extract(tone(1000, FRAME_SIZE, FEATURE_SAMPLE_RATE, 0.005));
    expect(quiet.rmsDb).toBeLessThan(f.rmsDb - 35);
    expect(quiet.centroidHz).toBeCloseTo(f.centroidHz, 3);
    for (let i = 1; i < quiet.mfcc.length; i++) expect(quiet.mfcc[i]).toBeCloseTo(f.mfcc[i]!, 3);
  });

  it('a 6 kHz tone sits in the high band', () => {
    const hi = new FrameFeatureExtractor().extract(tone(6000, FRAME_SIZE, FEATURE_SAMPLE_RATE));
    expect(hi.highBandRatio).toBeGreaterThan(0.95);
    expect(hi.centroidHz).toBeGreaterThan(5700);
  });

  it('silence is flagged and has no NaN (Meyda gives NaN centroid/flatness on zeros)', () => {
    const s = new FrameFeatureExtractor().extract(new Float32Array(FRAME_SIZE));
    expect(s.silent).toBe(true);
    for (const v of [s.centroidHz, s.flatness, s.zcr, s.f0Hz, ...s.mfcc, ...s.chroma])
      expect(Number.isFinite(v)).toBe(true);
  });

  it('white noise is flat and unvoiced', () => {
    let seed = 1;
    const rnd = () => {
      seed = (seed * 16807) % 2147483647;
      return (seed / 2147483647) * 2 - 1;
    };
    const n = new FrameFeatureExtractor().extract(Float32Array.from({ length: FRAME_SIZE }, rnd));
    expect(n.flatness).toBeGreaterThan(0.4);
    expect(n.harmonicity).toBeLessThan(0.5);
  });
});

describe('the spectrum, MFCC, chroma and spectral moments equal Meyda.extract to the bit', () => {
  it('on tones, noise and a sweep', () => {
    const spectrum = new MeydaSpectrum(FRAME_SIZE, FEATURE_SAMPLE_RATE);
    new FrameFeatureExtractor().extract(tone(440, FRAME_SIZE, FEATURE_SAMPLE_RATE)); // configures Meyda
    const m = Meyda as unknown as {
      extract: (
        f: string[],
        s: Float32Array,
      ) => { mfcc: number[]; chroma: number[]; amplitudeSpectrum: Float32Array };
    };
    let seed = 3;
    const frames = [
      tone(440, FRAME_SIZE, FEATURE_SAMPLE_RATE, 0.1),
      tone(2500, FRAME_SIZE, FEATURE_SAMPLE_RATE, 0.3),
      Float32Array.from(
        { length: FRAME_SIZE },
        (_, i) => 0.2 * Math.sin((2 * Math.PI * (300 + i * 4) * i) / 16000),
      ),
      ...Array.from({ length: 20 }, () =>
        Float32Array.from({ length: FRAME_SIZE }, () => {
          seed = (seed * 16807) % 2147483647;
          return (seed / 2147483647 - 0.5) * 0.4;
        }),
      ),
    ];
    for (const frame of frames) {
      const ref = m.extract(
        [
          'mfcc',
          'chroma',
          'amplitudeSpectrum',
          'spectralCentroid',
          'spectralSpread',
          'spectralKurtosis',
          'zcr',
          'spectralRolloff',
          'spectralFlatness',
        ],
        frame,
      ) as unknown as Record<string, number> & {
        mfcc: number[];
        chroma: number[];
        amplitudeSpectrum: Float32Array;
      };
      expect(meydaSpectralMoments(ref.amplitudeSpectrum)).toEqual({
        centroid: ref.spectralCentroid,
        spread: ref.spectralSpread,
        kurtosis: ref.spectralKurtosis,
      });
      expect(meydaMfcc(ref.amplitudeSpectrum)).toEqual(Array.from(ref.mfcc));
      expect(meydaChroma(ref.amplitudeSpectrum)).toEqual(Array.from(ref.chroma));
      spectrum.compute(frame);
      expect(spectrum.amp).toEqual(ref.amplitudeSpectrum);
      expect([spectrum.zcr(), spectrum.rolloff(), spectrum.flatness()]).toEqual([
        ref.zcr,
        ref.spectralRolloff,
        ref.spectralFlatness,
      ]);
    }
  });
});

describe('window stream', () => {
  it('cuts 1.024 s windows every 0.512 s, independent of chunking', () => {
    const x = Float32Array.from({ length: 16000 * 5 }, (_, i) => Math.sin(i / 7) * Math.sin(i / 3000) * 0.3);
    const whole = new WindowFeatureStream().push(x);
    const s = new WindowFeatureStream();
    const chunked = [];
    for (let at = 0; at < x.length; at += 777) chunked.push(...s.push(x.subarray(at, at + 777)));
    expect(whole.length).toBe(8);
    expect(whole[0]!.endS - whole[0]!.startS).toBeCloseTo(WINDOW_S, 6);
    expect(whole[1]!.startS).toBeCloseTo(0.512, 6);
    expect(chunked.length).toBe(whole.length);
    for (let w = 0; w < whole.length; w++) {
      expect(Array.from(chunked[w]!.values)).toEqual(Array.from(whole[w]!.values));
    }
  });

  it('summarises a window: a 900 Hz tone is voiced and high-pitched, silence scores nothing', () => {
    const [w] = new WindowFeatureStream().push(tone(900, 17000, 16000, 0.3));
    expect(featureOf(w!.values, 'voicedFraction')).toBeGreaterThan(0.9);
    expect(featureOf(w!.values, 'f0Median')).toBeGreaterThan(850);
    expect(featureOf(w!.values, 'f0Median')).toBeLessThan(950);
    expect(featureOf(w!.values, 'highPitchFraction')).toBeGreaterThan(0.9);
    expect(w!.levelDbfs).toBeCloseTo(20 * Math.log10(0.3 / Math.SQRT2), 0);
    const [s] = new WindowFeatureStream().push(new Float32Array(17000));
    expect(Array.from(s!.values).every((v) => v === 0)).toBe(true);
    expect(s!.levelDbfs).toBeLessThan(-150);
  });
});
