/**
 * k-of-n confirmation with hysteresis, as a pure state machine over scored windows.
 *
 * A scream is confirmed when at least `k` of the last `n` windows score at or above the
 * threshold, or (the short-scream rule) when one window alone reaches
 * `singleWindowThreshold`: a 0.5-1 s scream fills one 1.024 s window at most, so it can
 * never make 2 of 2. The confirmation time is the end of the window that completed the
 * rule (`detectedAtS`), which is what detection latency is measured from. Once confirmed,
 * the event stays open until `releaseWindows` consecutive windows fall below the
 * threshold, so one long scream (with breaths in it) is one event, not a string of them.
 *
 * The event carries what an event message needs (issue 16.5): the peak window itself
 * (whatever the caller scored: the detector passes its features along) and the scores of
 * the event's windows, so no caller has to keep its own window history.
 */
export interface ConfirmerOptions {
  threshold: number;
  k: number;
  n: number;
  releaseWindows: number;
  /** A single window at or above this confirms on its own (short screams); absent = off. */
  singleWindowThreshold?: number | undefined;
}

export interface ScoredWindow {
  index: number;
  startS: number;
  endS: number;
  probability: number;
}

/** How many windows an event keeps (about 33 s): a long event keeps its newest ones. */
export const MAX_EVENT_WINDOWS = 64;

export interface ConfirmedEvent<W extends ScoredWindow = ScoredWindow> {
  /** Start of the first over-threshold window in the run that confirmed the event. */
  startS: number;
  /** End of the last over-threshold window (updated while the event is open). */
  endS: number;
  detectedAtS: number;
  peakProbability: number;
  peakWindowIndex: number;
  /** The highest-scoring window so far, as it was pushed (with the caller's extra fields). */
  peakWindow: W;
  /** Which rule confirmed the event. */
  rule: 'k-of-n' | 'single-window';
  /**
   * The event's windows, oldest first: the last n windows at confirmation (hits and
   * misses), then every window pushed while it was open, at most MAX_EVENT_WINDOWS.
   */
  windows: W[];
}

export type ConfirmerUpdate<W extends ScoredWindow = ScoredWindow> =
  | { type: 'confirmed'; event: ConfirmedEvent<W> }
  | { type: 'ended'; event: ConfirmedEvent<W> }
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
  const s = o.singleWindowThreshold;
  if (s !== undefined && !(s > 0 && s <= 1))
    throw new RangeError(`singleWindowThreshold must be in (0, 1], got ${s}`);
}

export class ScreamConfirmer<W extends ScoredWindow = ScoredWindow> {
  private recent: W[] = [];
  private open: ConfirmedEvent<W> | null = null;
  private below = 0;

  constructor(private readonly options: ConfirmerOptions) {
    validateConfirmerOptions(options);
  }

  get isOpen(): boolean {
    return this.open !== null;
  }

  push(w: W): ConfirmerUpdate<W> {
    const { threshold, k, n, releaseWindows, singleWindowThreshold } = this.options;
    const hit = w.probability >= threshold;
    if (this.open) {
      const e = this.open;
      e.windows.push(w);
      if (e.windows.length > MAX_EVENT_WINDOWS) e.windows.shift();
      if (hit) {
        this.below = 0;
        e.endS = w.endS;
        if (w.probability > e.peakProbability) {
          e.peakProbability = w.probability;
          e.peakWindowIndex = w.index;
          e.peakWindow = w;
        }
        return null;
      }
      this.below++;
      if (this.below >= releaseWindows) {
        this.open = null;
        this.below = 0;
        this.recent = [];
        return { type: 'ended', event: e };
      }
      return null;
    }
    this.recent.push(w);
    if (this.recent.length > n) this.recent.shift();
    if (!hit) return null;
    const hits = this.recent.filter((r) => r.probability >= threshold);
    const single = singleWindowThreshold !== undefined && w.probability >= singleWindowThreshold;
    if (hits.length < k && !single) return null;
    // a lone window over the single-window threshold starts the event itself
    const run = hits.length >= k ? hits : [w];
    let peak = run[0]!;
    for (const h of run) if (h.probability > peak.probability) peak = h;
    this.open = {
      startS: run[0]!.startS,
      endS: w.endS,
      detectedAtS: w.endS,
      peakProbability: peak.probability,
      peakWindowIndex: peak.index,
      peakWindow: peak,
      rule: hits.length >= k ? 'k-of-n' : 'single-window',
      windows: [...this.recent],
    };
    this.below = 0;
    return { type: 'confirmed', event: { ...this.open, windows: [...this.open.windows] } };
  }

  /** Closes an open event at the end of the stream. */
  finish(): ConfirmerUpdate<W> {
    if (!this.open) return null;
    const ended = this.open;
    this.open = null;
    this.recent = [];
    this.below = 0;
    return { type: 'ended', event: ended };
  }
}
