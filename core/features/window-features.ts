import { FEATURE_SAMPLE_RATE, FRAME_SIZE, type FrameFeatures, N_CHROMA } from './frame-features.ts';

/** A window is 32 frames (1.024 s) and windows start every 16 frames (0.512 s, 50% overlap). */
export const FRAMES_PER_WINDOW = 32;
export const FRAMES_PER_HOP = 16;
export const FRAME_S = FRAME_SIZE / FEATURE_SAMPLE_RATE;
export const WINDOW_S = FRAMES_PER_WINDOW * FRAME_S;
export const HOP_S = FRAMES_PER_HOP * FRAME_S;

/** Frames quieter than the window's loudest by more than this are background, not the sound. */
const ACTIVE_RANGE_DB = 25;
/** Absolute floor for "active": below -75 dBFS is the converter's own noise. */
const ACTIVE_FLOOR_DB = -75;
const VOICED_HARMONICITY = 0.6;
const HIGH_PITCH_HZ = 450;
const N_MFCC_SHAPE = 12;

/**
 * Names the feature computation (rates, frame sizes, formulas). A model records the set it
 * was trained on and refuses to load under another: same column names computed differently
 * would score silently wrong.
 */
export const FEATURE_SET = 'screamwatch-features/2 (16 kHz, 512-sample frames, 32-frame windows)';

/** The model's input columns, in order. Frozen per model: the model file records them. */
export const WINDOW_FEATURE_NAMES: readonly string[] = [
  ...range(N_MFCC_SHAPE).map((i) => `mfcc${i + 1}Mean`),
  ...range(N_MFCC_SHAPE).map((i) => `mfcc${i + 1}Std`),
  ...range(N_MFCC_SHAPE).map((i) => `mfcc${i + 1}Delta`),
  'chromaMean',
  'chromaSpread',
  'chromaStability',
  'zcrMean',
  'zcrStd',
  'centroidMean',
  'centroidStd',
  'rolloffMean',
  'rolloffStd',
  'flatnessMean',
  'flatnessStd',
  'spreadMean',
  'spreadStd',
  'kurtosisMean',
  'fluxMean',
  'fluxStd',
  'highBandMean',
  'highBandStd',
  'levelRangeDb',
  'activeFraction',
  'activeLevelStdDb',
  'maxRiseDb',
  'voicedFraction',
  'harmonicityMean',
  'f0Median',
  'f0P90',
  'f0StdSemitones',
  'highPitchFraction',
  'longestVoicedRun',
];

export interface WindowFeatures {
  /** Model input, WINDOW_FEATURE_NAMES order. */
  values: Float64Array;
  /** Window RMS level in dBFS (for the level gate and reporting; not a model input). */
  levelDbfs: number;
}

