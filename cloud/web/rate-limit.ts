/** At most `max` actions per key within `windowMs` (sliding window), on an injectable clock. */
export class SlidingWindowLimiter {
  private readonly hits = new Map<string, number[]>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** Records an attempt; returns ms until the next is allowed, or 0 when this one is allowed. */
  take(key: string): number {
    const now = this.now();
    const recent = (this.hits.get(key) ?? []).filter((t) => t > now - this.windowMs);
    if (recent.length >= this.max) {
      this.hits.set(key, recent);
      return recent[0]! + this.windowMs - now;
    }
    recent.push(now);
    this.hits.set(key, recent);
    if (this.hits.size > 10_000) this.prune(now);
    return 0;
  }

  /** Ms until `key` may act again (0: now), without recording anything. */
  wait(key: string): number {
    const now = this.now();
    const recent = (this.hits.get(key) ?? []).filter((t) => t > now - this.windowMs);
    return recent.length >= this.max ? recent[0]! + this.windowMs - now : 0;
  }

  /** Records one action (e.g. a failed sign-in) without checking. */
  record(key: string): void {
    const now = this.now();
    const recent = (this.hits.get(key) ?? []).filter((t) => t > now - this.windowMs);
    recent.push(now);
    this.hits.set(key, recent);
    if (this.hits.size > 10_000) this.prune(now);
  }

  clear(key: string): void {
    this.hits.delete(key);
  }

  private prune(now: number): void {
    for (const [k, ts] of this.hits) if (ts.every((t) => t <= now - this.windowMs)) this.hits.delete(k);
  }
}
