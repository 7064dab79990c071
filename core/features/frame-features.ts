import Meyda from 'meyda';
import { MeydaSpectrum } from './spectrum.ts';

/**
 * Features are computed on the full 0-8 kHz band. (An earlier version analysed 0-4 kHz only,
 * to hide the bandwidth differences between training corpora; validated leave-one-source-out
 * it did much worse, ROC-AUC 0.74 against 0.90: a scream's energy above 4 kHz is part of
 * what makes it a scream.)
 */
export const FEATURE_SAMPLE_RATE = 16000;
/** 32 ms frames, no overlap: 31.25 frames a second. */
export const FRAME_SIZE = 512;
export const N_MFCC = 13;
export const N_CHROMA = 12;
/** Frames are gain-normalised to this RMS before spectral analysis (see FrameFeatureExtractor). */
const FRAME_TARGET_RMS = 0.1;
/** Below this a frame is digital silence: no spectral shape to speak of. */
const SILENT_RMS = 1e-5;
/**
 * Pitch is estimated on the frame decimated 2:1 (pairs averaged, 8 kHz): fundamentals up to
 * 1.6 kHz stay well inside the band and the autocorrelation costs a quarter.
 */
const PITCH_RATE = FEATURE_SAMPLE_RATE / 2;
/** Pitch search range for the autocorrelation, 130 Hz - 1.6 kHz (speech to shrieks). */
const MIN_LAG = Math.floor(PITCH_RATE / 1600);
const MAX_LAG = Math.ceil(PITCH_RATE / 130);

export interface FrameFeatures {
  /** Raw frame level in dBFS (before normalisation). */
  rmsDb: number;
  silent: boolean;
  /** MFCC 0..12 of the gain-normalised frame; 0 is (nearly) constant, 1..12 are the shape. */
  mfcc: Float64Array;
  chroma: Float64Array;
  zcr: number;
  centroidHz: number;
  rolloffHz: number;
  flatness: number;
  spreadHz: number;
  kurtosis: number;
  /** Positive spectral change against the previous frame, on unit-energy spectra. */
  flux: number;
  /** Share of spectral energy in the upper half of the band (4-8 kHz). */
  highBandRatio: number;
  /** Peak normalised autocorrelation in the pitch range (0 noise .. 1 periodic). */
  harmonicity: number;
  /** Estimated fundamental (Hz) of the autocorrelation peak. */
  f0Hz: number;
}

/**
 * Every spectral feature is Meyda's, computed without `Meyda.extract`: the window, FFT,
 * amplitude spectrum, zcr, rolloff and flatness by `MeydaSpectrum` (./spectrum.ts); centroid,
 * spread and kurtosis by `meydaSpectralMoments` (Meyda's formulas on one pass of its `mu`
 * moments instead of seven); MFCC and chroma from Meyda's own filter banks by
 * `meydaMfcc`/`meydaChroma` below. All with Meyda's arithmetic, so they equal
 * `Meyda.extract` to the bit (test/core/features.test.ts), and the model's features are
 * unchanged (test/core/feature-golden.test.ts). Meyda's versions allocate arrays and objects
 * per frame and walk every zero of the mel bank: they were half of the analysis time.
 */

interface MeydaGlobals {
  bufferSize: number;
  sampleRate: number;
  melBands: number;
  numberOfMFCCCoefficients: number;
  windowingFunction: string;
  melFilterBank?: ArrayLike<number>[];
  chromaFilterBank?: ArrayLike<number>[];
  barkScale?: unknown;
  extract: (features: readonly string[], signal: Float32Array) => Record<string, unknown>;
}
const meyda = Meyda as unknown as MeydaGlobals;

/**
 * Meyda keeps its settings (and cached filter banks) on one global object, and only
 * rebuilds the mel bank when the buffer size changes, not the sample rate. Anything else
 * in the process (the browser page, a test) may have changed them, so reset before use.
 */
function configureMeyda(): void {
  if (
    meyda.bufferSize === FRAME_SIZE &&
    meyda.sampleRate === FEATURE_SAMPLE_RATE &&
    meyda.melBands === 26 &&
    meyda.numberOfMFCCCoefficients === N_MFCC &&
    meyda.windowingFunction === 'hanning'
  ) {
    return;
  }
  meyda.bufferSize = FRAME_SIZE;
  meyda.sampleRate = FEATURE_SAMPLE_RATE;
  meyda.melBands = 26;
  meyda.numberOfMFCCCoefficients = N_MFCC;
  meyda.windowingFunction = 'hanning';
  meyda.melFilterBank = undefined;
  meyda.chromaFilterBank = undefined;
  meyda.barkScale = undefined;
  // Meyda builds its filter banks inside extract(); one call on a zero frame builds them.
  meyda.extract(['zcr'], new Float32Array(FRAME_SIZE));
}

