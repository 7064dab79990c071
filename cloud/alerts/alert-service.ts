import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { digestUlid, UlidFactory } from '../../protocol/event-id.ts';
import type { CloudConfig, SensorConfig } from '../config/schema.ts';
import { CloudError } from '../errors.ts';
import type { AlertDecision, EventAlerter } from '../ingest/event-ingest.ts';
import type { SensorView } from '../ingest/sensor-registry.ts';
import { summarise } from '../store/deliveries.ts';
import type {
  AlertSuppression,
  ChannelDelivery,
  EventStore,
  ResponseStatus,
  StoredEvent,
} from '../store/types.ts';
import { AlertDispatcher, logAttempt } from './alert-dispatcher.ts';
import { AlertPolicy, type ContactPlan, deliveriesOf, deliveryOf } from './alert-policy.ts';
import { AlertQueue } from './alert-queue.ts';
import type { AlertJob, AlertStateStore } from './alert-state.ts';
import { DeliveryRecorder } from './delivery-recorder.ts';
import { enqueueContacts } from './enqueue.ts';
import type { Channel, ChannelSender } from './senders.ts';

export interface AlertServiceOptions {
  alerts: CloudConfig['alerts'];
  dataDir: string;
  store: EventStore;
  senders: Partial<Record<Channel, ChannelSender>>;
  /** Sensor config by id (the registry's), for the policy group and the message's names. */
  sensorConfig: (id: string) => SensorConfig | undefined;
  logger: Logger;
  publicUrl?: string | null;
  clock?: () => Date;
  random?: () => number;
  /** How often due jobs and expired cooldowns are looked for (also woken on every enqueue). */
  pollMs?: number;
  /** Parallel sends. */
  concurrency?: number;
  /** Where decisions, jobs, cooldowns and rate reservations live; default SQLite `<dataDir>/alerts.sqlite`. */
  state?: AlertStateStore;
  /** This bridge's id: the owner of its job leases (mqtt.clientId, else screamwatch-bridge-<hostname>). */
  bridgeId?: string;
  /** Every attempt's outcome (metrics): sent, retrying, failed, not-configured, suppressed. */
  onAttempt?: (channel: string, kind: string, outcome: string) => void;
}

/**
 * The id of a "sensor offline" event, the same on every bridge that notices the same silence:
 * it derives from the sensor and its last status/heartbeat timestamp (sensor clock; every
 * bridge receives those, unlike events, which a shared subscription splits). Bridges sharing
 * a MongoDB store then store and alert it once.
 */
export function offlineEventId(
  sensor: Pick<SensorView, 'id' | 'lastBeaconAt' | 'lastSeen'>,
  nowMs: number,
): string {
  const basis = sensor.lastBeaconAt ?? sensor.lastSeen;
  if (!basis) return new UlidFactory().next(nowMs);
  return digestUlid(`${sensor.id}|offline|${basis}`, Date.parse(basis));
}

/**
 * The id of a "sensor degraded" event: from the sensor, its health state and since when (all
 * sensor-side, in the retained status every bridge receives), so a bridge restart or a second
 * bridge finds the episode already stored and does not alert it again.
 */
export function degradedEventId(sensor: Pick<SensorView, 'id' | 'health' | 'healthSince'>): string {
  const since = sensor.healthSince ?? new Date(0).toISOString();
  return digestUlid(`${sensor.id}|degraded|${sensor.health}|${since}`, Date.parse(since));
}

/**
 * Stored events -> SMS and e-mail alerts, in parts: the `AlertPolicy` decides who is alerted
 * about what (pure), the `AlertStateStore` keeps decisions, jobs, cooldowns and rate
 * reservations (SQLite, or MongoDB shared by several bridges), the `AlertDispatcher` sends and
 * retries, and the `DeliveryRecorder` mirrors each outcome onto the event. Ingest calls
 * `decide` once per message before it stores the event, and stores the decision with it: the
 * sensor's PUBACK waits for the alert state's steps and one event insert, never for a send or
 * for a write per contact.
 */
