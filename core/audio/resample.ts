/**
 * Band-limited resampling with a Kaiser-windowed sinc kernel. Sources reach us at
 * 8, 11.025, 22.05, 44.1 and 48 kHz; a naive linear interpolator would alias energy
 * from above the new Nyquist into the scream band, so we low-pass at the lower of the
 * two Nyquist rates while interpolating.
 */
export function resample(input: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (fromRate === toRate) return input;
  const kernel = new SincKernel(fromRate, toRate);
  const out = new Float32Array(kernel.outputLength(input.length));
  for (let n = 0; n < out.length; n++) {
    const center = n / kernel.ratio;
    const first = Math.max(0, Math.ceil(center - kernel.support));
    const last = Math.min(input.length - 1, Math.floor(center + kernel.support));
    out[n] = kernel.interpolate(input, 0, first, last, center);
  }
  return out;
}

/**
 * The same resampling fed piece by piece: every output sample is computed from the same
 * input samples, taps and phase as `resample` on the whole signal would use, so the
 * concatenated output is identical to it bit for bit (the model's features depend on it).
 * An output sample is emitted once its right-hand taps have arrived; the input is kept only
 * from the first tap of the next output sample on (2 x support samples, ~100 at 48 kHz).
 * Decoding a 10-minute upload therefore never holds the source-rate signal in memory.
 */
export class StreamResampler {
  private readonly kernel: SincKernel | null;
  /** Input samples [histStart, histStart + histLen) live at hist[histOff...]. */
  private hist = new Float32Array(0);
  private histOff = 0;
  private histLen = 0;
  private histStart = 0;
  private received = 0;
  /** Index of the next output sample. */
  private next = 0;

  constructor(
    readonly fromRate: number,
    readonly toRate: number,
  ) {
    this.kernel = fromRate === toRate ? null : new SincKernel(fromRate, toRate);
  }

  /** How many samples `resample` returns for `inputLength` input samples. */
  outputLength(inputLength: number): number {
    return this.kernel ? this.kernel.outputLength(inputLength) : inputLength;
  }

  /**
   * Appends input; returns the output samples it completes (possibly none). When the rates
   * are equal this is `chunk` itself, valid until the caller reuses it.
   */
  push(chunk: Float32Array): Float32Array {
    this.received += chunk.length;
    const k = this.kernel;
    if (!k) return chunk;
    this.append(chunk);
    // n < floor(received * ratio) keeps n below the final output length, whatever follows
    const limit = k.outputLength(this.received);
    const ready: number[] = [];
    for (; this.next < limit; this.next++) {
      const center = this.next / k.ratio;
      const last = Math.floor(center + k.support);
      if (last > this.received - 1) break; // its right-hand taps have not arrived yet
      const first = Math.max(0, Math.ceil(center - k.support));
      ready.push(k.interpolate(this.hist, this.histStart - this.histOff, first, last, center));
    }
    this.dropBefore(Math.max(0, Math.ceil(this.next / k.ratio - k.support)));
    return Float32Array.from(ready);
  }

  /** The input has ended: returns the remaining output samples (edge taps clamped, as in `resample`). */
  end(): Float32Array {
    const k = this.kernel;
    if (!k) return new Float32Array(0);
    const total = this.received;
    const out = new Float32Array(Math.max(0, k.outputLength(total) - this.next));
    for (let i = 0; i < out.length; i++, this.next++) {
      const center = this.next / k.ratio;
      const first = Math.max(0, Math.ceil(center - k.support));
      const last = Math.min(total - 1, Math.floor(center + k.support));
      out[i] = k.interpolate(this.hist, this.histStart - this.histOff, first, last, center);
    }
    return out;
  }

  private append(chunk: Float32Array): void {
    if (this.histOff + this.histLen + chunk.length > this.hist.length) {
      if (this.histLen + chunk.length <= this.hist.length) {
        this.hist.copyWithin(0, this.histOff, this.histOff + this.histLen);
      } else {
        const grown = new Float32Array(Math.max(this.histLen + chunk.length, 2 * this.hist.length));
        grown.set(this.hist.subarray(this.histOff, this.histOff + this.histLen));
        this.hist = grown;
      }
      this.histOff = 0;
    }
    this.hist.set(chunk, this.histOff + this.histLen);
    this.histLen += chunk.length;
  }

  private dropBefore(index: number): void {
    const drop = Math.min(index - this.histStart, this.histLen);
    if (drop <= 0) return;
    this.histOff += drop;
    this.histLen -= drop;
    this.histStart += drop;
  }
}