/**
 * Turns 8 kHz frames into FrameFeatures. Each frame is scaled to a fixed RMS before Meyda
 * sees it, so every spectral feature is independent of loudness (Meyda's MFCC takes
 * log(1 + power), which is not scale-invariant on its own). The level lives on only in
 * `rmsDb`, which the window summary uses in relative terms.
 */
export class FrameFeatureExtractor {
  private prevSpectrum: Float64Array | null = null;
  /** Two unit-energy spectra, this frame's and the previous one's, swapped each frame. */
  private readonly spectra = [new Float64Array(FRAME_SIZE / 2), new Float64Array(FRAME_SIZE / 2)] as const;
  private flip = 0;
  private readonly scaled = new Float32Array(FRAME_SIZE);
  private readonly spectrum = new MeydaSpectrum(FRAME_SIZE, FEATURE_SAMPLE_RATE);

  extract(frame: Float32Array): FrameFeatures {
    configureMeyda();
    let sumSq = 0;
    let mean = 0;
    for (let i = 0; i < FRAME_SIZE; i++) mean += frame[i]!;
    mean /= FRAME_SIZE;
    for (let i = 0; i < FRAME_SIZE; i++) {
      const v = frame[i]! - mean;
      sumSq += v * v;
    }
    const rms = Math.sqrt(sumSq / FRAME_SIZE);
    const rmsDb = 20 * Math.log10(Math.max(rms, 1e-10));
    if (rms < SILENT_RMS) {
      this.prevSpectrum = null;
      return silentFrame(rmsDb);
    }
    const gain = FRAME_TARGET_RMS / rms;
    for (let i = 0; i < FRAME_SIZE; i++) this.scaled[i] = (frame[i]! - mean) * gain;

    this.spectrum.compute(this.scaled);
    const amp = this.spectrum.amp;
    const moments = meydaSpectralMoments(amp);
    this.flip ^= 1;
    const spectrum = unitEnergy(amp, this.spectra[this.flip]!);
    let flux = 0;
    if (this.prevSpectrum) {
      for (let k = 0; k < spectrum.length; k++) {
        const d = spectrum[k]! - this.prevSpectrum[k]!;
        if (d > 0) flux += d * d;
      }
      flux = Math.sqrt(flux);
    }
    this.prevSpectrum = spectrum;
    let high = 0;
    let total = 0;
    const half = spectrum.length >> 1;
    for (let k = 0; k < spectrum.length; k++) {
      const p = spectrum[k]! * spectrum[k]!;
      total += p;
      if (k >= half) high += p;
    }
    const binHz = FEATURE_SAMPLE_RATE / FRAME_SIZE;
    const { harmonicity, f0Hz } = pitch(this.scaled);
    return {
      rmsDb,
      silent: false,
      mfcc: finiteArray(meydaMfcc(amp)),
      chroma: finiteArray(meydaChroma(amp)),
      zcr: finite(this.spectrum.zcr()) / FRAME_SIZE,
      centroidHz: finite(moments.centroid) * binHz, // Meyda's centroid is a bin index
      rolloffHz: finite(this.spectrum.rolloff()),
      flatness: finite(this.spectrum.flatness()),
      spreadHz: finite(moments.spread) * binHz,
      kurtosis: clamp(finite(moments.kurtosis), -10, 100),
      flux,
      highBandRatio: total > 0 ? high / total : 0,
      harmonicity,
      f0Hz,
    };
  }
}

interface SparseRow {
  bins: Int32Array;
  weights: Float64Array;
}
let sparseMel: { bank: unknown; rows: SparseRow[] } | null = null;

/** A filter bank's non-zero weights per row, over the first `width` bins. */
function sparseRows(bank: ArrayLike<number>[], width: number): SparseRow[] {
  return bank.map((row) => {
    const bins: number[] = [];
    const weights: number[] = [];
    for (let j = 0; j < width; j++) {
      if (row[j] !== 0) {
        bins.push(j);
        weights.push(row[j]!);
      }
    }
    return { bins: Int32Array.from(bins), weights: Float64Array.from(weights) };
  });
}
const melPower = new Float32Array(FRAME_SIZE / 2);
const melLogged = new Float32Array(26);
const dctCos = dctTable(26);

