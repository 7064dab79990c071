import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { INPUT_HEALTH_STATES, type InputHealth } from '../../protocol/messages.ts';
import { observedCounter, observedGauge } from '../../runtime/metrics.ts';

/** Live state of the running daemon, read at scrape time (anything not started yet is null). */
export interface DaemonMetricSources {
  windowsScored(): number;
  eventsConfirmed(): number;
  reportsSent(): number;
  outboxDepth(): number;
  outboxWritable(): boolean;
  droppedFrames(): number;
  inputLevelDbfs(): number | null;
  health(): InputHealth;
  mqttConnected(): boolean;
}

/**
 * The daemon's Prometheus metrics (prom-client), on the localhost-only metrics port. Counts
 * the daemon already keeps are read at scrape time; the probability histogram and the
 * publish latency are observed as they happen (one bucket increment per window / PUBACK).
 */
export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly probability: Histogram;
  private readonly publishLatency: Histogram<'kind'>;

  constructor(s: DaemonMetricSources) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'screamwatch_daemon_' });
    const counter = (name: string, help: string, read: () => number) => observedCounter(r, name, help, read);
    const gauge = (name: string, help: string, read: () => number | null) =>
      observedGauge(r, name, help, read);
    counter(
      'screamwatch_daemon_windows_analysed_total',
      'Analysis windows scored (1.024 s, every 0.512 s)',
      () => s.windowsScored(),
    );
    counter('screamwatch_daemon_events_confirmed_total', 'Screams confirmed (k of n windows)', () =>
      s.eventsConfirmed(),
    );
    counter('screamwatch_daemon_reports_total', 'Near-miss reports sent (detection.reportThreshold)', () =>
      s.reportsSent(),
    );
    counter(
      'screamwatch_daemon_dropped_frames_total',
      'Audio samples dropped because analysis fell behind',
      () => s.droppedFrames(),
    );
    gauge('screamwatch_daemon_outbox_depth', 'Rows waiting in the outbox for a PUBACK', () =>
      s.outboxDepth(),
    );
    gauge('screamwatch_daemon_outbox_writable', '1 when the outbox disk takes writes', () =>
      s.outboxWritable() ? 1 : 0,
    );
    gauge('screamwatch_daemon_input_level_dbfs', 'RMS level of the last analysed chunk (dBFS)', () =>
      s.inputLevelDbfs(),
    );
    gauge('screamwatch_daemon_mqtt_connected', '1 while connected to the broker', () =>
      s.mqttConnected() ? 1 : 0,
    );
    new Gauge({
      name: 'screamwatch_daemon_input_health',
      help: 'Input classifier state: 1 for the current state (ok, silent, stuck, clipping, no-device), 0 for the others',
      labelNames: ['state'],
      registers: [r],
      collect() {
        const now = s.health();
        for (const state of INPUT_HEALTH_STATES) this.set({ state }, state === now ? 1 : 0);
      },
    });
    this.probability = new Histogram({
      name: 'screamwatch_daemon_window_probability',
      help: 'Scream probability of each analysed window',
      buckets: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
      registers: [r],
    });
    this.publishLatency = new Histogram({
      name: 'screamwatch_daemon_publish_latency_seconds',
      help: 'Outbox commit to PUBACK, by row kind (event, report, heartbeat)',
      labelNames: ['kind'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [r],
    });
  }

  window(probability: number): void {
    this.probability.observe(probability);
  }

  acked(kind: string, latencyS: number): void {
    this.publishLatency.observe({ kind }, Math.max(0, latencyS));
  }
}