/**
 * The same kernel as `resample`, its taps computed once per phase instead of once per output
 * sample: for rates with a large common divisor there are few phases (16 kHz from a multiple
 * of 100 Hz: at most 160), and each output sample is then one dot product. The output equals
 * `resample`'s within float rounding (the tap positions are exact fractions here); it is for
 * training-time copies (`changeSpeed`), not for decoding, whose exact samples the shipped
 * model's features are pinned to. Tables are cached per rate pair (a few kB each).
 */
export function resamplePolyphase(input: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (fromRate === toRate) return input;
  if (!Number.isInteger(fromRate) || !Number.isInteger(toRate) || fromRate <= 0 || toRate <= 0)
    throw new RangeError(`rates must be positive integers, got ${fromRate} and ${toRate}`);
  const t = polyphaseTable(fromRate, toRate);
  const out = new Float32Array(t.kernel.outputLength(input.length));
  const n0 = input.length;
  for (let n = 0, num = 0; n < out.length; n++, num += t.step) {
    // input position of output n: num / phases, with num = n * step (step = from / g)
    const base = Math.floor(num / t.phases);
    const phase = num - base * t.phases;
    const w = t.weights[phase]!;
    const first = base + t.firstOffset[phase]!;
    let acc = 0;
    let norm = 0;
    if (first >= 0 && first + w.length <= n0) {
      for (let j = 0; j < w.length; j++) acc += input[first + j]! * w[j]!;
      norm = t.sums[phase]!;
    } else {
      // near the ends, only the taps inside the input count (as in `resample`)
      for (let j = 0; j < w.length; j++) {
        const k = first + j;
        if (k < 0 || k >= n0) continue;
        acc += input[k]! * w[j]!;
        norm += w[j]!;
      }
    }
    out[n] = norm > 0 ? acc / norm : 0;
  }
  return out;
}

interface PolyphaseTable {
  kernel: SincKernel;
  phases: number;
  step: number;
  weights: Float64Array[];
  firstOffset: Int32Array;
  sums: Float64Array;
}

const polyphaseTables = new Map<string, PolyphaseTable>();
/** More phases than this and a table costs more than it saves on a clip of a few seconds. */
const MAX_PHASES = 4000;

function polyphaseTable(fromRate: number, toRate: number): PolyphaseTable {
  const key = `${fromRate}/${toRate}`;
  const cached = polyphaseTables.get(key);
  if (cached) return cached;
  const g = gcd(fromRate, toRate);
  const phases = toRate / g;
  if (phases > MAX_PHASES)
    throw new RangeError(`${fromRate} -> ${toRate} Hz needs ${phases} kernel phases (at most ${MAX_PHASES})`);
  const kernel = new SincKernel(fromRate, toRate);
  const weights: Float64Array[] = [];
  const firstOffset = new Int32Array(phases);
  const sums = new Float64Array(phases);
  for (let p = 0; p < phases; p++) {
    // output centre = base + p / phases; taps k with |k - centre| <= support, as in `resample`
    const frac = p / phases;
    const first = Math.ceil(frac - kernel.support);
    const last = Math.floor(frac + kernel.support);
    const w = new Float64Array(last - first + 1);
    let sum = 0;
    for (let k = first; k <= last; k++) {
      w[k - first] = kernel.tap(k - frac);
      sum += w[k - first]!;
    }
    weights.push(w);
    firstOffset[p] = first;
    sums[p] = sum;
  }
  const table = { kernel, phases, step: fromRate / g, weights, firstOffset, sums };
  polyphaseTables.set(key, table);
  return table;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The windowed-sinc kernel for one rate pair, shared by both resamplers. */
class SincKernel {
  readonly ratio: number;
  /** Input samples either side of an output sample's centre. */
  readonly support: number;
  private readonly cutoff: number;
  private readonly beta = 8;
  private readonly i0Beta: number;

  constructor(fromRate: number, toRate: number) {
    this.ratio = toRate / fromRate;
    this.cutoff = Math.min(1, this.ratio) * 0.95; // fraction of the input Nyquist
    const halfTaps = 16;
    this.support = Math.ceil(halfTaps / Math.min(1, this.ratio));
    this.i0Beta = besselI0(this.beta);
  }

  outputLength(inputLength: number): number {
    return Math.floor(inputLength * this.ratio);
  }

  /** One output sample at `center` from input[first..last], input index k at buf[k - base]. */
  interpolate(buf: Float32Array, base: number, first: number, last: number, center: number): number {
    let acc = 0;
    let norm = 0;
    for (let k = first; k <= last; k++) {
      const s = this.tap(k - center);
      acc += buf[k - base]! * s;
      norm += s;
    }
    return norm > 0 ? acc / norm : 0;
  }

  /** The kernel's weight for an input sample `x` input samples from the output sample's centre. */
  tap(x: number): number {
    return sinc(x * this.cutoff) * this.cutoff * kaiser(x / this.support, this.beta, this.i0Beta);
  }
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
