/**
 * Band-limited resampling with a Kaiser-windowed sinc kernel. Sources reach us at
 * 8, 11.025, 22.05, 44.1 and 48 kHz; a naive linear interpolator would alias energy
 * from above the new Nyquist into the scream band, so we low-pass at the lower of the
 * two Nyquist rates while interpolating.
 */
export function resample(input: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (fromRate === toRate) return input;
  const ratio = toRate / fromRate;
  const outLength = Math.floor(input.length * ratio);
  const out = new Float32Array(outLength);
  const cutoff = Math.min(1, ratio) * 0.95; // fraction of the input Nyquist
  const halfTaps = 16;
  const support = Math.ceil(halfTaps / Math.min(1, ratio));
  const beta = 8;
  const i0Beta = besselI0(beta);
  for (let n = 0; n < outLength; n++) {
    const center = n / ratio;
    const first = Math.max(0, Math.ceil(center - support));
    const last = Math.min(input.length - 1, Math.floor(center + support));
    let acc = 0;
    let norm = 0;
    for (let k = first; k <= last; k++) {
      const x = k - center;
      const w = kaiser(x / support, beta, i0Beta);
      const s = sinc(x * cutoff) * cutoff * w;
      acc += input[k]! * s;
      norm += s;
    }
    out[n] = norm > 0 ? acc / norm : 0;
  }
  return out;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

function kaiser(t: number, beta: number, i0Beta: number): number {
  if (t <= -1 || t >= 1) return 0;
  return besselI0(beta * Math.sqrt(1 - t * t)) / i0Beta;
}

function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 30; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}
