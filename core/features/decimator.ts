/**
 * Streaming 2:1 decimator (16 kHz -> 8 kHz) with a windowed-sinc low-pass at 3.6 kHz.
 *
 * Why analyse at 8 kHz: the training corpora differ in bandwidth (the baby-cry corpus was
 * recorded at 8 kHz, several scream sources at 11 kHz), so anything a model learns above
 * 4 kHz is partly "which dataset is this". Limiting every feature to 0-4 kHz removes that
 * shortcut, keeps the fundamental and first harmonics of a scream, and halves the cost.
 *
 * Streaming and offline analysis both go through this class, so a file scores exactly as
 * the same audio captured live.
 */
const TAPS = 63;
const KERNEL = makeKernel();

function makeKernel(): Float64Array {
  const k = new Float64Array(TAPS);
  const mid = (TAPS - 1) / 2;
  const cutoff = 3600 / 16000; // cycles per input sample
  let sum = 0;
  for (let i = 0; i < TAPS; i++) {
    const x = i - mid;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const blackman =
      0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (TAPS - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (TAPS - 1));
    k[i] = sinc * blackman;
    sum += k[i]!;
  }
  for (let i = 0; i < TAPS; i++) k[i]! /= sum;
  return k;
}

export class Decimator2 {
  private readonly history = new Float64Array(TAPS);
  private pos = 0;
  private phase = 0;

  /** Pushes 16 kHz samples, returns the 8 kHz samples they complete. */
  push(input: Float32Array): Float32Array {
    const out = new Float32Array(Math.ceil((input.length + this.phase) / 2));
    let n = 0;
    const h = this.history;
    for (let i = 0; i < input.length; i++) {
      h[this.pos] = input[i]!;
      this.pos = (this.pos + 1) % TAPS;
      this.phase ^= 1;
      if (this.phase === 0) {
        let acc = 0;
        let idx = this.pos;
        for (let t = 0; t < TAPS; t++) {
          acc += h[idx]! * KERNEL[t]!;
          idx = idx + 1 === TAPS ? 0 : idx + 1;
        }
        out[n++] = acc;
      }
    }
    return n === out.length ? out : out.subarray(0, n);
  }
}
