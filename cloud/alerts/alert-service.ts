import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { UlidFactory } from '../../protocol/event-id.ts';
import type { AlertPolicy, CloudConfig, SensorConfig } from '../config/schema.ts';
import { CloudError } from '../errors.ts';
import type { EventAlerter } from '../ingest/event-ingest.ts';
import type { SensorView } from '../ingest/sensor-registry.ts';
import type { ChannelDelivery, ChannelStatus, EventStore, StoredEvent } from '../store/types.ts';
import { type AlertJob, AlertQueue, type JobStatus, type NewJob } from './alert-queue.ts';
import {
  type AlertMessage,
  degradedAlert,
  escalationAlert,
  followUpAlert,
  offlineAlert,
  type SensorLabel,
  screamAlert,
} from './alert-text.ts';
import { type Channel, type ChannelSender, DeliveryError } from './senders.ts';

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
  /** Every attempt's outcome (metrics): sent, retrying, failed, not-configured, suppressed. */
  onAttempt?: (channel: string, kind: string, outcome: string) => void;
}

const STATUS_ON_EVENT: Record<JobStatus, ChannelStatus> = {
  queued: 'pending',
  'in-flight': 'pending',
  sent: 'sent',
  failed: 'failed',
  'not-configured': 'not-configured',
  suppressed: 'suppressed',
};

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
  const digest = createHash('sha256').update(`${sensor.id}|offline|${basis}`).digest();
  let i = 0;
  return new UlidFactory(() => digest[i++ % digest.length]! / 256).next(Date.parse(basis));
}

/**
 * The id of a "sensor degraded" event: from the sensor, its health state and since when (all
 * sensor-side, in the retained status every bridge receives), so a bridge restart or a second
 * bridge finds the episode already stored and does not alert it again.
 */
export function degradedEventId(sensor: Pick<SensorView, 'id' | 'health' | 'healthSince'>): string {
  const since = sensor.healthSince ?? new Date(0).toISOString();
  const digest = createHash('sha256').update(`${sensor.id}|degraded|${sensor.health}|${since}`).digest();
  let i = 0;
  const ms = Date.parse(since);
  return new UlidFactory(() => digest[i++ % digest.length]! / 256).next(Number.isFinite(ms) ? ms : 0);
}

/** The event's responseStatus from its recorded deliveries. */
export function summarise(deliveries: ChannelDelivery[]): string {
  if (deliveries.length === 0) return 'none';
  const s = new Set(deliveries.map((d) => d.status));
  if (s.has('pending')) return 'pending';
  const sent = deliveries.filter((d) => d.status === 'sent' || d.status === 'delivered').length;
  if (sent === deliveries.length) return 'alerted';
  if (sent > 0) return 'partial';
  if (s.has('failed')) return 'failed';
  if (s.has('not-configured')) return 'not-configured';
  return 'suppressed';
}

/**
 * Turns stored events into SMS and email alerts through a durable queue: one decision per
 * eventId, a cooldown per sensor and policy (later detections become one follow-up summary),
 * a rate limit per contact, retries with backoff and jitter on transient failures only, and
 * the per-channel outcome recorded on the event.
 */
export class AlertService implements EventAlerter {
  readonly queue: AlertQueue;
  private readonly clock: () => Date;
  private readonly random: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly storeWrites = new Map<string, Promise<void>>();
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;

  constructor(private readonly options: AlertServiceOptions) {
    this.queue = new AlertQueue(join(options.dataDir, 'alerts.sqlite'));
    this.clock = options.clock ?? (() => new Date());
    this.random = options.random ?? Math.random;
  }

  private now(): number {
    return this.clock().getTime();
  }

  async start(): Promise<void> {
    this.queue.open();
    const recovered = this.queue.recoverInFlight(this.now());
    if (recovered) this.options.logger.warn({ recovered }, 'alerts interrupted by a crash are sent again');
    for (const channel of ['sms', 'email'] as const) {
      if (!this.options.senders[channel]) {
        this.options.logger.warn(
          { channel },
          `alerts: ${channel} is not configured; ${channel} alerts are recorded as not-configured`,
        );
      }
    }
    this.running = true;
    this.timer = setInterval(() => this.kick(), this.options.pollMs ?? 500);
    this.kick();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // Let sends under way finish (each is bounded by alerts.timeoutMs), so a clean restart
    // neither loses nor repeats them.
    await this.pumping;
    await Promise.allSettled([...this.inFlight]);
    await Promise.allSettled([...this.storeWrites.values()]);
    for (const s of Object.values(this.options.senders)) s?.close();
    this.queue.close();
  }

