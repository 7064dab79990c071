/**
 * The event store contract shared by the SQLite (embedded default) and MongoDB stores.
 * Field names are the documented stored-event fields; keep them.
 */
export type LocationSource = 'sensor-config' | 'device' | 'ip-database' | 'browser' | 'unknown';

export interface StoredLocation {
  latitude: number | null;
  longitude: number | null;
  /** Metres; null when unknown. */
  accuracy: number | null;
  address: string | null;
  source: LocationSource;
  room?: string | null;
}

export type ChannelStatus = 'pending' | 'sent' | 'delivered' | 'failed' | 'not-configured' | 'suppressed';

export interface ChannelDelivery {
  channel: 'sms' | 'email';
  to: string;
  status: ChannelStatus;
  attempts: number;
  lastError?: string | null;
  providerId?: string | null;
  updatedAt: string;
  /** status 'pending' after a failed try: when the next try is due (ISO). */
  nextAttemptAt?: string | null;
  /** status 'suppressed' by the per-contact rate limit: when this contact can be alerted again (ISO). */
  limitedUntil?: string | null;
}

/** Why an event that met its policy sent nothing itself: another event of the sensor alerted. */
export interface AlertSuppression {
  reason: 'cooldown';
  /** The event whose alert opened the cooldown (its page shows what was sent). */
  eventId: string;
  /** When the cooldown ends (ISO); a follow-up summary of the suppressed events goes out then. */
  until: string;
}

/** Where the people on call are with an event (independent of the alert delivery summary). */
export type ResponseState = 'new' | 'acknowledged' | 'resolved';

export interface EventResponse {
  state: ResponseState;
  /** Who moved it to this state, and when (ISO). */
  userId: string;
  at: string;
  /** Set when resolved. */
  verdict?: Review['verdict'] | null;
  note?: string | null;
}

/** One change of an event's response, appended to `history` (never rewritten). */
export interface HistoryEntry {
  at: string;
  userId: string;
  action: 'acknowledged' | 'resolved' | 'reopened' | 'manual-alert';
  state?: ResponseState;
  verdict?: Review['verdict'] | null;
  note?: string | null;
}

/** A response change: the new state plus the history entry recording it. */
export interface ResponseChange {
  response: EventResponse;
  entry: HistoryEntry;
}

export type Review = {
  verdict: 'false-alarm' | 'confirmed';
  userId: string;
  at: string;
  note?: string | null;
};

/** What an event is: a sensor's detection or near-miss, an operator's, an upload, a sensor's health. */
export type AlertType = 'scream' | 'near-miss' | 'manual' | 'upload' | 'sensor-offline' | 'sensor-degraded';

/** The summary of an event's alert deliveries (cloud/store/deliveries.ts `summarise`). */
export type ResponseStatus =
  | 'pending'
  | 'alerted'
  | 'partial'
  | 'failed'
  | 'not-configured'
  | 'suppressed'
  | 'none';

export interface StoredEvent {
  eventId: string;
  sensorId: string;
  /**
   * The eventId the sensor sent, when it was taken by another sensor's event and the bridge
   * stored this one under an id derived from both (cloud/ingest/event-ingest.ts).
   */
  sensorEventId?: string;
  /**
   * The sensor's own timestamp, when it was more than maxClockSkewS ahead of the bridge's clock:
   * `timestamp` is then the received time (so a clock years ahead does not pin the event to the
   * top of the list) and `clockSkewS` says by how much the sensor was ahead.
   */
  sensorTimestamp?: string;
  clockSkewS?: number;
  /** When the sensor confirmed the event (ISO). */
  timestamp: string;
  /** When the cloud received it (ISO); differs from timestamp under clock skew or backlog. */
  receivedAt: string;
  startedAt?: string | null;
  audioSource: string;
  screamProbability: number;
  isScream: boolean;
  thresholdValue: number;
  levelDbfs?: number | null;
  modelVersion?: string | null;
  location: StoredLocation;
  alertType: AlertType;
  responseStatus: ResponseStatus;
  deliveries: ChannelDelivery[];
  userId?: string | null;
  deviceInfo?: Record<string, unknown> | null;
  features?: Record<string, number> | null;
  notes?: string | null;
  error?: string | null;
  review?: Review | null;
  /** Set when the cooldown suppressed this event's alert: which event did alert, and until when. */
  suppressedBy?: AlertSuppression | null;
  /** The on-call response state; absent means 'new'. */
  response?: EventResponse | null;
  /** Every response change, oldest first (appended, never overwritten). */
  history?: HistoryEntry[] | null;
  /** Window timeline for uploads/analysis: [{startS, endS, probability}]. */
  windows?: { startS: number; endS: number; probability: number }[] | null;
  /**
   * A sensor's evidence: its window scores up to the confirmation (`t` s relative to it, <= 0),
   * with the level of each window; numbers only, no audio (protocol `timeline`).
   */
  timeline?: { t: number; p: number; levelDbfs: number }[] | null;
}

