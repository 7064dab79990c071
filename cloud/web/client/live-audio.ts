import { StreamResampler } from '../../../core/audio/resample.ts';

export const DETECTOR_RATE = 16_000;

/**
 * Resamples a live stream to 16 kHz with the core's streaming sinc resampler and hands it on
 * in 0.25 s chunks. The output is the same, bit for bit, as resampling the whole recording at
 * once, which is what the sensor's decoder and the dashboard's upload analysis do: the browser
 * scores the very samples they would. (An earlier version resampled each chunk with 10 ms of
 * context either side: close, but not the same samples.) Latency: the resampler's right-hand
 * taps (1 ms at 48 kHz) plus the chunk.
 */
export class ChunkResampler {
  private readonly stream: StreamResampler;
  private readonly chunk = DETECTOR_RATE / 4;
  /** Resampled samples not yet handed on: fewer than one chunk between calls. */
  private pending = new Float32Array(0);

  constructor(readonly fromRate: number) {
    this.stream = new StreamResampler(fromRate, DETECTOR_RATE);
  }

  push(samples: Float32Array): Float32Array[] {
    const ready = this.stream.push(samples);
    const all = new Float32Array(this.pending.length + ready.length);
    all.set(this.pending);
    all.set(ready, this.pending.length);
    const out: Float32Array[] = [];
    let at = 0;
    for (; at + this.chunk <= all.length; at += this.chunk) out.push(all.slice(at, at + this.chunk));
    this.pending = all.slice(at);
    return out;
  }
}

export function rmsDbfs(samples: Float32Array): number {
  let e = 0;
  for (const v of samples) e += v * v;
  return 10 * Math.log10(Math.max(e / Math.max(samples.length, 1), 1e-12));
}
