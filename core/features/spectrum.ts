/**
 * Meyda's spectral front end, replicated operation for operation on preallocated typed arrays:
 * its Hann window (Float32, `0.5 - 0.5 cos(2 pi i / (N - 1))`), the window product in double,
 * fftjs's radix-2 decimation-in-time FFT with the same twiddles (`euler(k, n)`), the amplitude
 * spectrum rounded to Float32, and Meyda's zcr (on the windowed frame), spectralRolloff and
 * spectralFlatness. Every value equals `Meyda.extract` to the bit (test/core/features.test.ts);
 * Meyda itself allocates a dozen arrays and a few thousand small objects per frame, which made
 * its FFT a fifth of the analysis time.
 */
export class MeydaSpectrum {
  /** The windowed frame (Meyda's `signal` after windowing). */
  readonly windowed: Float64Array;
  /** |X_k| for k < N/2, Float32 as Meyda's `amplitudeSpectrum`. */
  readonly amp: Float32Array;
  private readonly window: Float32Array;
  private readonly re: Float64Array;
  private readonly im: Float64Array;
  private readonly reversed: Int32Array;
  /** Per stage s (size 2^s), cos and sin of -2 pi k / 2^s for k < 2^(s-1), back to back. */
  private readonly twCos: Float64Array;
  private readonly twSin: Float64Array;
  private readonly logN: number;

  constructor(
    readonly size: number,
    readonly sampleRate: number,
  ) {
    const logN = Math.log2(size);
    if (!Number.isInteger(logN)) throw new Error(`FFT size ${size} is not a power of 2`);
    this.logN = logN;
    this.windowed = new Float64Array(size);
    this.amp = new Float32Array(size / 2);
    this.re = new Float64Array(size);
    this.im = new Float64Array(size);
    this.window = new Float32Array(size);
    for (let i = 0; i < size; i++) this.window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (size - 1));
    this.reversed = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      let r = 0;
      for (let b = 0; b < logN; b++) r |= ((i >> b) & 1) << (logN - 1 - b);
      this.reversed[i] = r;
    }
    this.twCos = new Float64Array(size);
    this.twSin = new Float64Array(size);
    for (let s = 1, off = 0; s <= logN; s++) {
      const currN = 2 ** s;
      for (let k = 0; k < currN / 2; k++, off++) {
        const x = (-2 * Math.PI * k) / currN; // fftjs's euler(k, currN)
        this.twCos[off] = Math.cos(x);
        this.twSin[off] = Math.sin(x);
      }
    }
  }

  /** Windows `frame`, transforms it, and fills `windowed` and `amp`. */
  compute(frame: Float32Array): void {
    const { size, re, im, windowed, window, reversed, twCos, twSin } = this;
    for (let i = 0; i < size; i++) windowed[i] = frame[i]! * window[i]!;
    for (let i = 0; i < size; i++) {
      re[reversed[i]!] = windowed[i]!;
      im[i] = 0;
    }
    for (let s = 1, off = 0; s <= this.logN; s++) {
      const currN = 1 << s;
      const half = currN >> 1;
      // k = 0: the twiddle is (1, -0), the product is the odd sample itself (up to the sign
      // of a zero, which no amplitude can show)
      for (let even = 0; even < size; even += currN) {
        const odd = even + half;
        const or = re[odd]!;
        const oi = im[odd]!;
        const er = re[even]!;
        const ei = im[even]!;
        re[odd] = er - or;
        im[odd] = ei - oi;
        re[even] = or + er;
        im[even] = oi + ei;
      }
      for (let k = 1; k < half; k++) {
        const tr = twCos[off + k]!;
        const ti = twSin[off + k]!;
        for (let even = k; even < size; even += currN) {
          const odd = even + half;
          const or = re[odd]!;
          const oi = im[odd]!;
          const mr = tr * or - ti * oi;
          const mi = tr * oi + ti * or;
          const er = re[even]!;
          const ei = im[even]!;
          re[odd] = er - mr;
          im[odd] = ei - mi;
          re[even] = mr + er;
          im[even] = mi + ei;
        }
      }
      off += half;
    }
    const amp = this.amp;
    for (let k = 0; k < amp.length; k++) amp[k] = Math.sqrt(re[k]! ** 2 + im[k]! ** 2);
  }

  /** Meyda's zcr: sign changes of the windowed frame. */
  zcr(): number {
    const s = this.windowed;
    let n = 0;
    for (let i = 1; i < s.length; i++) {
      if ((s[i - 1]! >= 0 && s[i]! < 0) || (s[i - 1]! < 0 && s[i]! >= 0)) n++;
    }
    return n;
  }

  /** Meyda's spectralRolloff (Hz below which 99% of the amplitude sum lies). */
  rolloff(): number {
    const a = this.amp;
    const nyqBin = this.sampleRate / (2 * (a.length - 1));
    let ec = 0;
    for (let i = 0; i < a.length; i++) ec += a[i]!;
    const threshold = 0.99 * ec;
    let n = a.length - 1;
    while (ec > threshold && n >= 0) {
      ec -= a[n]!;
      --n;
    }
    return (n + 1) * nyqBin;
  }

  /** Meyda's spectralFlatness (geometric over arithmetic mean of the amplitudes). */
  flatness(): number {
    const a = this.amp;
    let numerator = 0;
    let denominator = 0;
    for (let i = 0; i < a.length; i++) {
      numerator += Math.log(a[i]!);
      denominator += a[i]!;
    }
    return (Math.exp(numerator / a.length) * a.length) / denominator;
  }
}
