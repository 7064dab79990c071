import type { AlertPolicy as PolicyConfig, SensorConfig } from '../config/schema.ts';
import type { SensorView } from '../ingest/sensor-registry.ts';
import type { ChannelDelivery, ChannelStatus, StoredEvent } from '../store/types.ts';
import type { AlertJob, JobKind, JobStatus } from './alert-state.ts';
import {
  type AlertMessage,
  degradedAlert,
  escalationAlert,
  followUpAlert,
  offlineAlert,
  type SensorLabel,
  screamAlert,
} from './alert-text.ts';
import type { Channel } from './senders.ts';

export interface AlertPolicyOptions {
  policies: readonly PolicyConfig[];
  /** Sensor config by id (the registry's), for the policy group and the message's names. */
  sensorConfig: (id: string) => SensorConfig | undefined;
  publicUrl: string | null;
}

/** The policy that applies to a sensor, and its index (cooldown keys and follow-ups use it). */
export interface ChosenPolicy {
  policy: PolicyConfig;
  index: number;
}

/** One message to a set of contacts: what the alert state turns into one job per contact. */
export interface ContactPlan {
  contacts: { sms: string[]; email: string[] };
  kind: JobKind;
  message: AlertMessage;
  /** ratePerContactPerHour to reserve against, or null (escalations, manual alerts). */
  ratePerHour: number | null;
  nextAtMs: number;
  /** Whether the jobs are mirrored on the event's deliveries[]. */
  recordOnEvent: boolean;
}

/** What to do about an event the policy alerts on (the cooldown is checked by the alert state). */
export interface AlertPlan {
  chosen: ChosenPolicy;
  cooldown: { key: string; untilMs: number } | null;
  alert: ContactPlan;
  escalation: ContactPlan | null;
}

/** lastError prefix of a job the per-contact rate limit suppressed. */
export const RATE_LIMITED = 'rate limit';

const STATUS_ON_EVENT: Record<JobStatus, ChannelStatus> = {
  queued: 'pending',
  'in-flight': 'pending',
  sent: 'sent',
  failed: 'failed',
  'not-configured': 'not-configured',
  suppressed: 'suppressed',
};