  private label(sensorId: string): SensorLabel {
    const c = this.options.sensorConfig(sensorId);
    return { id: sensorId, name: c?.name ?? null, room: c?.room ?? null };
  }

  private policyFor(sensorId: string): { policy: AlertPolicy; index: number } | null {
    const policies = this.options.alerts.policies;
    const group = this.options.sensorConfig(sensorId)?.group ?? 'default';
    let index = policies.findIndex((p) => p.sensorIds.includes(sensorId));
    if (index === -1) index = policies.findIndex((p) => p.group === group);
    if (index === -1) index = policies.findIndex((p) => p.group === 'default');
    return index === -1 ? null : { policy: policies[index]!, index };
  }

  private contactJobs(
    event: StoredEvent,
    contacts: { sms: string[]; email: string[] },
    kind: string,
    message: AlertMessage,
    policy: AlertPolicy | null,
    nextAtMs: number,
    recordOnEvent: boolean,
  ): NewJob[] {
    const jobs: NewJob[] = [];
    const now = this.now();
    for (const channel of ['sms', 'email'] as const) {
      for (const recipient of contacts[channel]) {
        let status: JobStatus = 'queued';
        let lastError: string | null = null;
        if (!this.options.senders[channel]) {
          status = 'not-configured';
          lastError = `${channel} is not configured (alerts.${channel === 'sms' ? 'twilio' : 'smtp'})`;
        } else if (
          policy &&
          this.queue.sentOrPendingTo(recipient, now - 3_600_000) >= policy.ratePerContactPerHour
        ) {
          status = 'suppressed';
          lastError = `rate limit: ${policy.ratePerContactPerHour} per hour to this contact`;
        }
        jobs.push({
          eventId: event.eventId,
          channel,
          recipient,
          kind,
          ...message,
          status,
          nextAtMs,
          recordOnEvent,
          lastError,
        });
      }
    }
    return jobs;
  }

  private alertable(event: StoredEvent, policy: AlertPolicy | undefined): boolean {
    // Uploads are review work and are never alerted automatically (cloud/web/routes/analyse.ts).
    const kind = event.alertType === 'scream' || event.alertType === 'manual';
    return !!policy && kind && event.isScream && event.screamProbability >= policy.threshold;
  }

  initialResponseStatus(event: StoredEvent): string {
    return this.alertable(event, this.policyFor(event.sensorId)?.policy) ? 'pending' : 'none';
  }

  /** Decides once per eventId; a redelivered event finds its decision and does nothing. */
  async onEvent(event: StoredEvent, _sensor?: SensorConfig): Promise<void> {
    const now = this.now();
    const decided = this.queue.transaction(() => {
      if (this.queue.decided(event.eventId)) return null;
      const chosen = this.policyFor(event.sensorId);
      if (!chosen || !this.alertable(event, chosen.policy)) {
        // Not recorded: deciding 'none' again has no effect, and skipping the write keeps
        // ingest of non-alerting events (near-misses) to one SQLite commit.
        return { outcome: 'none', jobs: [] as AlertJob[] };
      }
      const { policy, index } = chosen;
      const key = `${event.sensorId}|${index}`;
      const cd = this.queue.cooldown(key);
      if (cd && cd.untilMs > now && cd.firstEventId !== event.eventId) {
        this.queue.noteSuppressed(key, event.screamProbability, event.timestamp);
        this.queue.recordDecision(event.eventId, 'suppressed', now);
        return { outcome: 'suppressed', jobs: [] as AlertJob[] };
      }
      if (policy.cooldownS > 0) {
        this.queue.startCooldown({
          key,
          sensorId: event.sensorId,
          policyIndex: index,
          firstEventId: event.eventId,
          untilMs: now + policy.cooldownS * 1000,
        });
      }
      const message = screamAlert(event, this.label(event.sensorId), this.options.publicUrl ?? null);
      const jobs = this.contactJobs(event, policy.contacts, 'alert', message, policy, now, true).map((j) =>
        this.queue.addJob(j, now),
      );
      if (policy.escalateAfterS !== null) {
        const esc = escalationAlert(
          event,
          this.label(event.sensorId),
          policy.escalateAfterS,
          this.options.publicUrl ?? null,
        );
        for (const j of this.contactJobs(
          event,
          policy.escalateTo,
          'escalation',
          esc,
          null,
          now + policy.escalateAfterS * 1000,
          false,
        )) {
          this.queue.addJob(j, now);
        }
      }
      const outcome = jobs.length === 0 ? 'not-configured' : 'alert';
      this.queue.recordDecision(event.eventId, outcome, now);
      return { outcome, jobs };
    });
    if (!decided) return;
    const { logger } = this.options;
    if (decided.outcome === 'suppressed')
      logger.info({ eventId: event.eventId, sensorId: event.sensorId }, 'alert suppressed by cooldown');
    if (decided.outcome === 'not-configured')
      logger.warn(
        { eventId: event.eventId, sensorId: event.sensorId },
        'alert not sent: no contacts configured for this sensor',
      );
    for (const j of decided.jobs) {
      if (j.status !== 'queued') this.logAttempt(j, j.status, j.lastError);
    }
    const status = decided.jobs.length ? null : decided.outcome === 'none' ? 'none' : decided.outcome;
    if (decided.jobs.length || status !== event.responseStatus)
      await this.recordOnEvent(event.eventId, decided.jobs, status);
    this.kick();
  }

