import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { UlidFactory } from '../../protocol/event-id.ts';
import type { AlertPolicy, CloudConfig, SensorConfig } from '../config/schema.ts';
import { CloudError } from '../errors.ts';
import type { EventAlerter } from '../ingest/event-ingest.ts';
import type { SensorView } from '../ingest/sensor-registry.ts';
import type {
  AlertSuppression,
  ChannelDelivery,
  ChannelStatus,
  EventStore,
  StoredEvent,
} from '../store/types.ts';
import { AlertQueue } from './alert-queue.ts';
import type { AlertJob, AlertStateStore, JobStatus, Lease, NewJob } from './alert-state.ts';
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
  /** Where decisions, jobs, cooldowns and rate reservations live; default SQLite `<dataDir>/alerts.sqlite`. */
  state?: AlertStateStore;
  /** This bridge's id: the owner of its job leases (mqtt.clientId, else screamwatch-bridge-<hostname>). */
  bridgeId?: string;
  /** Every attempt's outcome (metrics): sent, retrying, failed, not-configured, suppressed. */
  onAttempt?: (channel: string, kind: string, outcome: string) => void;
}

/** lastError prefix of a job the per-contact rate limit suppressed. */
const RATE_LIMITED = 'rate limit';

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
  readonly queue: AlertStateStore;
  private readonly lease: Lease;
  private readonly clock: () => Date;
  private readonly random: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly storeWrites = new Map<string, Promise<void>>();
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;

  constructor(private readonly options: AlertServiceOptions) {
    this.queue = options.state ?? new AlertQueue(join(options.dataDir, 'alerts.sqlite'));
    this.lease = {
      owner: options.bridgeId ?? `screamwatch-bridge-${hostname()}`,
      ms: options.alerts.leaseS * 1000,
    };
    this.clock = options.clock ?? (() => new Date());
    this.random = options.random ?? Math.random;
  }

  private now(): number {
    return this.clock().getTime();
  }

  async start(): Promise<void> {
    await this.queue.open();
    const recovered = await this.queue.recoverInFlight(this.lease.owner, this.now());
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
    await this.queue.close();
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

  /** The jobs for these contacts, each added once (a repeat returns the stored job). */
  private async contactJobs(
    event: StoredEvent,
    contacts: { sms: string[]; email: string[] },
    kind: string,
    message: AlertMessage,
    policy: AlertPolicy | null,
    nextAtMs: number,
    recordOnEvent: boolean,
    /** The decision's time (the cooldown was claimed at it); rate reservations and createdAt use it. */
    now = this.now(),
  ): Promise<AlertJob[]> {
    const jobs: AlertJob[] = [];
    for (const channel of ['sms', 'email'] as const) {
      for (const recipient of contacts[channel]) {
        let status: JobStatus = 'queued';
        let lastError: string | null = null;
        let limitedUntilMs: number | null = null;
        if (!this.options.senders[channel]) {
          status = 'not-configured';
          lastError = `${channel} is not configured (alerts.${channel === 'sms' ? 'twilio' : 'smtp'})`;
        } else if (
          policy &&
          !(await this.queue.reserveRate(
            recipient,
            `${event.eventId}|${channel}|${kind}`,
            policy.ratePerContactPerHour,
            now,
          ))
        ) {
          status = 'suppressed';
          lastError = `${RATE_LIMITED}: ${policy.ratePerContactPerHour} per hour to this contact`;
          // a suppressed job is final and never claimed, so its next-attempt time is free to
          // carry when the contact's hour frees up (shown as "rate-limited until")
          limitedUntilMs = (await this.queue.rateFreeAt(recipient, now)) ?? now + 3_600_000;
        }
        const job: NewJob = {
          eventId: event.eventId,
          channel,
          recipient,
          kind,
          ...message,
          status,
          nextAtMs: limitedUntilMs ?? nextAtMs,
          recordOnEvent,
          lastError,
        };
        jobs.push(await this.queue.addJob(job, now));
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

  /**
   * Decides once per eventId; a redelivered event finds its decision and does nothing. Each step
   * is atomic and safe to repeat (see AlertStateStore), so a bridge that dies half-way and the
   * bridge that gets the redelivery reach the same jobs, and two bridges never both alert.
   */
  async onEvent(event: StoredEvent, _sensor?: SensorConfig): Promise<void> {
    const now = this.now();
    if (await this.queue.decided(event.eventId)) return;
    const chosen = this.policyFor(event.sensorId);
    let decided: { outcome: string; jobs: AlertJob[] };
    let suppressedBy: AlertSuppression | null = null;
    if (!chosen || !this.alertable(event, chosen.policy)) {
      // Not recorded: deciding 'none' again has no effect, and skipping the write keeps
      // ingest of non-alerting events (near-misses) to one store commit.
      decided = { outcome: 'none', jobs: [] };
    } else {
      const { policy, index } = chosen;
      const key = `${event.sensorId}|${index}`;
      const cooldown =
        policy.cooldownS > 0
          ? await this.queue.claimCooldown(
              {
                key,
                sensorId: event.sensorId,
                policyIndex: index,
                firstEventId: event.eventId,
                untilMs: now + policy.cooldownS * 1000,
              },
              now,
            )
          : 'owner';
      if (cooldown === 'held') {
        await this.queue.noteSuppressed(key, event.eventId, event.screamProbability, event.timestamp);
        await this.queue.recordDecision(event.eventId, 'suppressed', now);
        const cd = await this.queue.cooldownOf(key);
        decided = { outcome: 'suppressed', jobs: [] };
        // the dashboard links to the event that did alert, and says until when
        if (cd)
          suppressedBy = {
            reason: 'cooldown',
            eventId: cd.firstEventId,
            until: new Date(cd.untilMs).toISOString(),
          };
      } else {
        const message = screamAlert(event, this.label(event.sensorId), this.options.publicUrl ?? null);
        const jobs = await this.contactJobs(event, policy.contacts, 'alert', message, policy, now, true, now);
        if (policy.escalateAfterS !== null) {
          const esc = escalationAlert(
            event,
            this.label(event.sensorId),
            policy.escalateAfterS,
            this.options.publicUrl ?? null,
          );
          await this.contactJobs(
            event,
            policy.escalateTo,
            'escalation',
            esc,
            null,
            now + policy.escalateAfterS * 1000,
            false,
          );
        }
        const outcome = jobs.length === 0 ? 'not-configured' : 'alert';
        // Last: until it is written, a redelivery of the event repeats the steps above (same result).
        await this.queue.recordDecision(event.eventId, outcome, now);
        decided = { outcome, jobs };
      }
    }
    const { logger } = this.options;
    if (decided.outcome === 'suppressed')
      logger.info({ eventId: event.eventId, sensorId: event.sensorId }, 'alert suppressed by cooldown');
    if (decided.outcome === 'not-configured')
      logger.warn(
        { eventId: event.eventId, sensorId: event.sensorId },
        'alert not sent: no contacts configured for this sensor',
      );
    for (const j of decided.jobs) {
      if (j.status !== 'queued' && j.attempts === 0) this.logAttempt(j, j.status, j.lastError);
    }
    const status = decided.jobs.length ? null : decided.outcome === 'none' ? 'none' : decided.outcome;
    if (decided.jobs.length || status !== event.responseStatus)
      await this.recordOnEvent(event.eventId, decided.jobs, status, suppressedBy);
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
    let jobs: AlertJob[] = [];
    if (chosen?.policy.alertOnSensorOffline) {
      const message = offlineAlert(
        event,
        this.label(sensor.id),
        sensor.lastSeen,
        this.options.publicUrl ?? null,
      );
      jobs = await this.contactJobs(
        event,
        chosen.policy.contacts,
        'offline',
        message,
        chosen.policy,
        now,
        true,
      );
    }
    await this.queue.recordDecision(event.eventId, 'offline', now);
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
    let jobs: AlertJob[] = [];
    if (chosen?.policy.alertOnSensorOffline) {
      const message = degradedAlert(
        event,
        this.label(sensor.id),
        health,
        sensor.healthSince ?? null,
        this.options.publicUrl ?? null,
      );
      jobs = await this.contactJobs(
        event,
        chosen.policy.contacts,
        'degraded',
        message,
        chosen.policy,
        now,
        true,
      );
    }
    await this.queue.recordDecision(event.eventId, 'degraded', now);
    await this.recordOnEvent(event.eventId, jobs, jobs.length ? null : 'not-configured');
    this.kick();
    return event;
  }

  /** An operator's "send alert now" from the dashboard: always sent, no cooldown, no rate limit. */
  async sendManualAlert(eventId: string, userId: string): Promise<{ deliveries: ChannelDelivery[] }> {
    const event = await this.options.store.get(eventId);
    if (!event) throw new CloudError('EVENT_NOT_FOUND', `event ${eventId} not found`, { eventId });
    const chosen = this.policyFor(event.sensorId);
    const now = this.now();
    const message = screamAlert(
      { ...event, alertType: 'manual' },
      this.label(event.sensorId),
      this.options.publicUrl ?? null,
    );
    const contacts = chosen?.policy.contacts ?? { sms: [], email: [] };
    const jobs = await this.contactJobs(event, contacts, `manual-${now}`, message, null, now, true);
    this.options.logger.info({ eventId, userId, recipients: jobs.length }, 'manual alert requested');
    await this.recordOnEvent(eventId, jobs, jobs.length ? null : 'not-configured');
    this.kick();
    return { deliveries: jobs.map((j) => this.delivery(j)) };
  }

  private delivery(job: AlertJob): ChannelDelivery {
    const d: ChannelDelivery = {
      channel: job.channel,
      to: job.recipient,
      status: STATUS_ON_EVENT[job.status],
      attempts: job.attempts,
      lastError: job.lastError,
      providerId: job.providerId,
      updatedAt: new Date(job.updatedAtMs).toISOString(),
    };
    // a queued job that has been tried is waiting for its retry
    if (job.status === 'queued' && job.attempts > 0) d.nextAttemptAt = new Date(job.nextAtMs).toISOString();
    if (job.status === 'suppressed' && job.lastError?.startsWith(RATE_LIMITED))
      d.limitedUntil = new Date(job.nextAtMs).toISOString();
    return d;
  }

  /** Store writes for one event run in order, so a later status never loses to an earlier one. */
  private recordOnEvent(
    eventId: string,
    jobs: AlertJob[],
    status: string | null,
    suppressedBy: AlertSuppression | null = null,
  ): Promise<void> {
    const prev = this.storeWrites.get(eventId) ?? Promise.resolve();
    const next = prev
      .then(async () => {
        const store = this.options.store;
        const recorded = jobs.filter((j) => j.recordOnEvent);
        for (const job of recorded) {
          // The summary is over every recorded job of the event, as the queue knows them now.
          const all = (await this.queue.jobsForEvent(eventId)).filter((j) => j.recordOnEvent);
          const latest = new Map<string, ChannelDelivery>();
          for (const j of all) latest.set(`${j.channel}|${j.recipient}`, this.delivery(j));
          const current = all.find((j) => j.id === job.id) ?? job;
          await store.updateDelivery(eventId, this.delivery(current), summarise([...latest.values()]));
        }
        if (recorded.length === 0 && status)
          await store.setResponseStatus?.(eventId, status, suppressedBy ? { suppressedBy } : {});
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
    for (const job of await this.queue.claimDue(this.now(), limit, this.lease)) {
      const p = this.attempt(job).finally(() => {
        this.inFlight.delete(p);
        this.kick();
      });
      this.inFlight.add(p);
    }
  }

  private async closeCooldowns(): Promise<void> {
    const now = this.now();
    for (;;) {
      // One bridge closes each ended window (claimed for a lease; retried by another if it dies).
      const cd = await this.queue.claimExpiredCooldown(now, this.lease);
      if (!cd) return;
      const first = cd.suppressed === 0 ? null : await this.options.store.get(cd.firstEventId);
      const policy = this.options.alerts.policies[cd.policyIndex];
      if (first && policy) {
        const windowS = policy.cooldownS;
        const message = followUpAlert(
          first,
          this.label(cd.sensorId),
          { count: cd.suppressed, peak: cd.peak, lastAt: cd.lastAt ?? first.timestamp, windowS },
          this.options.publicUrl ?? null,
        );
        const jobs = await this.contactJobs(first, policy.contacts, 'follow-up', message, policy, now, false);
        this.options.logger.info(
          {
            eventId: first.eventId,
            sensorId: cd.sensorId,
            suppressed: cd.suppressed,
            recipients: jobs.length,
          },
          'follow-up summary queued',
        );
      }
      await this.queue.deleteCooldown(cd.key, cd.firstEventId);
    }
  }

  /** Records a claimed job's outcome; null (and logged) when another bridge took the job over. */
  private async finish(
    job: AlertJob,
    status: JobStatus,
    fields: Parameters<AlertStateStore['finish']>[4],
  ): Promise<AlertJob | null> {
    const done = await this.queue.finish(job.id, this.lease.owner, status, this.now(), fields);
    if (!done)
      this.options.logger.error(
        { alert: true, eventId: job.eventId, channel: job.channel, to: job.recipient, status, jobId: job.id },
        'alert job lease lost before its outcome was recorded (the send outlasted alerts.leaseS)',
      );
    return done;
  }

  private async attempt(job: AlertJob): Promise<void> {
    const sender = this.options.senders[job.channel];
    const { retry } = this.options.alerts;
    if (job.kind === 'escalation') {
      const event = await this.options.store.get(job.eventId);
      // anyone responding (acknowledged or resolved) or a review stops the escalation
      const by =
        event?.response && event.response.state !== 'new' ? event.response.userId : event?.review?.userId;
      if (by) {
        const done = await this.finish(job, 'suppressed', {
          lastError: `acknowledged by ${by}`,
        });
        if (done) this.logAttempt(done, 'suppressed', done.lastError);
        return;
      }
    }
    if (!sender) {
      const done = await this.finish(job, 'not-configured', {
        lastError: `${job.channel} is not configured`,
      });
      if (!done) return;
      this.logAttempt(done, 'not-configured', done.lastError);
      await this.recordOnEvent(job.eventId, [done], null);
      return;
    }
    const startedAt = this.now();
    let done: AlertJob | null;
    try {
      const { providerId } = await sender.send(job.recipient, job);
      done = await this.finish(job, 'sent', { providerId, lastError: null });
      if (done) this.logAttempt(done, 'sent', null, { ms: this.now() - startedAt });
    } catch (err) {
      const e =
        err instanceof DeliveryError ? err : new DeliveryError((err as Error).message ?? String(err), true);
      if (e.transient && job.attempts <= retry.maxRetries && this.running) {
        const delay = this.retryDelayMs(job.attempts);
        done = await this.finish(job, 'queued', { lastError: e.message, nextAtMs: this.now() + delay });
        if (done) this.logAttempt(done, 'retrying', e.message, { retryInMs: delay });
      } else if (e.transient && job.attempts <= retry.maxRetries) {
        // Stopping: put it back as it was, to be retried after the restart.
        done = await this.finish(job, 'queued', { lastError: e.message, nextAtMs: this.now() });
        if (done) this.logAttempt(done, 'retrying', e.message);
      } else {
        done = await this.finish(job, 'failed', { lastError: e.message });
        if (done) this.logAttempt(done, 'failed', e.message, { permanent: !e.transient });
      }
    }
    if (done) await this.recordOnEvent(job.eventId, [done], null);
  }
}
