import { writeFileSync } from 'node:fs';
import { encodeWav16 } from '../core/audio/wav.ts';
import { seededRandom } from '../core/train/random.ts';

/**
 * The demo recording, synthesised in TypeScript: a few seconds of room tone and speech-like
 * babble, then a scream-like harsh voiced cry (rising then falling pitch, jitter, shimmer,
 * breath noise, harmonics up to 4 kHz, soft clipping), then babble again.
 *
 * Why synthetic: the training data's real screams are not ours to redistribute, and a newcomer
 * may not have sox. Deterministic (seeded), so every machine replays the same audio; the
 * demo test and `demo/generate-recording.ts` check that the shipped model fires on it.
 */

export const DEMO_SAMPLE_RATE = 16_000;

export interface DemoRecording {
  samples: Float32Array;
  /** Where each scream starts and ends (seconds). */
  screams: { startS: number; endS: number }[];
  durationS: number;
}

export interface DemoRecordingOptions {
  seed?: number;
  /** Seconds of room tone + babble before the scream. */
  leadS?: number;
  screamS?: number;
  /** Seconds after the scream. */
  tailS?: number;
  /** Peak level of the scream (0..1). */
  screamGain?: number;
  /** Level of the speech-like babble around the scream. */
  babbleLevel?: number;
}

/** Brown-ish room noise at about -50 dBFS. */
function addRoomTone(out: Float32Array, rand: () => number, level = 0.006): void {
  let b = 0;
  for (let i = 0; i < out.length; i++) {
    b = 0.995 * b + (rand() * 2 - 1) * 0.05;
    out[i]! += b * level * 4;
  }
}

/** Two-pole resonator (a formant) applied to x in place. */
function resonate(x: Float32Array, freq: number, bw: number, sr: number): Float32Array {
  const r = Math.exp((-Math.PI * bw) / sr);
  const c = 2 * r * Math.cos((2 * Math.PI * freq) / sr);
  const out = new Float32Array(x.length);
  let y1 = 0;
  let y2 = 0;
  for (let i = 0; i < x.length; i++) {
    const y = (1 - r) * x[i]! + c * y1 - r * r * y2;
    out[i] = y;
    y2 = y1;
    y1 = y;
  }
  return out;
}

/** Speech-like babble: a glottal pulse train at ~120 Hz through moving formants, syllabic at ~4 Hz. */
function addBabble(out: Float32Array, from: number, to: number, rand: () => number, level: number): void {
  const sr = DEMO_SAMPLE_RATE;
  const n = to - from;
  if (n <= 0) return;
  const src = new Float32Array(n);
  let phase = 0;
  let f0 = 120;
  for (let i = 0; i < n; i++) {
    f0 += (rand() - 0.5) * 0.4;
    f0 = Math.min(160, Math.max(90, f0));
    phase += f0 / sr;
    if (phase >= 1) {
      phase -= 1;
      src[i] = 1;
    } else src[i] = (rand() * 2 - 1) * 0.02;
  }
  // formants hop every syllable (~250 ms): vowels a/e/i/o/u-ish
  const vowels = [
    [730, 1090],
    [530, 1840],
    [270, 2290],
    [570, 840],
    [300, 870],
  ];
  const syll = Math.round(0.25 * sr);
  for (let s = 0; s < n; s += syll) {
    const v = vowels[Math.floor(rand() * vowels.length)]!;
    const seg = src.subarray(s, Math.min(n, s + syll));
    const f1 = resonate(seg, v[0]!, 90, sr);
    const f2 = resonate(seg, v[1]!, 120, sr);
    for (let i = 0; i < seg.length; i++) {
      // syllabic envelope: rise and fall inside each syllable, with short pauses
      const t = i / seg.length;
      const env = rand() < 0.0 ? 0 : Math.sin(Math.PI * t) ** 2;
      out[from + s + i]! += (f1[i]! * 1.0 + f2[i]! * 0.6) * env * level * 8;
    }
  }
}

/** A scream-like cry: harsh voiced tone whose pitch rises then falls, with jitter, shimmer and breath. */
function addScream(out: Float32Array, from: number, n: number, rand: () => number, gain: number): void {
  const sr = DEMO_SAMPLE_RATE;
  let phase = 0;
  let jitter = 0;
  let shimmer = 0;
  let breath = 0;
  const harmonics = 8;
  const buf = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = i / n;
    // pitch contour: 700 Hz -> 1250 Hz at 40 % -> 950 Hz at the end, with 6 Hz vibrato
    const contour = t < 0.4 ? 700 + (550 * t) / 0.4 : 1250 - (300 * (t - 0.4)) / 0.6;
    jitter = 0.995 * jitter + (rand() - 0.5) * 2;
    const f0 = contour * (1 + 0.03 * Math.sin(2 * Math.PI * 6 * (i / sr))) + jitter;
    phase += f0 / sr;
    if (phase > 1e6) phase -= 1e6;
    let v = 0;
    for (let h = 1; h <= harmonics; h++) {
      if (f0 * h > 3900) break;
      v += Math.sin(2 * Math.PI * h * phase) / h ** 0.7;
    }
    shimmer = 0.999 * shimmer + (rand() - 0.5) * 0.01;
    breath = 0.6 * breath + (rand() * 2 - 1) * 0.4;
    // attack 80 ms, release 200 ms
    const a = Math.min(1, i / (0.08 * sr), (n - i) / (0.2 * sr));
    buf[i] = (v * (1 + shimmer * 4) * 0.35 + breath * 0.08) * a;
  }
  let peak = 0;
  for (const x of buf) peak = Math.max(peak, Math.abs(x));
  for (let i = 0; i < n; i++) {
    // soft clipping: the harshness of a strained voice
    out[from + i]! += Math.tanh((buf[i]! / peak) * 1.8) * (gain / Math.tanh(1.8));
  }
}

export function synthesizeDemoRecording(options: DemoRecordingOptions = {}): DemoRecording {
  const sr = DEMO_SAMPLE_RATE;
  const rand = seededRandom(options.seed ?? 1);
  const leadS = options.leadS ?? 6;
  const screamS = options.screamS ?? 2.5;
  const tailS = options.tailS ?? 6;
  const total = Math.round((leadS + screamS + tailS) * sr);
  const out = new Float32Array(total);
  addRoomTone(out, rand);
  const s0 = Math.round(leadS * sr);
  const s1 = s0 + Math.round(screamS * sr);
  addBabble(out, Math.round(0.5 * sr), s0 - Math.round(0.5 * sr), rand, options.babbleLevel ?? 0.02);
  addScream(out, s0, s1 - s0, rand, options.screamGain ?? 0.6);
  addBabble(out, s1 + Math.round(1 * sr), total - Math.round(0.5 * sr), rand, options.babbleLevel ?? 0.02);
  for (let i = 0; i < total; i++) out[i] = Math.max(-1, Math.min(1, out[i]!));
  return { samples: out, screams: [{ startS: s0 / sr, endS: s1 / sr }], durationS: total / sr };
}

/** Writes the demo recording as a 16 kHz mono 16-bit WAV. */
export function writeDemoRecording(path: string, options: DemoRecordingOptions = {}): DemoRecording {
  const rec = synthesizeDemoRecording(options);
  writeFileSync(path, encodeWav16(rec.samples, DEMO_SAMPLE_RATE));
  return rec;
}
