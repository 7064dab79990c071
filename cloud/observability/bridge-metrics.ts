import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { observedCounter, observedGauge } from '../../runtime/metrics.ts';
import type { AlertStateStore } from '../alerts/alert-state.ts';
import type { MessageSource } from '../broker/message-source.ts';
import type { IngestStats } from '../ingest/event-ingest.ts';
import type { SensorView } from '../ingest/sensor-registry.ts';
import type { AnalysisStats } from '../web/analysis-pool.ts';

/** What the metrics read at scrape time (live objects of the running bridge; any may be absent). */
export interface BridgeMetricSources {
  ingest(): IngestStats | null;
  alertQueue(): AlertStateStore | null;
  broker(): MessageSource | null;
  sensors(): SensorView[];
  /** The dashboard's upload analysis pool (null without the dashboard). */
  analysis?(): AnalysisStats | null;
}

/**
 * The bridge's Prometheus metrics (prom-client). Counters the bridge already keeps (ingest
 * stats) and state it already has (queue, registry, broker) are read at scrape time, so the
 * hot path gains no work; alert attempts are counted as they happen.
 */
export class BridgeMetrics {
  readonly registry = new Registry();
  private readonly attempts: Counter<'channel' | 'kind' | 'outcome'>;

  constructor(sources: BridgeMetricSources) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'screamwatch_bridge_' });
    /** A number picked from a source read at scrape time; 0 while the source is absent. */
    const reader =
      <S>(source: () => S | null | undefined) =>
      (pick: (s: S) => number) =>
      () => {
        const s = source();
        return s ? pick(s) : 0;
      };
    const stat = reader(() => sources.ingest());
    const pool = reader(() => sources.analysis?.());
    const counterFrom = (name: string, help: string, read: () => number) =>
      observedCounter(r, name, help, read);
    const gaugeFrom = (name: string, help: string, read: () => number) => observedGauge(r, name, help, read);
    counterFrom(
      'screamwatch_messages_received_total',
      'MQTT messages received from sensors',
      stat((s) => s.received),
    );
    counterFrom(
      'screamwatch_events_stored_total',
      'Events stored (new eventIds)',
      stat((s) => s.stored),
    );
    counterFrom(
      'screamwatch_events_duplicate_total',
      'Events received again (redelivery; de-duplicated by eventId)',
      stat((s) => s.duplicates),
    );
    counterFrom(
      'screamwatch_heartbeats_received_total',
      'Heartbeats received',
      stat((s) => s.heartbeats),
    );
    counterFrom(
      'screamwatch_status_received_total',
      'Status messages received',
      stat((s) => s.status),
    );
    new Counter({
      name: 'screamwatch_messages_rejected_total',
      help: 'Messages rejected, by error code (MQTT_PAYLOAD_INVALID, MQTT_TOPIC_INVALID, ...)',
      labelNames: ['code'],
      registers: [r],
      collect() {
        this.reset();
        for (const [code, n] of Object.entries(sources.ingest()?.rejectedByCode ?? {})) this.inc({ code }, n);
      },
    });
    this.attempts = new Counter({
      name: 'screamwatch_alert_attempts_total',
      help: 'Alert delivery attempts by channel, kind and outcome (sent, retrying, failed, not-configured, suppressed)',
      labelNames: ['channel', 'kind', 'outcome'],
      registers: [r],
    });
    new Gauge({
      name: 'screamwatch_alert_jobs',
      help: 'Alert jobs in the durable queue by channel and status (queued + in-flight = queue depth)',
      labelNames: ['channel', 'status'],
      registers: [r],
      async collect() {
        this.reset();
        for (const row of (await sources.alertQueue()?.jobCounts()) ?? [])
          this.set({ channel: row.channel, status: row.status }, row.n);
      },
    });
    new Gauge({
      name: 'screamwatch_alert_queue_depth',
      help: 'Alert jobs waiting to be sent or being sent',
      registers: [r],
      async collect() {
        let n = 0;
        for (const row of (await sources.alertQueue()?.jobCounts()) ?? [])
          if (row.status === 'queued' || row.status === 'in-flight') n += row.n;
        this.set(n);
      },
    });
    gaugeFrom(
      'screamwatch_analysis_slots_busy',
      'Dashboard uploads being read or analysed now (at capacity, new uploads get 429)',
      pool((s) => s.busy),
    );
    gaugeFrom(
      'screamwatch_analysis_slots',
      'Dashboard uploads that can be read or analysed at once',
      pool((s) => s.capacity),
    );
    counterFrom(
      'screamwatch_analysis_refused_total',
      'Dashboard uploads refused with 429 because every analysis slot was held',
      pool((s) => s.refused),
    );
    counterFrom(
      'screamwatch_analysis_done_total',
      'Dashboard uploads analysed',
      pool((s) => s.analysed),
    );
    counterFrom(
      'screamwatch_analysis_failed_total',
      'Dashboard uploads whose analysis failed (corrupt, too long, worker error)',
      pool((s) => s.failed),
    );
    gaugeFrom(
      'screamwatch_mqtt_connections',
      'MQTT clients connected to the embedded broker (external broker: 1 when the bridge is connected)',
      () => sources.broker()?.connectionCount?.() ?? 0,
    );
    new Gauge({
      name: 'screamwatch_sensors',
      help: 'Known sensors by state; degraded = online but input health not ok (also counted in online)',
      labelNames: ['state'],
      registers: [r],
      collect() {
        const counts = { online: 0, offline: 0, unknown: 0, degraded: 0 };
        for (const s of sources.sensors()) {
          counts[s.status]++;
          if (s.degraded) counts.degraded++;
        }
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
  }

  alertAttempt(channel: string, kind: string, outcome: string): void {
    this.attempts.inc({ channel, kind, outcome });
  }
}