export interface EventQuery {
  sensorId?: string;
  /** ISO bounds on timestamp, inclusive. */
  from?: string;
  to?: string;
  isScream?: boolean;
  /** Response state ('new' includes events never acknowledged). */
  responseState?: ResponseState;
  /** Resolution verdict. */
  verdict?: Review['verdict'];
  limit?: number;
  /** Opaque cursor from a previous page (newest first). */
  before?: string;
}

/**
 * Which events the retention purge removes (cloud/store/retention.ts): those whose `timestamp`
 * is before `before`, except reviewed false alarms (review.verdict 'false-alarm', kept for
 * retraining), which go only once before `keepReviewedBefore` too (null: kept for good).
 */
export interface RetentionCutoffs {
  /** ISO. */
  before: string;
  /** ISO, or null. */
  keepReviewedBefore: string | null;
}

export interface EventStore {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Inserts if eventId is new. Returns false (and changes nothing) for a duplicate. */
  insertIfNew(event: StoredEvent): Promise<boolean>;
  get(eventId: string): Promise<StoredEvent | null>;
  /** Newest first by timestamp, then eventId. */
  list(query: EventQuery): Promise<StoredEvent[]>;
  /**
   * Merges one channel/recipient outcome into `deliveries[]` (kept only if newer than the stored
   * one: cloud/store/deliveries.ts) and sets `responseStatus` to the summary of the result.
   * Atomic against other bridges writing the same event.
   */
  updateDelivery(eventId: string, delivery: ChannelDelivery): Promise<void>;
  setReview(eventId: string, review: Review): Promise<void>;
  /**
   * Sets the response state (and, when resolved, `review`) and appends the entry to `history`,
   * in one write. Returns the updated event, or null when there is no such event.
   */
  recordResponse(eventId: string, change: ResponseChange): Promise<StoredEvent | null>;
  /** Replaces the evidence timeline (the sensor's follow-up with the 10 s after the confirmation). */
  setTimeline?(eventId: string, timeline: NonNullable<StoredEvent['timeline']>): Promise<void>;
  /** Sets the alert summary without a delivery (e.g. 'none', 'suppressed'). Optional: the bridge's stores have it. */
  setResponseStatus?(
    eventId: string,
    responseStatus: ResponseStatus,
    detail?: { suppressedBy?: AlertSuppression | null },
  ): Promise<void>;
  count(): Promise<number>;
  /** Up to `limit` ids of events the retention rule removes, oldest first. */
  findExpired(cutoffs: RetentionCutoffs, limit: number): Promise<string[]>;
  /**
   * Deletes those of `eventIds` that the rule still removes (one reviewed as a false alarm
   * meanwhile stays); returns how many were deleted.
   */
  deleteExpired(eventIds: readonly string[], cutoffs: RetentionCutoffs): Promise<number>;
  /**
   * Readiness probe (/healthz): resolves when the store can take a write now, throws with the
   * reason otherwise. Optional: a store without it counts as ready once started.
   */
  checkWritable?(): Promise<void>;
}
