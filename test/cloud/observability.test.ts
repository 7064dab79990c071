import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../cloud/app.ts';
import { sensorTopic } from '../../protocol/topics.ts';
import { eventually } from '../support/eventually.ts';
import { parseMetrics } from '../support/prometheus.ts';
import { mailText, type SmtpHarness, startSmtp } from '../support/smtp.ts';
import {
  connectSensor,
  type LogCapture,
  newEvent,
  publishEvent,
  SENSOR_PASSWORD,
  sensorHash,
  startBridge,
  tempDir,
} from './bridge-harness.ts';

describe('bridge /metrics, /healthz, /livez', () => {
  let cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.reverse()) await fn();
    cleanup = [];
  });

  async function bridgeWithMetrics(): Promise<{
    app: CloudApp;
    logs: LogCapture;
    smtp: SmtpHarness;
    s: MqttClient;
  }> {
    const dir = await tempDir();
    cleanup.push(dir.remove);
    const smtp = await startSmtp();
    cleanup.push(() => smtp.stop());
    const bridge = await startBridge(
      {
        dataDir: dir.path,
        mqtt: {
          port: 0,
          host: '127.0.0.1',
          sensors: [{ sensorId: 'hall-1', passwordHash: await sensorHash() }],
        },
        sensors: [{ id: 'hall-1' }, { id: 'hall-2' }],
        alerts: {
          policies: [
            {
              group: 'default',
              threshold: 0.5,
              cooldownS: 0,
              contacts: { sms: [], email: ['a@example.org'] },
            },
          ],
          smtp: { host: '127.0.0.1', port: smtp.port, secure: false, from: 'alerts@example.org' },
          retry: { maxRetries: 2, initialDelayMs: 100, maxDelayMs: 200, multiplier: 2 },
          timeoutMs: 2000,
        },
        metrics: { port: 0 },
      },
      { web: true },
    );
    cleanup.push(() => bridge.app.stop());
    const s = await connectSensor(
      `mqtt://127.0.0.1:${bridge.app.brokerPorts!.tcp}`,
      'hall-1',
      SENSOR_PASSWORD,
    );
    cleanup.push(() => s.endAsync(true));
    return { ...bridge, smtp, s };
  }

  it('counts what happened: stored, duplicate, rejected by code, alerts by channel and outcome, sensors, connections', async () => {
    const { app, smtp, s } = await bridgeWithMetrics();
    expect(app.ops!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const ev = newEvent({ screamProbability: 0.9 });
    await publishEvent(s, ev);
    await publishEvent(s, ev); // redelivery
    await s.publishAsync(sensorTopic('screamwatch', 'hall-1', 'events'), Buffer.from('{"v":1,"nope":true}'), {
      qos: 1,
    });
    await smtp.waitFor((m) => m.length >= 1, 10_000);
    expect(mailText(smtp.mails[0]!.raw)).toContain('Scream detected');
    const m = await eventually(
      async () => {
        const res = await fetch(`${app.ops!.url}/metrics`);
        expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
        const parsed = parseMetrics(await res.text());
        return parsed.get('screamwatch_alert_attempts_total{channel="email",kind="alert",outcome="sent"}') ===
          1
          ? parsed
          : null;
      },
      10_000,
      'the sent alert counted',
    );
    expect(m.get('screamwatch_events_stored_total')).toBe(1);
    expect(m.get('screamwatch_events_duplicate_total')).toBe(1);
    expect(m.get('screamwatch_messages_rejected_total{code="MQTT_PAYLOAD_INVALID"}')).toBe(1);
    expect(m.get('screamwatch_alert_jobs{channel="email",status="sent"}')).toBe(1);
    expect(m.get('screamwatch_alert_queue_depth')).toBe(0);
    expect(m.get('screamwatch_mqtt_connections')).toBe(1);
    // the dashboard's upload analysis pool: capacity, none held, none refused
    expect(m.get('screamwatch_analysis_slots')).toBe(4);
    expect(m.get('screamwatch_analysis_slots_busy')).toBe(0);
    expect(m.get('screamwatch_analysis_refused_total')).toBe(0);
    expect(m.get('screamwatch_sensors{state="online"}')).toBe(1);
    expect(m.get('screamwatch_sensors{state="unknown"}')).toBe(1);
    expect(m.get('screamwatch_sensors{state="degraded"}')).toBe(0);
    // process metrics from prom-client's defaults
    expect(m.get('screamwatch_bridge_process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('/healthz is 200 with every check ok, 503 naming the broker or the store when they stop; /livez stays 200', async () => {
    const { app } = await bridgeWithMetrics();
    const health = async (base: string) => {
      const res = await fetch(`${base}/healthz`);
      return {
        status: res.status,
        body: (await res.json()) as { ok: boolean; checks: Record<string, { ok: boolean; detail?: string }> },
      };
    };
    const ok = await health(app.ops!.url);
    expect(ok).toEqual({
      status: 200,
      body: { ok: true, checks: { broker: { ok: true }, store: { ok: true }, alertQueue: { ok: true } } },
    });
    // the dashboard's /healthz tells the same truth
    expect((await health(app.web!.url)).status).toBe(200);

    await app.source.stop();
    const noBroker = await health(app.ops!.url);
    expect(noBroker.status).toBe(503);
    expect(noBroker.body.checks.broker).toEqual({
      ok: false,
      detail: expect.stringMatching(/not running|not listening/),
    });
    expect((await health(app.web!.url)).status).toBe(503);

    await app.store.stop();
    const noStore = await health(app.ops!.url);
    expect(noStore.body.checks.store).toMatchObject({ ok: false, detail: expect.stringMatching(/not open/) });
    await app.alerts.queue.close();
    expect((await health(app.ops!.url)).body.checks.alertQueue).toMatchObject({ ok: false });

    for (const base of [app.ops!.url, app.web!.url]) {
      const live = await fetch(`${base}/livez`);
      expect(live.status).toBe(200);
      expect(await live.json()).toEqual({ ok: true });
    }
  });
});
