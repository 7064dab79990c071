import { resample } from '../../../core/audio/resample.ts';

export const DETECTOR_RATE = 16_000;

/**
 * Resamples a live stream to 16 kHz in 0.25 s chunks with the core's sinc resampler.
 * Each chunk is resampled with 10 ms of real neighbouring audio on both sides (one chunk
 * of latency), so chunk edges do not click the way zero-padded edges would.
 */
export class ChunkResampler {
  private buf = new Float32Array(0);
  private done = 0;
  private readonly chunk: number;
  private readonly pad: number;

  constructor(readonly fromRate: number) {
    this.chunk = Math.round(fromRate / 4);
    this.pad = Math.round(fromRate / 100);
  }

  push(samples: Float32Array): Float32Array[] {
    const next = new Float32Array(this.buf.length + samples.length);
    next.set(this.buf);
    next.set(samples, this.buf.length);
    this.buf = next;
    const out: Float32Array[] = [];
    const ratio = DETECTOR_RATE / this.fromRate;
    while (this.buf.length >= this.done + this.chunk + this.pad) {
      const left = Math.min(this.pad, this.done);
      const seg = this.buf.subarray(this.done - left, this.done + this.chunk + this.pad);
      const res = resample(seg, this.fromRate, DETECTOR_RATE);
      const from = Math.round(left * ratio);
      out.push(res.slice(from, from + Math.round(this.chunk * ratio)));
      this.done += this.chunk;
    }
    // keep one pad of history for the next chunk's left context
    const keepFrom = Math.max(0, this.done - this.pad);
    if (keepFrom > 0) {
      this.buf = this.buf.slice(keepFrom);
      this.done -= keepFrom;
    }
    return out;
  }
}

export function rmsDbfs(samples: Float32Array): number {
  let e = 0;
  for (const v of samples) e += v * v;
  return 10 * Math.log10(Math.max(e / Math.max(samples.length, 1), 1e-12));
}
