import type { Logger } from 'pino';
import { decodeSensorMessage } from '../../protocol/codec.ts';
import { ScreamwatchError } from '../../protocol/errors.ts';
import { digestUlid, ulidTime } from '../../protocol/event-id.ts';
import type {
  CommandResultMessage,
  EventMessage,
  EvidenceMessage,
  HeartbeatMessage,
} from '../../protocol/messages.ts';
import { parseSensorTopic } from '../../protocol/topics.ts';
import type { Geolocator } from '../geo/locator.ts';
import type {
  AlertSuppression,
  ChannelDelivery,
  EventStore,
  ResponseStatus,
  StoredEvent,
} from '../store/types.ts';
import type { SensorRegistry } from './sensor-registry.ts';

/** What the alert policy decided for an event: stored with it, in the same write. */
export interface AlertDecision {
  responseStatus: ResponseStatus;
  deliveries: ChannelDelivery[];
  suppressedBy: AlertSuppression | null;
  /** false: the event was decided before (a redelivery); nothing new was queued. */
  fresh: boolean;
  /** How many of the event's jobs show on it (0: it alerts nobody). */
  jobs: number;
}

/** Decides and queues the alerts for an event, idempotent by eventId (cloud/alerts/alert-service.ts). */
export interface EventAlerter {
  decide(event: StoredEvent): Promise<AlertDecision>;
  /** After the insert; `inserted` false when the event was stored before. Does not throw. */
  eventStored(event: StoredEvent, decision: AlertDecision, inserted: boolean): void;
}

export type IngestOutcome =
  | 'stored'
  | 'duplicate'
  | 'rejected'
  | 'status'
  | 'heartbeat'
  | 'command-result'
  | 'evidence';

export interface IngestStats {
  received: number;
  stored: number;
  duplicates: number;
  rejected: number;
  /** Rejections by error code (MQTT_PAYLOAD_INVALID, MQTT_SENSOR_MISMATCH, ...). */
  rejectedByCode: Record<string, number>;
  status: number;
  heartbeats: number;
}

export interface EventIngestDeps {
  store: EventStore;
  registry: SensorRegistry;
  locator: Geolocator;
  alerter: EventAlerter;
  topicRoot: string;
  logger: Logger;
  clock?: () => Date;
  /** An event stamped further ahead than this is listed by its received time (config maxClockSkewS). */
  maxClockSkewS?: number;
  /** Every valid heartbeat (the sensor history); must not throw. */
  onHeartbeat?: (m: HeartbeatMessage) => void;
  /** A sensor's answer to a command; awaited (recorded) before the broker is acknowledged. */
  onCommandResult?: (m: CommandResultMessage) => Promise<void>;
  /** After a new event is stored (Home Assistant state); must not throw. */
  onStored?: (event: StoredEvent) => void;
}

/** Rejections are logged, but at most this many per code per minute (a broken sensor can flood). */
const REJECT_LOGS_PER_MINUTE = 20;

/**
 * MQTT message -> validated event -> located -> alerts decided -> stored once, with the decision.
 * A bad payload is counted and logged and never throws; a store failure does throw, so the
 * broker adapter withholds the acknowledgement and the message is delivered again.
 */
export class EventIngest {
  readonly stats: IngestStats = {
    received: 0,
    stored: 0,
    duplicates: 0,
    rejected: 0,
    rejectedByCode: {},
    status: 0,
    heartbeats: 0,
  };
  private readonly clock: () => Date;
  private readonly rejectLog = new Map<string, { minute: number; n: number }>();

  constructor(private readonly deps: EventIngestDeps) {
    this.clock = deps.clock ?? (() => new Date());
  }

  private reject(code: string, topic: string, message: string): IngestOutcome {
    this.stats.rejected += 1;
    this.stats.rejectedByCode[code] = (this.stats.rejectedByCode[code] ?? 0) + 1;
    const minute = Math.floor(this.clock().getTime() / 60_000);
    const entry = this.rejectLog.get(code);
    const n = entry && entry.minute === minute ? entry.n + 1 : 1;
    this.rejectLog.set(code, { minute, n });
    if (n <= REJECT_LOGS_PER_MINUTE) {
      this.deps.logger.warn(
        { code, topic, reason: message, rejectedTotal: this.stats.rejected },
        'message rejected',
      );
    }
    return 'rejected';
  }