/** How a job shows on the event's deliveries[]. */
export function deliveryOf(job: AlertJob): ChannelDelivery {
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

/** The event's deliveries[]: the latest recorded job per channel and recipient. */
export function deliveriesOf(jobs: readonly AlertJob[]): ChannelDelivery[] {
  const latest = new Map<string, ChannelDelivery>();
  for (const j of jobs) if (j.recordOnEvent) latest.set(`${j.channel}|${j.recipient}`, deliveryOf(j));
  return [...latest.values()];
}

/**
 * Who is alerted about what, and when; pure (config and an event in, a plan out). Which policy
 * applies to a sensor (its own, else its group's, else the default group's); whether an event
 * alerts (a scream or a manual alert at or over the policy's threshold: uploads are review
 * work, near-misses are not alerts); the messages and their contacts; the cooldown window an
 * alert opens; escalation after `escalateAfterS`. The alert state (AlertStateStore) applies the
 * stateful parts (cooldown owner, per-contact rate reservations) atomically.
 */
export class AlertPolicy {
  constructor(private readonly options: AlertPolicyOptions) {}

  label(sensorId: string): SensorLabel {
    const c = this.options.sensorConfig(sensorId);
    return { id: sensorId, name: c?.name ?? null, room: c?.room ?? null };
  }

  choose(sensorId: string): ChosenPolicy | null {
    const policies = this.options.policies;
    const group = this.options.sensorConfig(sensorId)?.group ?? 'default';
    let index = policies.findIndex((p) => p.sensorIds.includes(sensorId));
    if (index === -1) index = policies.findIndex((p) => p.group === group);
    if (index === -1) index = policies.findIndex((p) => p.group === 'default');
    return index === -1 ? null : { policy: policies[index]!, index };
  }

  /** Null when the event alerts nobody. */
  plan(event: StoredEvent, nowMs: number): AlertPlan | null {
    const chosen = this.choose(event.sensorId);
    if (!chosen) return null;
    const { policy, index } = chosen;
    const kind = event.alertType === 'scream' || event.alertType === 'manual';
    if (!kind || !event.isScream || event.screamProbability < policy.threshold) return null;
    const label = this.label(event.sensorId);
    return {
      chosen,
      cooldown:
        policy.cooldownS > 0
          ? { key: cooldownKey(event.sensorId, index), untilMs: nowMs + policy.cooldownS * 1000 }
          : null,
      alert: {
        contacts: policy.contacts,
        kind: 'alert',
        message: screamAlert(event, label, this.options.publicUrl),
        ratePerHour: policy.ratePerContactPerHour,
        nextAtMs: nowMs,
        recordOnEvent: true,
      },
      escalation:
        policy.escalateAfterS === null
          ? null
          : {
              contacts: policy.escalateTo,
              kind: 'escalation',
              message: escalationAlert(event, label, policy.escalateAfterS, this.options.publicUrl),
              ratePerHour: null,
              nextAtMs: nowMs + policy.escalateAfterS * 1000,
              recordOnEvent: false,
            },
    };
  }

  /** A silent sensor: alerted when its policy has alertOnSensorOffline (no cooldown). */
  offline(event: StoredEvent, sensor: SensorView, nowMs: number): ContactPlan | null {
    const chosen = this.choose(sensor.id);
    if (!chosen?.policy.alertOnSensorOffline) return null;
    return {
      contacts: chosen.policy.contacts,
      kind: 'offline',
      message: offlineAlert(event, this.label(sensor.id), sensor.lastSeen, this.options.publicUrl),
      ratePerHour: chosen.policy.ratePerContactPerHour,
      nextAtMs: nowMs,
      recordOnEvent: true,
    };
  }

  /** A sensor that cannot hear: alerted like a silent one (same switch, contacts, rate limit). */
  degraded(event: StoredEvent, sensor: SensorView, nowMs: number): ContactPlan | null {
    const chosen = this.choose(sensor.id);
    if (!chosen?.policy.alertOnSensorOffline) return null;
    return {
      contacts: chosen.policy.contacts,
      kind: 'degraded',
      message: degradedAlert(
        event,
        this.label(sensor.id),
        sensor.health ?? 'unknown',
        sensor.healthSince ?? null,
        this.options.publicUrl,
      ),
      ratePerHour: chosen.policy.ratePerContactPerHour,
      nextAtMs: nowMs,
      recordOnEvent: true,
    };
  }

  /** The follow-up summary when a cooldown that held back `count` events ends. */
  followUp(
    first: StoredEvent,
    cd: { sensorId: string; policyIndex: number; suppressed: number; peak: number; lastAt: string | null },
    nowMs: number,
  ): ContactPlan | null {
    const policy = this.options.policies[cd.policyIndex];
    if (!policy || cd.suppressed === 0) return null;
    return {
      contacts: policy.contacts,
      kind: 'follow-up',
      message: followUpAlert(
        first,
        this.label(cd.sensorId),
        {
          count: cd.suppressed,
          peak: cd.peak,
          lastAt: cd.lastAt ?? first.timestamp,
          windowS: policy.cooldownS,
        },
        this.options.publicUrl,
      ),
      ratePerHour: policy.ratePerContactPerHour,
      nextAtMs: nowMs,
      recordOnEvent: false,
    };
  }

  /** An operator's "send alert now": always sent, no cooldown, no rate limit, one kind per request. */
  manual(event: StoredEvent, nowMs: number): ContactPlan {
    return {
      contacts: this.choose(event.sensorId)?.policy.contacts ?? { sms: [], email: [] },
      kind: `manual-${nowMs}`,
      message: screamAlert(
        { ...event, alertType: 'manual' },
        this.label(event.sensorId),
        this.options.publicUrl,
      ),
      ratePerHour: null,
      nextAtMs: nowMs,
      recordOnEvent: true,
    };
  }
}

export function cooldownKey(sensorId: string, policyIndex: number): string {
  return `${sensorId}|${policyIndex}`;
}

/** The channels of a plan's contacts, for job creation in a fixed order (SMS first). */
export const CHANNELS: readonly Channel[] = ['sms', 'email'];
