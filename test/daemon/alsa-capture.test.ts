import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DaemonApp } from '../../daemon/app.ts';
import { AlsaSource } from '../../daemon/capture/alsa-source.ts';
import { decodeSensorMessage } from '../../protocol/codec.ts';
import { parseSensorTopic } from '../../protocol/topics.ts';
import { startAedes } from '../support/aedes.ts';
import { roomToneWav, screamSequenceWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { useFakeArecord } from '../support/fake-arecord.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from './helpers.ts';

let fixtures: { dir: string; remove: () => Promise<void> };
let modelPath: string;
let screams: Awaited<ReturnType<typeof screamSequenceWav>>;
let quiet: string;

beforeAll(async () => {
  fixtures = await tempDir('sw-fixtures-');
  modelPath = await tinyModelFile(fixtures.dir);
  screams = await screamSequenceWav(fixtures.dir, 'two-screams', 2, { gapS: 2 });
  quiet = await roomToneWav(join(fixtures.dir, 'quiet.wav'), 6);
});
afterAll(() => fixtures.remove());

const teardown = new Teardown();
afterEach(() => teardown.run());

describe('daemon with the microphone (fake arecord on PATH) and aedes', () => {
  it('publishes one event per scream, in order, with the protocol schema; status online retained', async () => {
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const state = await tempDir();
    teardown.add(state.remove);
    teardown.add(useFakeArecord({ wav: screams.path }));
    const logs = captureLogs();
    const config = daemonConfig({
      stateDir: state.dir,
      audio: { source: 'alsa:plughw:CARD=Device,DEV=0' },
      detection: { modelPath },
      mqtt: { url: broker.url },
      location: { latitude: 48.85, longitude: 2.35, accuracy: 10, address: '1 Rue X', room: 'Hall' },
    });
    const app = new DaemonApp({ config, logger: logs.logger });
    teardown.add(() => app.stop());
    await app.start();
    const events = () => broker.messages.filter((m) => m.topic === 'screamwatch/sensors/hall-1/events');
    await broker.waitFor(() => events().length >= 2, 20_000);
    await eventually(() => app.outbox.depth === 0, 5000, 'outbox drained');

    const decoded = events().map((m) => {
      const t = parseSensorTopic('screamwatch', m.topic)!;
      expect(m.qos).toBe(1);
      return decodeSensorMessage(t.kind, t.sensorId, m.payload);
    });
    const msgs = decoded.map((d) => (d.kind === 'events' ? d.message : null)!);
    expect(msgs).toHaveLength(2);
    expect(msgs[0]!.eventId < msgs[1]!.eventId).toBe(true);
    for (const m of msgs) {
      expect(m.isScream).toBe(true);
      expect(m.audioSource).toBe('alsa:plughw:CARD=Device,DEV=0');
      expect(m.modelVersion).toBe('test-tiny-1');
      expect(m.location).toEqual({
        latitude: 48.85,
        longitude: 2.35,
        accuracy: 10,
        address: '1 Rue X, Hall',
      });
      expect(Date.parse(m.startedAt)).toBeLessThan(Date.parse(m.timestamp));
      expect(Object.keys(m.features ?? {})).toContain('f0Median');
      expect(m.deviceInfo.daemonVersion).toMatch(/^\d+\.\d+\.\d+/);
    }
    const status = broker.messages.find((m) => m.topic === 'screamwatch/sensors/hall-1/status');
    expect(status?.retain).toBe(true);
    expect(JSON.parse(status!.payload.toString()).state).toBe('online');
    expect(logs.find(/audio capture running/)).toHaveLength(1);
  });

  it('publishes nothing for a quiet room', async () => {
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const state = await tempDir();
    teardown.add(state.remove);
    teardown.add(useFakeArecord({ wav: quiet }));
    const config = daemonConfig({ stateDir: state.dir, detection: { modelPath }, mqtt: { url: broker.url } });
    const app = new DaemonApp({ config, logger: captureLogs().logger });
    teardown.add(() => app.stop());
    await app.start();
    await eventually(() => app.detection.processedS >= 6.5, 15_000, '6.5 s of audio analysed');
    expect(app.detection.windowsScored).toBeGreaterThan(8);
    expect(broker.messages.filter((m) => m.topic.endsWith('/events'))).toHaveLength(0);
    expect(app.outbox.depthOf('event')).toBe(0);
  });

  it('a missing device is a clear ALSA_OPEN_FAILED error, retried with backoff until it appears', async () => {
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const state = await tempDir();
    teardown.add(state.remove);
    const logFile = join(state.dir, 'arecord.log');
    teardown.add(useFakeArecord({ wav: quiet, missingDevices: ['plughw:CARD=Gone,DEV=0'], logFile }));
    const logs = captureLogs();
    const config = daemonConfig({
      stateDir: state.dir,
      audio: {
        source: 'alsa:plughw:CARD=Gone,DEV=0',
        retry: { initialDelayMs: 100, maxDelayMs: 400, multiplier: 2 },
      },
      detection: { modelPath },
      mqtt: { url: broker.url },
    });
    const app = new DaemonApp({ config, logger: logs.logger });
    teardown.add(() => app.stop());
    await app.start(); // not fatal: the daemon keeps running and retrying
    await eventually(() => logs.find(/ALSA_OPEN_FAILED/).length >= 3, 10_000, 'three failed opens');
    const first = logs.find(/ALSA_OPEN_FAILED/)[0]!;
    expect(String(first.msg)).toMatch(
      /cannot open audio device alsa:plughw:CARD=Gone,DEV=0: .*audio open error: No such file or directory; retrying in \d+ ms/,
    );
    const delays = logs.find(/ALSA_OPEN_FAILED/).map((l) => Number(l.delayMs));
    expect(delays[2]!).toBeGreaterThan(delays[0]!); // backoff grows
    expect(readFileSync(logFile, 'utf8').trim().split('\n').length).toBeGreaterThanOrEqual(3);
    // the device comes back: capture recovers by itself
    process.env.FAKE_ARECORD_MISSING = '';
    await eventually(() => logs.find(/audio capture running/).length === 1, 5000, 'capture recovered');
  });

  it('a device that opens but delivers nothing is killed and reopened (ALSA_OPEN_FAILED: stalled)', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const logFile = join(state.dir, 'arecord.log');
    teardown.add(useFakeArecord({ stall: true, logFile }));
    const logs = captureLogs();
    const source = new AlsaSource({
      device: 'hw:1',
      retry: { initialDelayMs: 50, maxDelayMs: 100, multiplier: 2 },
      // the fake arecord is a node script: on a loaded machine it can take a few hundred ms to
      // start, and a shorter stall timeout would kill it before it logs its own start
      stallTimeoutMs: 1500,
      events: { samples: () => {}, flowing: () => {}, end: () => {} },
      logger: logs.logger,
    });
    teardown.add(() => source.stop());
    await source.start();
    await eventually(() => logs.find(/device stalled/).length >= 2, 15_000, 'two stalls');
    expect(String(logs.find(/device stalled/)[0]!.msg)).toMatch(
      /cannot open audio device alsa:hw:1: no audio for 1500 ms/,
    );
    expect(readFileSync(logFile, 'utf8').trim().split('\n').length).toBeGreaterThanOrEqual(2);
  });
});