  async handleMessage(
    topic: string,
    payload: Uint8Array,
    meta: { ip?: string | null } = {},
  ): Promise<IngestOutcome> {
    this.stats.received += 1;
    const parsedTopic = parseSensorTopic(this.deps.topicRoot, topic);
    if (!parsedTopic)
      return this.reject(
        'MQTT_TOPIC_INVALID',
        topic,
        `not <root>/sensors/<id>/<kind> under "${this.deps.topicRoot}"`,
      );
    let decoded: ReturnType<typeof decodeSensorMessage>;
    try {
      decoded = decodeSensorMessage(parsedTopic.kind, parsedTopic.sensorId, payload);
    } catch (err) {
      const code = err instanceof ScreamwatchError ? err.code : 'MQTT_PAYLOAD_INVALID';
      return this.reject(code, topic, (err as Error).message);
    }
    const { registry } = this.deps;
    if (meta.ip) registry.noteConnection(parsedTopic.sensorId, meta.ip);
    switch (decoded.kind) {
      case 'status':
        this.stats.status += 1;
        registry.noteStatus(decoded.message);
        return 'status';
      case 'heartbeat':
        this.stats.heartbeats += 1;
        registry.noteHeartbeat(decoded.message);
        this.deps.onHeartbeat?.(decoded.message);
        return 'heartbeat';
      case 'command-results':
        await this.deps.onCommandResult?.(decoded.message);
        return 'command-result';
      case 'evidence':
        return this.takeEvidence(decoded.message);
      case 'events': {
        const event = this.toStored(decoded.message);
        registry.noteEvent(event.sensorId, event.timestamp, decoded.message.modelVersion);
        return this.ingestEvent(await this.keyedBySensor(event));
      }
    }
  }

  private toStored(m: EventMessage): StoredEvent {
    const sensor = this.deps.registry.config(m.sensorId);
    const ip = this.deps.registry.get(m.sensorId)?.ip ?? null;
    const received = this.clock();
    const sensorMs = Date.parse(m.timestamp);
    const timestamp = new Date(sensorMs).toISOString();
    const skewS = Math.round((sensorMs - received.getTime()) / 1000);
    const skewed = skewS > (this.deps.maxClockSkewS ?? 300);
    const event: StoredEvent = {
      eventId: m.eventId,
      sensorId: m.sensorId,
      timestamp: skewed ? received.toISOString() : timestamp,
      receivedAt: received.toISOString(),
      startedAt: m.startedAt,
      audioSource: m.audioSource,
      screamProbability: m.screamProbability,
      isScream: m.isScream,
      thresholdValue: m.thresholdValue,
      levelDbfs: m.levelDbfs,
      modelVersion: m.modelVersion,
      location: this.deps.locator.locate({ sensor, device: m.location, ip }),
      alertType: m.isScream ? 'scream' : 'near-miss',
      responseStatus: 'pending',
      deliveries: [],
      userId: null,
      deviceInfo: m.deviceInfo,
      features: m.features ?? null,
      notes: m.notes ?? null,
      ...(m.timeline?.length ? { timeline: m.timeline } : {}),
      error: null,
      review: null,
    };
    if (skewed) {
      // A clock ahead would pin the event to the top of the list and the fleet view for as
      // long as the skew lasts; listed by its received time instead, the skew shown with it.
      event.sensorTimestamp = timestamp;
      event.clockSkewS = skewS;
      this.deps.logger.warn(
        {
          code: 'SENSOR_CLOCK_SKEW',
          sensorId: m.sensorId,
          eventId: m.eventId,
          sensorTimestamp: timestamp,
          skewS,
        },
        `sensor ${m.sensorId} clock is ${skewS} s ahead; event ${m.eventId} is listed by its received time`,
      );
    }
    return event;
  }

