/**
 * The bounded hand-off between capture and analysis. Capture pushes and never waits: when
 * analysis has fallen behind by more than `capacitySamples`, the oldest audio is dropped and
 * counted (fresh audio matters more than stale audio for an alarm). Analysis pulls.
 */
export class FrameQueue {
  private readonly chunks: Float32Array[] = [];
  private queued = 0;
  /** Samples (ALSA frames: one per channel, mono here) dropped since start. */
  droppedFrames = 0;
  private onData: (() => void) | null = null;

  constructor(readonly capacitySamples: number) {}

  get queuedSamples(): number {
    return this.queued;
  }

  hasRoomFor(samples: number): boolean {
    return this.queued + samples <= this.capacitySamples;
  }

  /** Registers the consumer's wake-up; called after every push. */
  setListener(fn: (() => void) | null): void {
    this.onData = fn;
  }

  /** Returns the number of samples dropped to make room (0 normally). */
  push(samples: Float32Array): number {
    if (samples.length === 0) return 0;
    this.chunks.push(samples);
    this.queued += samples.length;
    let dropped = 0;
    while (this.queued > this.capacitySamples && this.chunks.length > 1) {
      const old = this.chunks.shift()!;
      this.queued -= old.length;
      dropped += old.length;
    }
    this.droppedFrames += dropped;
    this.onData?.();
    return dropped;
  }

  shift(): Float32Array | undefined {
    const c = this.chunks.shift();
    if (c) this.queued -= c.length;
    return c;
  }

  clear(): void {
    this.chunks.length = 0;
    this.queued = 0;
  }
}
