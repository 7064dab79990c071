import { resamplePolyphase } from '../audio/resample.ts';
/**
 * Training-time augmentation. Screams in the training data are ~15 dB louder and cleaner
 * than the other sounds; real sensors hear distant screams under TV, talk and traffic. So
 * each scream is also mixed into a non-scream recording at a random SNR (0-20 dB), which
 * teaches the forest the sound rather than the recording conditions.
 */

/** RMS over the loud part of a signal (frames within 20 dB of the loudest), so gaps don't count. */
export function activeRms(x: Float32Array, frame = 512): number {
  const energies: number[] = [];
  for (let at = 0; at + frame <= x.length; at += frame) {
    let e = 0;
    for (let i = at; i < at + frame; i++) e += x[i]! * x[i]!;
    energies.push(e / frame);
  }
  if (energies.length === 0) {
    let e = 0;
    for (const v of x) e += v * v;
    return Math.sqrt(e / Math.max(1, x.length));
  }
  const max = Math.max(...energies);
  const active = energies.filter((e) => e >= max / 100);
  return Math.sqrt(active.reduce((a, b) => a + b, 0) / active.length);
}

/**
 * `signal` + `background` (looped or cut to the signal's length, from a random offset)
 * scaled so the signal's active RMS sits `snrDb` above the background's RMS. The mix is
 * peak-limited to full scale, as a real converter would clip.
 */
export function mixAtSnr(
  signal: Float32Array,
  background: Float32Array,
  snrDb: number,
  random: () => number,
): Float32Array {
  const out = new Float32Array(signal.length);
  const bg = new Float32Array(signal.length);
  const offset =
    background.length > signal.length ? Math.floor(random() * (background.length - signal.length)) : 0;
  for (let i = 0; i < signal.length; i++) bg[i] = background[(offset + i) % background.length]!;
  let bgE = 0;
  for (const v of bg) bgE += v * v;
  const bgRms = Math.sqrt(bgE / Math.max(1, bg.length));
  const sigRms = activeRms(signal);
  const gain = bgRms > 1e-8 ? sigRms / (bgRms * 10 ** (snrDb / 20)) : 0;
  let peak = 0;
  for (let i = 0; i < signal.length; i++) {
    out[i] = signal[i]! + gain * bg[i]!;
    peak = Math.max(peak, Math.abs(out[i]!));
  }
  if (peak > 1) for (let i = 0; i < out.length; i++) out[i]! /= peak;
  return out;
}

/** Scales a signal so its peak sits at `peakDb` dBFS. */
export function scaleToPeak(x: Float32Array, peakDb: number): Float32Array {
  let peak = 0;
  for (const v of x) peak = Math.max(peak, Math.abs(v));
  if (peak === 0) return x;
  const g = 10 ** (peakDb / 20) / peak;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * g;
  return out;
}

// ---------------------------------------------------------------------------------------
// Recording-chain augmentation (issue 10 item 2). Each function keeps the signal's length;
// applied to screams and non-screams alike, so that no class can be told apart by its
// bandwidth, its spectral tilt, its room, its clipping or its level.

const SR = 16_000;

/** One RBJ biquad section (Direct Form I), run in place over a copy. */
function biquad(x: Float32Array, b0: number, b1: number, b2: number, a1: number, a2: number): Float32Array {
  const out = new Float32Array(x.length);
  let x1 = 0;
  let x2 = 0;
  let y1 = 0;
  let y2 = 0;
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i]!;
    const y0 = b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
    out[i] = y0;
    x2 = x1;
    x1 = x0;
    y2 = y1;
    y1 = y0;
  }
  return out;
}

function passSection(x: Float32Array, hz: number, kind: 'low' | 'high', q: number): Float32Array {
  const w = (2 * Math.PI * hz) / SR;
  const cos = Math.cos(w);
  const alpha = Math.sin(w) / (2 * q);
  const a0 = 1 + alpha;
  const b1 = kind === 'low' ? 1 - cos : -(1 + cos);
  const b0 = kind === 'low' ? b1 / 2 : -b1 / 2;
  return biquad(x, b0 / a0, b1 / a0, b0 / a0, (-2 * cos) / a0, (1 - alpha) / a0);
}

/** Q of the sections of an 8th-order Butterworth filter. */
const BUTTERWORTH_8_Q = [0.5098, 0.6013, 0.9, 2.5629];

/**
 * 8th-order Butterworth low-pass (48 dB per octave): a codec or a converter that records
 * at a lower rate (8 kHz telephone and cry corpora, 11 kHz game sounds) keeps nothing above
 * its cut.
 */
export function lowPass(x: Float32Array, cutoffHz: number): Float32Array {
  let y = x;
  for (const q of BUTTERWORTH_8_Q) y = passSection(y, cutoffHz, 'low', q);
  return y;
}

/** 4th-order Butterworth high-pass (small speakers, telephone, wind filters). */
export function highPass(x: Float32Array, cutoffHz: number): Float32Array {
  return passSection(passSection(x, cutoffHz, 'high', 0.5412), cutoffHz, 'high', 1.3066);
}