export class AlertService implements EventAlerter {
  readonly queue: AlertStateStore;
  readonly policy: AlertPolicy;
  readonly recorder: DeliveryRecorder;
  private readonly dispatcher: AlertDispatcher;
  private readonly configured: ReadonlySet<Channel>;
  private readonly clock: () => Date;

  constructor(private readonly options: AlertServiceOptions) {
    this.queue = options.state ?? new AlertQueue(join(options.dataDir, 'alerts.sqlite'));
    this.clock = options.clock ?? (() => new Date());
    this.configured = new Set((['sms', 'email'] as const).filter((c) => options.senders[c]));
    this.policy = new AlertPolicy({
      policies: options.alerts.policies,
      sensorConfig: options.sensorConfig,
      publicUrl: options.publicUrl ?? null,
    });
    this.recorder = new DeliveryRecorder({ store: options.store, state: this.queue, logger: options.logger });
    this.dispatcher = new AlertDispatcher({
      state: this.queue,
      store: options.store,
      policy: this.policy,
      recorder: this.recorder,
      senders: options.senders,
      retry: options.alerts.retry,
      lease: {
        owner: options.bridgeId ?? `screamwatch-bridge-${hostname()}`,
        ms: options.alerts.leaseS * 1000,
      },
      logger: options.logger,
      now: () => this.now(),
      random: options.random ?? Math.random,
      pollMs: options.pollMs ?? 500,
      concurrency: options.concurrency ?? 8,
      ...(options.onAttempt ? { onAttempt: options.onAttempt } : {}),
    });
  }

  private now(): number {
    return this.clock().getTime();
  }

  private get owner(): string {
    return this.options.bridgeId ?? `screamwatch-bridge-${hostname()}`;
  }

  async start(): Promise<void> {
    await this.queue.open();
    const recovered = await this.queue.recoverInFlight(this.owner, this.now());
    if (recovered) this.options.logger.warn({ recovered }, 'alerts interrupted by a crash are sent again');
    for (const channel of ['sms', 'email'] as const) {
      if (!this.options.senders[channel]) {
        this.options.logger.warn(
          { channel },
          `alerts: ${channel} is not configured; ${channel} alerts are recorded as not-configured`,
        );
      }
    }
    this.dispatcher.start();
  }

  async stop(): Promise<void> {
    await this.dispatcher.stop();
    await this.recorder.flush();
    for (const s of Object.values(this.options.senders)) s?.close();
    await this.queue.close();
  }

  /** Looks for due work now. */
  kick(): void {
    this.dispatcher.kick();
  }