  /** A sensor went silent: stored as a 'sensor-offline' event and alerted (no cooldown). */
  async onSensorOffline(sensor: SensorView): Promise<StoredEvent | null> {
    const chosen = this.policyFor(sensor.id);
    const now = this.now();
    const event: StoredEvent = {
      eventId: offlineEventId(sensor, now),
      sensorId: sensor.id,
      timestamp: new Date(now).toISOString(),
      receivedAt: new Date(now).toISOString(),
      startedAt: sensor.lastSeen,
      audioSource: 'bridge:registry',
      screamProbability: 0,
      isScream: false,
      thresholdValue: chosen?.policy.threshold ?? 0,
      location: sensor.location ?? {
        latitude: null,
        longitude: null,
        accuracy: null,
        address: null,
        source: 'unknown',
        room: sensor.room,
      },
      alertType: 'sensor-offline',
      responseStatus: 'pending',
      deliveries: [],
      notes: `no message for ${Math.round((now - (sensor.lastSeen ? Date.parse(sensor.lastSeen) : now)) / 1000)} s (last seen ${sensor.lastSeen ?? 'never'})`,
      error: null,
    };
    if (!(await this.options.store.insertIfNew(event))) {
      // Another bridge sharing this store (MongoDB) raised the same silence first.
      this.options.logger.info(
        { sensorId: sensor.id, eventId: event.eventId },
        'sensor offline already raised by another bridge',
      );
      return null;
    }
    const jobs = this.queue.transaction(() => {
      this.queue.recordDecision(event.eventId, 'offline', now);
      if (!chosen?.policy.alertOnSensorOffline) return [];
      const message = offlineAlert(
        event,
        this.label(sensor.id),
        sensor.lastSeen,
        this.options.publicUrl ?? null,
      );
      return this.contactJobs(
        event,
        chosen.policy.contacts,
        'offline',
        message,
        chosen.policy,
        now,
        true,
      ).map((j) => this.queue.addJob(j, now));
    });
    await this.recordOnEvent(event.eventId, jobs, jobs.length ? null : 'not-configured');
    this.kick();
    return event;
  }

  /**
   * A sensor is online but its input is not ok (silent, stuck, clipping, no device): stored as a
   * 'sensor-degraded' event and alerted like 'sensor-offline' (same policy, contacts, rate
   * limit and `alertOnSensorOffline` switch), once per episode.
   */
  async onSensorDegraded(sensor: SensorView): Promise<StoredEvent | null> {
    const chosen = this.policyFor(sensor.id);
    const now = this.now();
    const health = sensor.health ?? 'unknown';
    const event: StoredEvent = {
      eventId: degradedEventId(sensor),
      sensorId: sensor.id,
      timestamp: new Date(now).toISOString(),
      receivedAt: new Date(now).toISOString(),
      startedAt: sensor.healthSince ?? null,
      audioSource: 'bridge:registry',
      screamProbability: 0,
      isScream: false,
      thresholdValue: chosen?.policy.threshold ?? 0,
      location: sensor.location ?? {
        latitude: null,
        longitude: null,
        accuracy: null,
        address: null,
        source: 'unknown',
        room: sensor.room,
      },
      alertType: 'sensor-degraded',
      responseStatus: 'pending',
      deliveries: [],
      notes: `input health ${health} since ${sensor.healthSince ?? 'unknown'}: the sensor is online but cannot hear`,
      error: null,
    };
    if (!(await this.options.store.insertIfNew(event))) {
      this.options.logger.info(
        { sensorId: sensor.id, eventId: event.eventId, health },
        'sensor degradation already raised (bridge restart or another bridge)',
      );
      return null;
    }
    const jobs = this.queue.transaction(() => {
      this.queue.recordDecision(event.eventId, 'degraded', now);
      if (!chosen?.policy.alertOnSensorOffline) return [];
      const message = degradedAlert(
        event,
        this.label(sensor.id),
        health,
        sensor.healthSince ?? null,
        this.options.publicUrl ?? null,
      );
      return this.contactJobs(
        event,
        chosen.policy.contacts,
        'degraded',
        message,
        chosen.policy,
        now,
        true,
      ).map((j) => this.queue.addJob(j, now));
    });
    await this.recordOnEvent(event.eventId, jobs, jobs.length ? null : 'not-configured');
    this.kick();
    return event;
  }