/** The telephone band, 300-3400 Hz. */
export function telephoneBand(x: Float32Array): Float32Array {
  return lowPass(highPass(x, 300), 3400);
}

/**
 * Spectral tilt: a high-shelf of `gainDb` above about 1.5 kHz (a cheap microphone, a
 * muffled room, a bright speaker), RBJ shelf with slope 1.
 */
export function eqTilt(x: Float32Array, gainDb: number, cornerHz = 1500): Float32Array {
  const A = 10 ** (gainDb / 40);
  const w = (2 * Math.PI * cornerHz) / SR;
  const cos = Math.cos(w);
  const alpha = (Math.sin(w) / 2) * Math.SQRT2;
  const sq = 2 * Math.sqrt(A) * alpha;
  const b0 = A * (A + 1 + (A - 1) * cos + sq);
  const b1 = -2 * A * (A - 1 + (A + 1) * cos);
  const b2 = A * (A + 1 + (A - 1) * cos - sq);
  const a0 = A + 1 - (A - 1) * cos + sq;
  const a1 = 2 * (A - 1 - (A + 1) * cos);
  const a2 = A + 1 - (A - 1) * cos - sq;
  return biquad(x, b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0);
}

export interface Room {
  /** Reverberation time: the tail decays by 60 dB in this many seconds. */
  rt60S: number;
  /** Direct-to-reverberant energy ratio (dB): how far the microphone is from the source. */
  directToReverbDb: number;
}

/**
 * `x` in a synthetic room: a feedback delay network (8 delay lines of 23-61 ms, a
 * Householder feedback matrix, per-line gains for an exact RT60 and a damping low-pass in
 * each loop, so the tail darkens as it decays) plus a few early reflections. Its impulse
 * response is a dense, exponentially decaying tail, like a measured room's, at a cost of
 * a few operations per sample (an FFT convolution with a one-second impulse response cost
 * most of the training time). The wet part is scaled to the room's direct-to-reverberant
 * ratio; the result keeps the input's length and active RMS (peak-limited to full scale).
 */
export function reverberate(x: Float32Array, room: Room, random: () => number): Float32Array {
  const n = x.length;
  if (n === 0) return new Float32Array(0);
  const N = 8;
  const lengths = Array.from({ length: N }, (_, i) =>
    Math.round(SR * (0.023 + (0.038 * (i + random())) / N)),
  );
  const gains = lengths.map((d) => 10 ** ((-3 * d) / (room.rt60S * SR)));
  const lines = lengths.map((d) => new Float64Array(d));
  const pos = new Int32Array(N);
  const damp = new Float64Array(N);
  const dampA = 0.2 + 0.5 * random();
  const outs = new Float64Array(N);
  const wet = new Float64Array(n);
  const early = Array.from({ length: 5 }, () => ({
    at: 1 + Math.floor(random() * 0.04 * SR),
    g: (random() < 0.5 ? -1 : 1) * (0.3 + 0.5 * random()),
  }));
  for (let t = 0; t < n; t++) {
    let sum = 0;
    for (let i = 0; i < N; i++) {
      outs[i] = lines[i]![pos[i]!]!;
      sum += outs[i]!;
    }
    const h = (2 / N) * sum;
    let input = x[t]!;
    for (const e of early) if (t >= e.at) input += e.g * x[t - e.at]!;
    let y = 0;
    for (let i = 0; i < N; i++) {
      const v = outs[i]!;
      y += v;
      // damping low-pass inside the loop, then the line's decay gain
      damp[i] = (1 - dampA) * (v - h) + dampA * damp[i]!;
      lines[i]![pos[i]!] = gains[i]! * damp[i]! + input * 0.35;
      pos[i] = (pos[i]! + 1) % lengths[i]!;
    }
    wet[t] = y;
  }
  let ed = 0;
  let ew = 0;
  for (let t = 0; t < n; t++) {
    ed += x[t]! * x[t]!;
    ew += wet[t]! * wet[t]!;
  }
  const gw = ew > 0 ? Math.sqrt(ed / (ew * 10 ** (room.directToReverbDb / 10))) : 0;
  const y = new Float32Array(n);
  for (let t = 0; t < n; t++) y[t] = x[t]! + gw * wet[t]!;
  const want = activeRms(x);
  const got = activeRms(y);
  const g = got > 0 ? want / got : 1;
  let peak = 0;
  for (let t = 0; t < n; t++) {
    y[t]! *= g;
    peak = Math.max(peak, Math.abs(y[t]!));
  }
  if (peak > 1) for (let t = 0; t < n; t++) y[t]! /= peak;
  return y;
}

/** Soft clipping (tanh) with `driveDb` of drive, level-matched at the peak. */
export function softClip(x: Float32Array, driveDb: number): Float32Array {
  let peak = 0;
  for (const v of x) peak = Math.max(peak, Math.abs(v));
  if (peak === 0) return x.slice();
  const g = 10 ** (driveDb / 20) / peak;
  const norm = peak / Math.tanh(g * peak);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.tanh(g * x[i]!) * norm;
  return out;
}

