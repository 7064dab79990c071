/**
 * k-of-n confirmation with hysteresis, as a pure state machine over scored windows.
 *
 * A scream is confirmed when at least `k` of the last `n` windows score at or above the
 * threshold; the confirmation time is the end of the window that completed the count
 * (`detectedAtS`), which is what detection latency is measured from. Once confirmed, the
 * event stays open until `releaseWindows` consecutive windows fall below the threshold,
 * so one long scream (with breaths in it) is one event, not a string of them.
 */
export interface ConfirmerOptions {
  threshold: number;
  k: number;
  n: number;
  releaseWindows: number;
}

export interface ScoredWindow {
  index: number;
  startS: number;
  endS: number;
  probability: number;
}

export interface ConfirmedEvent {
  /** Start of the first over-threshold window in the run that confirmed the event. */
  startS: number;
  /** End of the last over-threshold window (updated while the event is open). */
  endS: number;
  detectedAtS: number;
  peakProbability: number;
  peakWindowIndex: number;
}

export type ConfirmerUpdate =
  | { type: 'confirmed'; event: ConfirmedEvent }
  | { type: 'ended'; event: ConfirmedEvent }
  | null;

export function validateConfirmerOptions(o: ConfirmerOptions): void {
  if (!(o.threshold > 0 && o.threshold <= 1))
    throw new RangeError(`threshold must be in (0, 1], got ${o.threshold}`);
  if (!Number.isInteger(o.n) || o.n < 1) throw new RangeError(`n must be a positive integer, got ${o.n}`);
  if (!Number.isInteger(o.k) || o.k < 1 || o.k > o.n)
    throw new RangeError(`k must be an integer in 1..n (${o.n}), got ${o.k}`);
  if (!Number.isInteger(o.releaseWindows) || o.releaseWindows < 1) {
    throw new RangeError(`releaseWindows must be a positive integer, got ${o.releaseWindows}`);
  }
}

export class ScreamConfirmer {
  private recent: ScoredWindow[] = [];
  private open: ConfirmedEvent | null = null;
  private below = 0;

  constructor(private readonly options: ConfirmerOptions) {
    validateConfirmerOptions(options);
  }

  get isOpen(): boolean {
    return this.open !== null;
  }

  push(w: ScoredWindow): ConfirmerUpdate {
    const { threshold, k, n, releaseWindows } = this.options;
    const hit = w.probability >= threshold;
    if (this.open) {
      if (hit) {
        this.below = 0;
        this.open.endS = w.endS;
        if (w.probability > this.open.peakProbability) {
          this.open.peakProbability = w.probability;
          this.open.peakWindowIndex = w.index;
        }
        return null;
      }
      this.below++;
      if (this.below >= releaseWindows) {
        const ended = this.open;
        this.open = null;
        this.below = 0;
        this.recent = [];
        return { type: 'ended', event: ended };
      }
      return null;
    }
    this.recent.push(w);
    if (this.recent.length > n) this.recent.shift();
    const hits = this.recent.filter((r) => r.probability >= threshold);
    if (hit && hits.length >= k) {
      let peak = hits[0]!;
      for (const h of hits) if (h.probability > peak.probability) peak = h;
      this.open = {
        startS: hits[0]!.startS,
        endS: w.endS,
        detectedAtS: w.endS,
        peakProbability: peak.probability,
        peakWindowIndex: peak.index,
      };
      this.below = 0;
      return { type: 'confirmed', event: { ...this.open } };
    }
    return null;
  }

  /** Closes an open event at the end of the stream. */
  finish(): ConfirmerUpdate {
    if (!this.open) return null;
    const ended = this.open;
    this.open = null;
    this.recent = [];
    this.below = 0;
    return { type: 'ended', event: ended };
  }
}