  /** An operator's "send alert now" from the dashboard: always sent, no cooldown, no rate limit. */
  async sendManualAlert(eventId: string, userId: string): Promise<{ deliveries: ChannelDelivery[] }> {
    const event = await this.options.store.get(eventId);
    if (!event) throw new CloudError('CLOUD_USAGE', `event ${eventId} not found`, { eventId });
    const chosen = this.policyFor(event.sensorId);
    const now = this.now();
    const message = screamAlert(
      { ...event, alertType: 'manual' },
      this.label(event.sensorId),
      this.options.publicUrl ?? null,
    );
    const contacts = chosen?.policy.contacts ?? { sms: [], email: [] };
    const jobs = this.queue.transaction(() =>
      this.contactJobs(event, contacts, `manual-${now}`, message, null, now, true).map((j) =>
        this.queue.addJob(j, now),
      ),
    );
    this.options.logger.info({ eventId, userId, recipients: jobs.length }, 'manual alert requested');
    await this.recordOnEvent(eventId, jobs, jobs.length ? null : 'not-configured');
    this.kick();
    return { deliveries: jobs.map((j) => this.delivery(j)) };
  }

  private delivery(job: AlertJob): ChannelDelivery {
    return {
      channel: job.channel,
      to: job.recipient,
      status: STATUS_ON_EVENT[job.status],
      attempts: job.attempts,
      lastError: job.lastError,
      providerId: job.providerId,
      updatedAt: new Date(job.updatedAtMs).toISOString(),
    };
  }

  /** Store writes for one event run in order, so a later status never loses to an earlier one. */
  private recordOnEvent(eventId: string, jobs: AlertJob[], status: string | null): Promise<void> {
    const prev = this.storeWrites.get(eventId) ?? Promise.resolve();
    const next = prev
      .then(async () => {
        const store = this.options.store;
        const recorded = jobs.filter((j) => j.recordOnEvent);
        for (const job of recorded) {
          // The summary is over every recorded job of the event, as the queue knows them now.
          const all = this.queue.jobsForEvent(eventId).filter((j) => j.recordOnEvent);
          const latest = new Map<string, ChannelDelivery>();
          for (const j of all) latest.set(`${j.channel}|${j.recipient}`, this.delivery(j));
          await store.updateDelivery(
            eventId,
            this.delivery(this.queue.job(job.id) ?? job),
            summarise([...latest.values()]),
          );
        }
        if (recorded.length === 0 && status) await store.setResponseStatus?.(eventId, status);
      })
      .catch((err: unknown) =>
        this.options.logger.error({ err, eventId }, 'cannot record alert status on the event'),
      );
    this.storeWrites.set(eventId, next);
    void next.then(() => {
      if (this.storeWrites.get(eventId) === next) this.storeWrites.delete(eventId);
    });
    return next;
  }

  private logAttempt(
    job: AlertJob,
    status: string,
    error: string | null,
    extra: Record<string, unknown> = {},
  ): void {
    this.options.logger.info(
      {
        alert: true,
        eventId: job.eventId,
        kind: job.kind,
        channel: job.channel,
        to: job.recipient,
        attempt: job.attempts,
        status,
        error,
        providerId: job.providerId,
        ...extra,
      },
      'alert attempt',
    );
    this.options.onAttempt?.(job.channel, job.kind.startsWith('manual-') ? 'manual' : job.kind, status);
  }