  /**
   * Decides once per eventId and returns what the event is to be stored with. Each step is
   * atomic and safe to repeat (see AlertStateStore), so a bridge that dies half-way and the
   * bridge that gets the redelivery reach the same jobs, and two bridges never both alert.
   */
  async decide(event: StoredEvent): Promise<AlertDecision> {
    const now = this.now();
    const plan = this.policy.plan(event, now);
    // Not recorded: deciding 'none' again has no effect, and skipping the write keeps ingest
    // of non-alerting events (near-misses) to one store commit.
    if (!plan) return { responseStatus: 'none', deliveries: [], suppressedBy: null, fresh: true, jobs: 0 };
    const earlier = await this.queue.decided(event.eventId);
    if (earlier) {
      const deliveries = deliveriesOf(await this.queue.jobsForEvent(event.eventId));
      const responseStatus: ResponseStatus = deliveries.length
        ? summarise(deliveries)
        : earlier === 'suppressed'
          ? 'suppressed'
          : 'not-configured';
      return { responseStatus, deliveries, suppressedBy: null, fresh: false, jobs: deliveries.length };
    }
    const { logger } = this.options;
    const cooldown = plan.cooldown
      ? await this.queue.claimCooldown(
          {
            key: plan.cooldown.key,
            sensorId: event.sensorId,
            policyIndex: plan.chosen.index,
            firstEventId: event.eventId,
            untilMs: plan.cooldown.untilMs,
          },
          now,
        )
      : 'owner';
    if (plan.cooldown && cooldown === 'held') {
      const { key } = plan.cooldown;
      await this.queue.noteSuppressed(key, event.eventId, event.screamProbability, event.timestamp);
      await this.queue.recordDecision(event.eventId, 'suppressed', now);
      const cd = await this.queue.cooldownOf(key);
      logger.info({ eventId: event.eventId, sensorId: event.sensorId }, 'alert suppressed by cooldown');
      // the dashboard links to the event that did alert, and says until when
      const suppressedBy: AlertSuppression | null = cd
        ? { reason: 'cooldown', eventId: cd.firstEventId, until: new Date(cd.untilMs).toISOString() }
        : null;
      return { responseStatus: 'suppressed', deliveries: [], suppressedBy, fresh: true, jobs: 0 };
    }
    const jobs = await enqueueContacts(this.queue, this.configured, event.eventId, plan.alert, now);
    if (plan.escalation)
      await enqueueContacts(this.queue, this.configured, event.eventId, plan.escalation, now);
    const outcome = jobs.length === 0 ? 'not-configured' : 'alert';
    // Last: until it is written, a redelivery of the event repeats the steps above (same result).
    await this.queue.recordDecision(event.eventId, outcome, now);
    if (outcome === 'not-configured')
      logger.warn(
        { eventId: event.eventId, sensorId: event.sensorId },
        'alert not sent: no contacts configured for this sensor',
      );
    for (const j of jobs)
      if (j.status !== 'queued' && j.attempts === 0)
        logAttempt(logger, j, j.status, j.lastError, {}, this.options.onAttempt);
    this.kick();
    const deliveries = deliveriesOf(jobs);
    return {
      responseStatus: deliveries.length ? summarise(deliveries) : 'not-configured',
      deliveries,
      suppressedBy: null,
      fresh: true,
      jobs: jobs.length,
    };
  }

  /** Ingest stored the event (or found it stored): bring what it shows up to date if needed. */
  eventStored(event: StoredEvent, decision: AlertDecision, inserted: boolean): void {
    if (decision.fresh === inserted) {
      // The usual cases: decided and stored now (the insert carried the decision; write what
      // finished while it was under way), or a plain redelivery (nothing changed).
      if (inserted && decision.jobs > 0) this.recorder.eventStored(event.eventId);
      return;
    }
    // Decided earlier but stored only now (the bridge died in between, or the insert failed and
    // the sensor sent it again), or stored earlier and decided only now (another bridge stored
    // it, or this one died before deciding): the stored event may be behind the alert state.
    if (decision.jobs > 0) {
      void this.recorder.resync(event.eventId);
    } else if (!inserted && decision.responseStatus !== 'none') {
      const detail = decision.suppressedBy ? { suppressedBy: decision.suppressedBy } : {};
      void this.options.store
        .setResponseStatus?.(event.eventId, decision.responseStatus, detail)
        .catch((err: unknown) =>
          this.options.logger.error(
            { err, eventId: event.eventId },
            'cannot record alert status on the event',
          ),
        );
    }
  }

  /** A sensor went silent: stored as a 'sensor-offline' event and alerted (no cooldown). */
  async onSensorOffline(sensor: SensorView): Promise<StoredEvent | null> {
    const now = this.now();
    const event: StoredEvent = {
      ...this.healthEvent(sensor, now),
      eventId: offlineEventId(sensor, now),
      startedAt: sensor.lastSeen,
      alertType: 'sensor-offline',
      notes: `no message for ${Math.round((now - (sensor.lastSeen ? Date.parse(sensor.lastSeen) : now)) / 1000)} s (last seen ${sensor.lastSeen ?? 'never'})`,
    };
    if (!(await this.options.store.insertIfNew(event))) {
      // Another bridge sharing this store (MongoDB) raised the same silence first.
      this.options.logger.info(
        { sensorId: sensor.id, eventId: event.eventId },
        'sensor offline already raised by another bridge',
      );
      return null;
    }
    await this.alertHealthEvent(event, this.policy.offline(event, sensor, now), 'offline', now);
    return event;
  }