/** Summarises FRAMES_PER_WINDOW consecutive frames into one model input row. */
export function summariseWindow(frames: readonly FrameFeatures[]): WindowFeatures {
  const n = frames.length;
  let energy = 0;
  let maxDb = -Infinity;
  for (const f of frames) {
    energy += 10 ** (f.rmsDb / 10);
    if (f.rmsDb > maxDb) maxDb = f.rmsDb;
  }
  const levelDbfs = 10 * Math.log10(Math.max(energy / Math.max(n, 1), 1e-20));
  const gate = Math.max(maxDb - ACTIVE_RANGE_DB, ACTIVE_FLOOR_DB);
  let active = frames.filter((f) => !f.silent && f.rmsDb >= gate);
  if (active.length === 0) active = frames.filter((f) => !f.silent);
  const out = new Float64Array(WINDOW_FEATURE_NAMES.length);
  if (active.length === 0) return { values: out, levelDbfs };

  let o = 0;
  const put = (v: number) => {
    out[o++] = Number.isFinite(v) ? v : 0;
  };
  for (let c = 1; c <= N_MFCC_SHAPE; c++) put(mean(active, (f) => f.mfcc[c]!));
  for (let c = 1; c <= N_MFCC_SHAPE; c++) put(std(active, (f) => f.mfcc[c]!));
  for (let c = 1; c <= N_MFCC_SHAPE; c++) put(meanAbsDelta(active, (f) => f.mfcc[c]!));

  // Chroma: a scream's pitch class is arbitrary, so the 12 bins themselves are noise to a
  // classifier; what carries information is how tonal (peaked) and how stable it is.
  put(mean(active, (f) => avg(f.chroma)));
  put(mean(active, (f) => stdOf(f.chroma)));
  put(chromaStability(active));

  put(mean(active, (f) => f.zcr));
  put(std(active, (f) => f.zcr));
  put(mean(active, (f) => f.centroidHz));
  put(std(active, (f) => f.centroidHz));
  put(mean(active, (f) => f.rolloffHz));
  put(std(active, (f) => f.rolloffHz));
  put(mean(active, (f) => f.flatness));
  put(std(active, (f) => f.flatness));
  put(mean(active, (f) => f.spreadHz));
  put(std(active, (f) => f.spreadHz));
  put(mean(active, (f) => f.kurtosis));
  put(mean(active, (f) => f.flux));
  put(std(active, (f) => f.flux));
  put(mean(active, (f) => f.highBandRatio));
  put(std(active, (f) => f.highBandRatio));

  // Level, only in relative terms: the absolute level says more about the microphone's
  // distance than about the sound.
  const dbs = frames.map((f) => f.rmsDb).sort((a, b) => a - b);
  put(Math.min(quantile(dbs, 0.95) - quantile(dbs, 0.1), 80));
  put(active.length / n);
  put(std(active, (f) => f.rmsDb));
  let maxRise = 0;
  for (let i = 1; i < n; i++)
    maxRise = Math.max(maxRise, frames[i]!.rmsDb - Math.max(frames[i - 1]!.rmsDb, -90));
  put(Math.min(maxRise, 60));

  const voiced = active.filter((f) => f.harmonicity >= VOICED_HARMONICITY);
  put(voiced.length / active.length);
  put(mean(active, (f) => f.harmonicity));
  const f0s = voiced.map((f) => f.f0Hz).sort((a, b) => a - b);
  put(f0s.length ? quantile(f0s, 0.5) : 0);
  put(f0s.length ? quantile(f0s, 0.9) : 0);
  put(f0s.length > 1 ? stdOf(f0s.map((f) => 12 * Math.log2(f / 100))) : 0);
  put(voiced.filter((f) => f.f0Hz >= HIGH_PITCH_HZ).length / active.length);
  let run = 0;
  let longest = 0;
  for (const f of frames) {
    run = !f.silent && f.rmsDb >= gate && f.harmonicity >= VOICED_HARMONICITY ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  put(longest / n);
  return { values: out, levelDbfs };
}

function chromaStability(frames: readonly FrameFeatures[]): number {
  const counts = new Array<number>(N_CHROMA).fill(0);
  for (const f of frames) {
    let arg = 0;
    for (let i = 1; i < N_CHROMA; i++) if (f.chroma[i]! > f.chroma[arg]!) arg = i;
    counts[arg]!++;
  }
  return Math.max(...counts) / frames.length;
}

function mean<T>(xs: readonly T[], get: (x: T) => number): number {
  let s = 0;
  for (const x of xs) s += get(x);
  return s / xs.length;
}

function std<T>(xs: readonly T[], get: (x: T) => number): number {
  if (xs.length < 2) return 0;
  const m = mean(xs, get);
  let s = 0;
  for (const x of xs) s += (get(x) - m) ** 2;
  return Math.sqrt(s / xs.length);
}

function meanAbsDelta<T>(xs: readonly T[], get: (x: T) => number): number {
  if (xs.length < 2) return 0;
  let s = 0;
  for (let i = 1; i < xs.length; i++) s += Math.abs(get(xs[i]!) - get(xs[i - 1]!));
  return s / (xs.length - 1);
}

function avg(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}

function stdOf(a: ArrayLike<number>): number {
  const m = avg(a);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - m) ** 2;
  return Math.sqrt(s / a.length);
}

function quantile(sorted: readonly number[], q: number): number {
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))));
  return sorted[idx]!;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
