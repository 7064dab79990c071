import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DaemonApp } from '../../daemon/app.ts';
import { DaemonConfigSchema } from '../../daemon/config/schema.ts';
import { startAedes } from '../support/aedes.ts';
import { screamSequenceWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { useFakeArecord } from '../support/fake-arecord.ts';
import { parseMetrics } from '../support/prometheus.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from './helpers.ts';

let fixtures: { dir: string; remove: () => Promise<void> };
let modelPath: string;
let screams: string;

beforeAll(async () => {
  fixtures = await tempDir('sw-metrics-');
  modelPath = await tinyModelFile(fixtures.dir);
  screams = (await screamSequenceWav(fixtures.dir, 'two', 2, { gapS: 2 })).path;
});
afterAll(() => fixtures.remove());

const teardown = new Teardown();
afterEach(() => teardown.run());

describe('daemon metrics endpoint (localhost only, off by default)', () => {
  it('is off by default and refuses a non-loopback address', () => {
    const c = DaemonConfigSchema.parse({ sensorId: 'x' });
    expect(c.metrics).toEqual({ port: null, host: '127.0.0.1' });
    const bad = DaemonConfigSchema.safeParse({ sensorId: 'x', metrics: { port: 9100, host: '0.0.0.0' } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toMatch(/loopback/);
  });

  it('serves /metrics from the real pipeline and a truthful /healthz (503 without the broker)', async () => {
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const state = await tempDir();
    teardown.add(state.remove);
    teardown.add(useFakeArecord({ wav: screams, speed: 4 }));
    const app = new DaemonApp({
      config: daemonConfig({
        stateDir: state.dir,
        audio: { source: 'alsa:plughw:CARD=Device,DEV=0' },
        detection: { modelPath },
        mqtt: { url: broker.url },
        metrics: { port: 0 },
      }),
      logger: captureLogs().logger,
    });
    teardown.add(() => app.stop());
    // not started yet: nothing listens
    expect(app.ops).toBeNull();
    await app.start();
    expect(app.ops!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await eventually(
      () => app.detection.eventsConfirmed >= 2 && app.outbox.depth === 0,
      20_000,
      'two events acked',
    );
    const m = parseMetrics(await (await fetch(`${app.ops!.url}/metrics`)).text());
    expect(m.get('screamwatch_daemon_events_confirmed_total')).toBe(2);
    expect(m.get('screamwatch_daemon_windows_analysed_total')).toBe(app.detection.windowsScored);
    expect(m.get('screamwatch_daemon_window_probability_count')).toBe(app.detection.windowsScored);
    expect(m.get('screamwatch_daemon_window_probability_bucket{le="+Inf"}')).toBe(
      app.detection.windowsScored,
    );
    expect(m.get('screamwatch_daemon_publish_latency_seconds_count{kind="event"}')).toBe(2);
    expect(m.get('screamwatch_daemon_mqtt_connected')).toBe(1);
    expect(m.get('screamwatch_daemon_outbox_depth')).toBe(0);
    expect(m.get('screamwatch_daemon_outbox_writable')).toBe(1);
    expect(m.get('screamwatch_daemon_input_health{state="ok"}')).toBe(1);
    expect(m.get('screamwatch_daemon_input_health{state="silent"}')).toBe(0);
    expect(m.get('screamwatch_daemon_input_level_dbfs')).toBeLessThan(0);
    expect(m.get('screamwatch_daemon_process_resident_memory_bytes')).toBeGreaterThan(0);

    const ok = await fetch(`${app.ops!.url}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({
      ok: true,
      checks: { outbox: { ok: true }, mqtt: { ok: true }, audio: { ok: true } },
    });
    await broker.stop();
    await eventually(() => !app.publisher.isConnected, 5000, 'disconnected');
    const down = await fetch(`${app.ops!.url}/healthz`);
    expect(down.status).toBe(503);
    expect(((await down.json()) as { checks: { mqtt: unknown } }).checks.mqtt).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/not connected/),
    });
    expect((await fetch(`${app.ops!.url}/livez`)).status).toBe(200);
    const url = app.ops!.url;
    await app.stop();
    await expect(fetch(`${url}/livez`)).rejects.toThrow();
  });
});