  /** Backoff before retry n (1-based): initial * multiplier^(n-1), capped, with +-20% jitter. */
  retryDelayMs(attempt: number): number {
    const r = this.options.alerts.retry;
    const base = Math.min(r.maxDelayMs, r.initialDelayMs * r.multiplier ** (attempt - 1));
    return Math.round(base * (0.8 + 0.4 * this.random()));
  }

  /** Looks for due work now (also called by the poll timer). */
  kick(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = this.pump()
      .catch((err: unknown) => this.options.logger.error({ err }, 'alert queue pump failed'))
      .finally(() => {
        this.pumping = null;
        if (this.pumpAgain && this.running) {
          this.pumpAgain = false;
          this.kick();
        }
      });
  }

  private async pump(): Promise<void> {
    await this.closeCooldowns();
    const limit = (this.options.concurrency ?? 8) - this.inFlight.size;
    if (limit <= 0 || !this.running) return;
    for (const job of this.queue.claimDue(this.now(), limit)) {
      const p = this.attempt(job).finally(() => {
        this.inFlight.delete(p);
        this.kick();
      });
      this.inFlight.add(p);
    }
  }

  private async closeCooldowns(): Promise<void> {
    const now = this.now();
    for (const cd of this.queue.expiredCooldowns(now)) {
      this.queue.deleteCooldown(cd.key);
      if (cd.suppressed === 0) continue;
      const first = await this.options.store.get(cd.firstEventId);
      const policy = this.options.alerts.policies[cd.policyIndex];
      if (!first || !policy) continue;
      const windowS = policy.cooldownS;
      const message = followUpAlert(
        first,
        this.label(cd.sensorId),
        { count: cd.suppressed, peak: cd.peak, lastAt: cd.lastAt ?? first.timestamp, windowS },
        this.options.publicUrl ?? null,
      );
      const jobs = this.queue.transaction(() =>
        this.contactJobs(first, policy.contacts, 'follow-up', message, policy, now, false).map((j) =>
          this.queue.addJob(j, now),
        ),
      );
      this.options.logger.info(
        { eventId: first.eventId, sensorId: cd.sensorId, suppressed: cd.suppressed, recipients: jobs.length },
        'follow-up summary queued',
      );
    }
  }

  private async attempt(job: AlertJob): Promise<void> {
    const sender = this.options.senders[job.channel];
    const { retry } = this.options.alerts;
    if (job.kind === 'escalation') {
      const event = await this.options.store.get(job.eventId);
      if (event?.review) {
        const done = this.queue.finish(job.id, 'suppressed', this.now(), {
          lastError: `acknowledged by ${event.review.userId}`,
        });
        this.logAttempt(done, 'suppressed', done.lastError);
        return;
      }
    }
    if (!sender) {
      const done = this.queue.finish(job.id, 'not-configured', this.now(), {
        lastError: `${job.channel} is not configured`,
      });
      this.logAttempt(done, 'not-configured', done.lastError);
      await this.recordOnEvent(job.eventId, [done], null);
      return;
    }
    const startedAt = this.now();
    let done: AlertJob;
    try {
      const { providerId } = await sender.send(job.recipient, job);
      done = this.queue.finish(job.id, 'sent', this.now(), { providerId, lastError: null });
      this.logAttempt(done, 'sent', null, { ms: this.now() - startedAt });
    } catch (err) {
      const e =
        err instanceof DeliveryError ? err : new DeliveryError((err as Error).message ?? String(err), true);
      if (e.transient && job.attempts <= retry.maxRetries && this.running) {
        const delay = this.retryDelayMs(job.attempts);
        done = this.queue.finish(job.id, 'queued', this.now(), {
          lastError: e.message,
          nextAtMs: this.now() + delay,
        });
        this.logAttempt(done, 'retrying', e.message, { retryInMs: delay });
      } else if (e.transient && job.attempts <= retry.maxRetries) {
        // Stopping: put it back as it was, to be retried after the restart.
        done = this.queue.finish(job.id, 'queued', this.now(), {
          lastError: e.message,
          nextAtMs: this.now(),
        });
        this.logAttempt(done, 'retrying', e.message);
      } else {
        done = this.queue.finish(job.id, 'failed', this.now(), { lastError: e.message });
        this.logAttempt(done, 'failed', e.message, { permanent: !e.transient });
      }
    }
    await this.recordOnEvent(job.eventId, [done], null);
  }
}
