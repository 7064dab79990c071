import type {
  AlertSuppression,
  ChannelDelivery,
  EventQuery,
  EventStore,
  ResponseChange,
  ResponseStatus,
  RetentionCutoffs,
  Review,
  StoredEvent,
} from './types.ts';

export interface EventChange {
  eventId: string;
  /** true for a newly stored event, false for a change of a stored one. */
  created: boolean;
}

export type EventChangeListener = (change: EventChange) => void;

/** Anything that tells who is listening that an event was stored or changed. */
export interface EventChanges {
  subscribe(listener: EventChangeListener): () => void;
}

/**
 * An EventStore that reports every successful write, so the dashboard can push changes to
 * browsers instead of being polled. It reports after the write is committed (a listener that
 * reads the event sees the change) and never fails a write because a listener threw.
 */
export class ObservedEventStore implements EventStore, EventChanges {
  private readonly listeners = new Set<EventChangeListener>();

  constructor(readonly inner: EventStore) {}

  subscribe(listener: EventChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(eventId: string, created: boolean): void {
    for (const l of this.listeners) {
      try {
        l({ eventId, created });
      } catch {
        // a listener's fault is its own (the web feed logs its errors)
      }
    }
  }

  start(): Promise<void> {
    return this.inner.start();
  }
  stop(): Promise<void> {
    return this.inner.stop();
  }
  /** Readiness probe of the wrapped store (a store without one counts as ready). */
  async checkWritable(): Promise<void> {
    await this.inner.checkWritable?.();
  }
  async insertIfNew(event: StoredEvent): Promise<boolean> {
    const created = await this.inner.insertIfNew(event);
    if (created) this.emit(event.eventId, true);
    return created;
  }
  get(eventId: string): Promise<StoredEvent | null> {
    return this.inner.get(eventId);
  }
  list(query: EventQuery): Promise<StoredEvent[]> {
    return this.inner.list(query);
  }
  async updateDelivery(eventId: string, delivery: ChannelDelivery): Promise<void> {
    await this.inner.updateDelivery(eventId, delivery);
    this.emit(eventId, false);
  }
  async setReview(eventId: string, review: Review): Promise<void> {
    await this.inner.setReview(eventId, review);
    this.emit(eventId, false);
  }
  async setTimeline(eventId: string, timeline: NonNullable<StoredEvent['timeline']>): Promise<void> {
    if (!this.inner.setTimeline) return;
    await this.inner.setTimeline(eventId, timeline);
    this.emit(eventId, false);
  }
  async recordResponse(eventId: string, change: ResponseChange): Promise<StoredEvent | null> {
    const out = await this.inner.recordResponse(eventId, change);
    if (out) this.emit(eventId, false);
    return out;
  }
  async setResponseStatus(
    eventId: string,
    responseStatus: ResponseStatus,
    detail?: { suppressedBy?: AlertSuppression | null },
  ): Promise<void> {
    if (!this.inner.setResponseStatus) return;
    await this.inner.setResponseStatus(eventId, responseStatus, detail);
    this.emit(eventId, false);
  }
  count(): Promise<number> {
    return this.inner.count();
  }
  findExpired(cutoffs: RetentionCutoffs, limit: number): Promise<string[]> {
    return this.inner.findExpired(cutoffs, limit);
  }
  /** Not reported: a purged event is a year old, nobody's page is showing it live. */
  deleteExpired(eventIds: readonly string[], cutoffs: RetentionCutoffs): Promise<number> {
    return this.inner.deleteExpired(eventIds, cutoffs);
  }
}