/** Meyda's mfcc extractor (melBands: log(1 + mel energy) in float32, then dct's DCT-II x2), over the non-zero weights only. */
export function meydaMfcc(amp: Float32Array): number[] {
  const bank = meyda.melFilterBank!;
  if (sparseMel?.bank !== bank) sparseMel = { bank, rows: sparseRows(bank, FRAME_SIZE / 2) };
  for (let j = 0; j < melPower.length; j++) melPower[j] = amp[j]! ** 2;
  const rows = sparseMel.rows;
  for (let i = 0; i < rows.length; i++) {
    const { bins, weights } = rows[i]!;
    // Float32 accumulation, as Meyda's Float32Array does; adding its zero terms changes nothing
    let acc = 0;
    for (let t = 0; t < bins.length; t++)
      acc = Math.fround(acc + Math.fround(weights[t]! * melPower[bins[t]!]!));
    melLogged[i] = Math.log(acc + 1);
  }
  const out = new Array<number>(N_MFCC);
  const n = melLogged.length;
  for (let k = 0; k < N_MFCC; k++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += melLogged[i]! * dctCos[i + k * n]!;
    out[k] = 2 * sum;
  }
  return out;
}

/** The `dct` package's cosine table (memoizeCosines), same formula so the same bits. */
function dctTable(n: number): Float64Array {
  const t = new Float64Array(n * n);
  const piN = Math.PI / n;
  for (let k = 0; k < n; k++) for (let i = 0; i < n; i++) t[i + k * n] = Math.cos(piN * (i + 0.5) * k);
  return t;
}

/**
 * Meyda's spectralCentroid, spectralSpread and spectralKurtosis, to the bit: each moment
 * mu(i) = sum(k^i |a_k|) / sum(a_k) accumulated in Meyda's order. (Meyda's kurtosis formula
 * is not the textbook one; it is kept because the model was trained on it, clamped.)
 */
export function meydaSpectralMoments(amp: Float32Array): {
  centroid: number;
  spread: number;
  kurtosis: number;
} {
  let n1 = 0;
  let n2 = 0;
  let n3 = 0;
  let n4 = 0;
  let den = 0;
  const p = binPowers(amp.length);
  for (let k = 0; k < amp.length; k++) {
    const a = Math.abs(amp[k]!);
    n1 += k * a;
    n2 += p.k2[k]! * a;
    n3 += p.k3[k]! * a;
    n4 += p.k4[k]! * a;
    den += amp[k]!;
  }
  const mu1 = n1 / den;
  const mu2 = n2 / den;
  const mu3 = n3 / den;
  const mu4 = n4 / den;
  const numerator = -3 * mu1 ** 4 + 6 * mu1 * mu2 - 4 * mu1 * mu3 + mu4;
  const spread = Math.sqrt(mu2 - mu1 ** 2);
  return { centroid: mu1, spread, kurtosis: numerator / spread ** 4 };
}

let powers: { k2: Float64Array; k3: Float64Array; k4: Float64Array } | null = null;
/** k^2, k^3, k^4 per bin: exact integers (k < 2^13), the same values `k ** i` gives, without a pow per bin. */
function binPowers(n: number) {
  if (powers?.k2.length !== n) {
    const t = (e: number) => Float64Array.from({ length: n }, (_, k) => k ** e);
    powers = { k2: t(2), k3: t(3), k4: t(4) };
  }
  return powers;
}

/** Meyda's chroma extractor (filter bank products, normalised by the largest). */
export function meydaChroma(amp: Float32Array): number[] {
  const bank = meyda.chromaFilterBank!;
  if (sparseChroma?.bank !== bank) sparseChroma = { bank, rows: sparseRows(bank, amp.length) };
  const rows = sparseChroma.rows;
  const out = new Array<number>(rows.length);
  let max = -Infinity;
  for (let i = 0; i < rows.length; i++) {
    const { bins, weights } = rows[i]!;
    // in bin order, as Meyda; its products with zero weights add +0 (amplitudes are >= 0)
    let acc = 0;
    for (let t = 0; t < bins.length; t++) acc += amp[bins[t]!]! * weights[t]!;
    out[i] = acc;
    if (acc > max) max = acc;
  }
  return max ? out.map((v) => v / max) : out;
}
let sparseChroma: { bank: unknown; rows: SparseRow[] } | null = null;

function silentFrame(rmsDb: number): FrameFeatures {
  return {
    rmsDb,
    silent: true,
    mfcc: new Float64Array(N_MFCC),
    chroma: new Float64Array(N_CHROMA),
    zcr: 0,
    centroidHz: 0,
    rolloffHz: 0,
    flatness: 0,
    spreadHz: 0,
    kurtosis: 0,
    flux: 0,
    highBandRatio: 0,
    harmonicity: 0,
    f0Hz: 0,
  };
}