  /**
   * A sensor is online but its input is not ok (silent, stuck, clipping, no device): stored as a
   * 'sensor-degraded' event and alerted like 'sensor-offline' (same policy, contacts, rate
   * limit and `alertOnSensorOffline` switch), once per episode.
   */
  async onSensorDegraded(sensor: SensorView): Promise<StoredEvent | null> {
    const now = this.now();
    const health = sensor.health ?? 'unknown';
    const event: StoredEvent = {
      ...this.healthEvent(sensor, now),
      eventId: degradedEventId(sensor),
      startedAt: sensor.healthSince ?? null,
      alertType: 'sensor-degraded',
      notes: `input health ${health} since ${sensor.healthSince ?? 'unknown'}: the sensor is online but cannot hear`,
    };
    if (!(await this.options.store.insertIfNew(event))) {
      this.options.logger.info(
        { sensorId: sensor.id, eventId: event.eventId, health },
        'sensor degradation already raised (bridge restart or another bridge)',
      );
      return null;
    }
    await this.alertHealthEvent(event, this.policy.degraded(event, sensor, now), 'degraded', now);
    return event;
  }

  private healthEvent(sensor: SensorView, now: number): Omit<StoredEvent, 'eventId' | 'alertType'> {
    return {
      sensorId: sensor.id,
      timestamp: new Date(now).toISOString(),
      receivedAt: new Date(now).toISOString(),
      audioSource: 'bridge:registry',
      screamProbability: 0,
      isScream: false,
      thresholdValue: this.policy.choose(sensor.id)?.policy.threshold ?? 0,
      location: sensor.location ?? {
        latitude: null,
        longitude: null,
        accuracy: null,
        address: null,
        source: 'unknown',
        room: sensor.room,
      },
      responseStatus: 'pending',
      deliveries: [],
      error: null,
    };
  }

  private async alertHealthEvent(
    event: StoredEvent,
    plan: ContactPlan | null,
    outcome: 'offline' | 'degraded',
    now: number,
  ): Promise<void> {
    const jobs = plan ? await enqueueContacts(this.queue, this.configured, event.eventId, plan, now) : [];
    await this.queue.recordDecision(event.eventId, outcome, now);
    await this.recordCreated(event.eventId, jobs);
  }

  /** An operator's "send alert now" from the dashboard: always sent, no cooldown, no rate limit. */
  async sendManualAlert(eventId: string, userId: string): Promise<{ deliveries: ChannelDelivery[] }> {
    const event = await this.options.store.get(eventId);
    if (!event) throw new CloudError('EVENT_NOT_FOUND', `event ${eventId} not found`, { eventId });
    const now = this.now();
    const jobs = await enqueueContacts(
      this.queue,
      this.configured,
      eventId,
      this.policy.manual(event, now),
      now,
    );
    this.options.logger.info({ eventId, userId, recipients: jobs.length }, 'manual alert requested');
    await this.recordCreated(eventId, jobs);
    return { deliveries: jobs.map(deliveryOf) };
  }

  /** Jobs created outside ingest (offline, degraded, manual): on the event before anything is sent. */
  private async recordCreated(eventId: string, jobs: AlertJob[]): Promise<void> {
    for (const j of jobs)
      if (j.status !== 'queued' && j.attempts === 0)
        logAttempt(this.options.logger, j, j.status, j.lastError, {}, this.options.onAttempt);
    for (const j of jobs) await this.recorder.record(j);
    if (!jobs.some((j) => j.recordOnEvent))
      await this.options.store.setResponseStatus?.(eventId, 'not-configured');
    this.kick();
  }
}
