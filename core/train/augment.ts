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
  return x.map((v) => v * g);
}