  /**
   * Events are de-duplicated per (sensorId, eventId). The store's key is the eventId alone, so
   * an event whose id is already taken by another sensor's event (a cloned SD card, a sensor
   * bug, a hostile client) is stored under an id derived from both (the same on every bridge
   * and every redelivery, so it is still stored and alerted once), with the sensor's own id in
   * `sensorEventId`, and a coded warning. Nothing acknowledged is dropped.
   */
  private async keyedBySensor(event: StoredEvent): Promise<StoredEvent> {
    const stored = await this.deps.store.get(event.eventId);
    if (!stored || stored.sensorId === event.sensorId) return event;
    const eventId = digestUlid(`${event.sensorId}|${event.eventId}`, ulidTime(event.eventId));
    this.deps.logger.warn(
      {
        code: 'EVENT_ID_CONFLICT',
        eventId,
        sensorEventId: event.eventId,
        sensorId: event.sensorId,
        storedSensorId: stored.sensorId,
        differs: ['sensorId'],
      },
      `event ${event.eventId} from ${event.sensorId} has the id of a stored event of ${stored.sensorId}; stored as ${eventId}`,
    );
    return { ...event, eventId, sensorEventId: event.eventId };
  }

  /**
   * A redelivery carries the same content; the same eventId of the same sensor with other
   * content is not a redelivery. The store keeps the first, so say so with a code instead of
   * dropping the second silently (another sensor's was re-keyed before: keyedBySensor).
   */
  private async checkConflict(event: StoredEvent): Promise<void> {
    const stored = await this.deps.store.get(event.eventId).catch(() => null);
    if (!stored) return;
    const fields = ['timestamp', 'startedAt', 'screamProbability', 'isScream', 'audioSource'] as const;
    const differs = fields.filter((f) => stored[f] !== event[f]);
    if (differs.length === 0) return;
    this.deps.logger.warn(
      {
        code: 'EVENT_ID_CONFLICT',
        eventId: event.eventId,
        sensorId: event.sensorId,
        storedSensorId: stored.sensorId,
        differs,
      },
      `event ${event.eventId} from ${event.sensorId} has the id of a stored event of the same sensor with other content (${differs.join(', ')}); the stored one is kept and this one is not stored`,
    );
  }

  /**
   * The whole timeline of an event, from its sensor, 10 s after the event: it replaces the
   * stored one (the part up to the confirmation) when it is longer. The event is found by the
   * sensor's id (or the id derived from it when another sensor's event had taken it).
   */
  private async takeEvidence(m: EvidenceMessage): Promise<IngestOutcome> {
    const { store, logger } = this.deps;
    if (!store.setTimeline) return 'evidence';
    let stored = await store.get(m.eventId);
    if (stored && stored.sensorId !== m.sensorId)
      stored = await store.get(digestUlid(`${m.sensorId}|${m.eventId}`, ulidTime(m.eventId)));
    if (!stored || stored.sensorId !== m.sensorId) {
      logger.debug({ eventId: m.eventId, sensorId: m.sensorId }, 'evidence for an event not stored; ignored');
      return 'evidence';
    }
    if ((stored.timeline?.length ?? 0) < m.timeline.length)
      await store.setTimeline(stored.eventId, m.timeline);
    return 'evidence';
  }

  /** Decides an event's alerts (from MQTT or made on the dashboard) and stores it, once. */
  async ingestEvent(incoming: StoredEvent): Promise<IngestOutcome> {
    // Decided first, stored with the decision: one event write, and a redelivery after a crash
    // between the two finds the decision and stores the event with it. What the sensor's
    // acknowledgement waits for ends here; sending and recording outcomes do not hold it up.
    const decision = await this.deps.alerter.decide(incoming);
    const event: StoredEvent = {
      ...incoming,
      responseStatus: decision.responseStatus,
      deliveries: decision.deliveries,
    };
    if (decision.suppressedBy) event.suppressedBy = decision.suppressedBy;
    const inserted = await this.deps.store.insertIfNew(event);
    if (inserted) {
      this.stats.stored += 1;
      this.deps.logger.info(
        {
          eventId: event.eventId,
          sensorId: event.sensorId,
          timestamp: event.timestamp,
          screamProbability: event.screamProbability,
          isScream: event.isScream,
          alertType: event.alertType,
          location: event.location,
        },
        'event stored',
      );
      this.deps.onStored?.(event);
    } else {
      this.stats.duplicates += 1;
      this.deps.logger.debug({ eventId: event.eventId, sensorId: event.sensorId }, 'duplicate event ignored');
      await this.checkConflict(event);
    }
    this.deps.alerter.eventStored(event, decision, inserted);
    return inserted ? 'stored' : 'duplicate';
  }
}