/** Gain in dB, hard-limited at full scale like a converter. */
export function applyGain(x: Float32Array, gainDb: number): Float32Array {
  const g = 10 ** (gainDb / 20);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]! * g;
    out[i] = v > 1 ? 1 : v < -1 ? -1 : v;
  }
  return out;
}

/**
 * The clip played `factor` times faster (pitch up and duration down together, as from a
 * smaller throat or another voice actor), band-limited by the project's resampling kernel.
 * The factor is rounded to a step of 1/160 (a source rate in whole 100 Hz), so the kernel's
 * taps come from a table of at most 160 phases: the copies took 3 min 37 s of a 4 min 15 s
 * training run with the taps computed per output sample.
 */
export function changeSpeed(x: Float32Array, factor: number): Float32Array {
  if (!(factor > 0.5 && factor < 2)) throw new RangeError(`speed factor must be in (0.5, 2), got ${factor}`);
  // read as if recorded at 16 kHz x factor; played back at 16 kHz it is `factor` times faster
  return resamplePolyphase(x, Math.round((SR * factor) / 100) * 100, SR);
}

/** One random recording chain: what stands between the sound and our 16 kHz samples. */
export interface RecordingChain {
  /** `telephone` = 300-3400 Hz; a number = low-pass cut in Hz; null = full band. */
  band: 'telephone' | number | null;
  tiltDb: number;
  reverb: Room | null;
  softClipDriveDb: number | null;
  gainDb: number;
}

export const BAND_LIMITS_HZ = [3400, 4000, 5500, 7000];

export function randomRecordingChain(random: () => number): RecordingChain {
  const r = random();
  const band =
    r < 0.45
      ? null
      : r < 0.55
        ? ('telephone' as const)
        : BAND_LIMITS_HZ[Math.floor(random() * BAND_LIMITS_HZ.length)]!;
  return {
    band,
    tiltDb: random() < 0.6 ? -9 + 15 * random() : 0,
    reverb: random() < 0.45 ? { rt60S: 0.2 + 0.8 * random(), directToReverbDb: -6 + 18 * random() } : null,
    softClipDriveDb: random() < 0.2 ? 3 + 12 * random() : null,
    gainDb: -30 + 30 * random(),
  };
}

export function applyRecordingChain(
  x: Float32Array,
  chain: RecordingChain,
  random: () => number,
): Float32Array {
  let y = x;
  if (chain.reverb) y = reverberate(y, chain.reverb, random);
  if (chain.tiltDb !== 0) y = eqTilt(y, chain.tiltDb);
  if (chain.band === 'telephone') y = telephoneBand(y);
  else if (chain.band !== null) y = lowPass(y, chain.band);
  if (chain.softClipDriveDb !== null) y = softClip(scaleToPeak(y, -1), chain.softClipDriveDb);
  return applyGain(scaleToPeak(y, -1), chain.gainDb);
}

// --- FFT convolution (radix-2, in place) --------------------------------------------------

const twiddles = new Map<number, { cos: Float64Array; sin: Float64Array }>();

function fft(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  let tw = twiddles.get(n);
  if (!tw) {
    tw = { cos: new Float64Array(n / 2), sin: new Float64Array(n / 2) };
    for (let i = 0; i < n / 2; i++) {
      tw.cos[i] = Math.cos((2 * Math.PI * i) / n);
      tw.sin[i] = -Math.sin((2 * Math.PI * i) / n);
    }
    twiddles.set(n, tw);
  }
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      const tr = re[i]!;
      re[i] = re[j]!;
      re[j] = tr;
      const ti = im[i]!;
      im[i] = im[j]!;
      im[j] = ti;
    }
  }
  const sign = inverse ? -1 : 1;
  for (let len = 2; len <= n; len <<= 1) {
    const half = len >> 1;
    const step = n / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < half; k++) {
        const cr = tw.cos[k * step]!;
        const ci = sign * tw.sin[k * step]!;
        const a = i + k;
        const b = a + half;
        const tr = re[b]! * cr - im[b]! * ci;
        const ti = re[b]! * ci + im[b]! * cr;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a] = re[a]! + tr;
        im[a] = im[a]! + ti;
      }
    }
  }
  if (inverse) for (let i = 0; i < n; i++) re[i] = re[i]! / n;
}

/**
 * Power spectrum (averaged over 512-sample frames, Hann window) in `bands` equal bands
 * from 0 to 8 kHz: used by the shortcut check and the augmentation tests.
 */
export function bandEnergies(x: Float32Array, edgesHz: readonly number[]): number[] {
  const N = 512;
  const out = new Array<number>(edgesHz.length + 1).fill(0);
  const re = new Float64Array(N);
  const im = new Float64Array(N);
  for (let at = 0; at + N <= x.length; at += N) {
    for (let i = 0; i < N; i++) {
      re[i] = x[at + i]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N));
      im[i] = 0;
    }
    fft(re, im, false);
    for (let k = 1; k < N / 2; k++) {
      const hz = (k * SR) / N;
      let b = 0;
      while (b < edgesHz.length && hz >= edgesHz[b]!) b++;
      out[b]! += re[k]! * re[k]! + im[k]! * im[k]!;
    }
  }
  return out;
}