function unitEnergy(amp: Float32Array, out: Float64Array): Float64Array {
  let e = 0;
  for (let k = 0; k < amp.length; k++) e += amp[k]! * amp[k]!;
  const norm = e > 0 ? 1 / Math.sqrt(e) : 0;
  for (let k = 0; k < amp.length; k++) out[k] = amp[k]! * norm;
  return out;
}

/**
 * Normalised autocorrelation pitch estimate. Screams are strongly voiced at a high
 * fundamental (often 500 Hz - 1.5 kHz), speech sits at 100-300 Hz, noise has no peak.
 */
/** The decimated frame: Float32-rounded values (as the model was trained), held as doubles. */
const pitchBuffer = new Float64Array(FRAME_SIZE / 2);
const pitchCum = new Float64Array(FRAME_SIZE / 2 + 1);
const pitchR = new Float64Array(MAX_LAG + 2);

function pitch(frame: Float32Array): { harmonicity: number; f0Hz: number } {
  const x = pitchBuffer;
  for (let i = 0; i < x.length; i++) x[i] = Math.fround(0.5 * (frame[2 * i]! + frame[2 * i + 1]!));
  const n = x.length;
  // prefix sums of energy give each lag's normalisation in O(1)
  const cum = pitchCum;
  for (let i = 0; i < n; i++) cum[i + 1] = cum[i]! + x[i]! * x[i]!;
  let best = 0;
  let bestLag = 0;
  const r = pitchR;
  const first = MIN_LAG - 1;
  const last = MAX_LAG + 1;
  // Four lags per pass over x (four sums, each still added in index order: the same bits as
  // one lag at a time, a third of the loads).
  let lag = first;
  for (; lag + 3 <= last; lag += 4) {
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    const end = n - lag - 3;
    let i = 0;
    for (; i < end; i++) {
      const xi = x[i]!;
      a0 += xi * x[i + lag]!;
      a1 += xi * x[i + lag + 1]!;
      a2 += xi * x[i + lag + 2]!;
      a3 += xi * x[i + lag + 3]!;
    }
    for (; i < n - lag - 2; i++) {
      a0 += x[i]! * x[i + lag]!;
      a1 += x[i]! * x[i + lag + 1]!;
      a2 += x[i]! * x[i + lag + 2]!;
    }
    for (; i < n - lag - 1; i++) {
      a0 += x[i]! * x[i + lag]!;
      a1 += x[i]! * x[i + lag + 1]!;
    }
    for (; i < n - lag; i++) a0 += x[i]! * x[i + lag]!;
    r[lag] = normalised(a0, cum, n, lag);
    r[lag + 1] = normalised(a1, cum, n, lag + 1);
    r[lag + 2] = normalised(a2, cum, n, lag + 2);
    r[lag + 3] = normalised(a3, cum, n, lag + 3);
  }
  for (; lag <= last; lag++) {
    let acc = 0;
    for (let i = 0; i + lag < n; i++) acc += x[i]! * x[i + lag]!;
    r[lag] = normalised(acc, cum, n, lag);
  }
  for (let lag = MIN_LAG; lag <= MAX_LAG; lag++) {
    const v = r[lag]!;
    if (v > best && v >= r[lag - 1]! && v >= r[lag + 1]!) best = v;
  }
  // A periodic sound correlates at every multiple of its period; the shortest lag that
  // comes close to the best peak is the period (otherwise pitch drops by octaves).
  for (let lag = MIN_LAG; lag <= MAX_LAG && best > 0; lag++) {
    const v = r[lag]!;
    if (v >= 0.9 * best && v >= r[lag - 1]! && v >= r[lag + 1]!) {
      bestLag = lag;
      break;
    }
  }
  if (bestLag === 0) return { harmonicity: 0, f0Hz: 0 };
  // parabolic interpolation of the peak for sub-sample lag resolution
  const a = r[bestLag - 1]!;
  const b = r[bestLag]!;
  const c = r[bestLag + 1]!;
  const denom = a - 2 * b + c;
  const shift = denom !== 0 ? clamp((0.5 * (a - c)) / denom, -0.5, 0.5) : 0;
  return { harmonicity: clamp(best, 0, 1), f0Hz: PITCH_RATE / (bestLag + shift) };
}

function normalised(acc: number, cum: Float64Array, n: number, lag: number): number {
  const e0 = cum[n - lag]!;
  const e1 = cum[n]! - cum[lag]!;
  const denom = Math.sqrt(e0 * e1);
  return denom > 0 ? acc / denom : 0;
}

function finite(x: number): number {
  return Number.isFinite(x) ? x : 0;
}

function finiteArray(a: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = finite(a[i]!);
  return out;
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : Math.min(x, hi);
}
