import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DaemonApp } from '../../daemon/app.ts';
import { decodeSensorMessage } from '../../protocol/codec.ts';
import type { EventMessage, HeartbeatMessage } from '../../protocol/messages.ts';
import { startAedes } from '../support/aedes.ts';
import { screamSequenceWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from './helpers.ts';

let fixtures: { dir: string; remove: () => Promise<void> };
let modelPath: string;
let twoScreams: string;

beforeAll(async () => {
  fixtures = await tempDir('sw-fixtures-');
  modelPath = await tinyModelFile(fixtures.dir);
  twoScreams = (await screamSequenceWav(fixtures.dir, 'two', 2, { gapS: 2 })).path;
});
afterAll(() => fixtures.remove());

const teardown = new Teardown();
afterEach(() => teardown.run());

async function runFile(input: Omit<Parameters<typeof daemonConfig>[0], 'stateDir'>, clockMs?: number) {
  const state = await tempDir();
  teardown.add(state.remove);
  const logs = captureLogs();
  const app = new DaemonApp({
    config: daemonConfig({
      stateDir: state.dir,
      audio: { source: `file:${twoScreams}`, fast: true },
      ...input,
    }),
    logger: logs.logger,
    ...(clockMs !== undefined && { clock: { now: () => clockMs } }),
  });
  teardown.add(() => app.stop());
  const committed: EventMessage[] = [];
  app.on('committed', (_id: number, m: EventMessage) => committed.push(m));
  const ended = new Promise<void>((r) => app.once('source-end', () => r()));
  await app.start();
  await ended;
  return { app, logs, committed, state };
}

describe('detection options', () => {
  it('near-miss reports (isScream=false) when reportThreshold is set and nothing is confirmed', async () => {
    const { committed } = await runFile({
      // k-of-n no scream can meet (a scream here is ~4 windows): nothing is confirmed
      detection: { modelPath, k: 50, n: 50, reportThreshold: 0.3 },
      mqtt: { url: `mqtt://127.0.0.1:${await freePort()}` },
    });
    expect(committed.length).toBe(2);
    for (const m of committed) {
      expect(m).toMatchObject({ isScream: false, thresholdValue: 0.3 });
      expect(m.screamProbability).toBeGreaterThanOrEqual(0.3);
      expect(m.notes).toMatch(/near-miss/);
    }
  });

  it('no reports by default; per-sensor threshold/k/n override the model', async () => {
    const { committed, app } = await runFile({
      detection: { modelPath, threshold: 0.99, k: 50, n: 50 },
      mqtt: { url: `mqtt://127.0.0.1:${await freePort()}` },
    });
    expect(committed).toHaveLength(0);
    expect(app.detection.detector.options.threshold).toBe(0.99);
    const { app: app2 } = await runFile({
      detection: { modelPath, k: 1, n: 5, releaseWindows: 3, levelGateDbfs: -40 },
      mqtt: { url: `mqtt://127.0.0.1:${await freePort()}` },
    });
    expect(app2.detection.detector.options).toMatchObject({
      threshold: 0.5,
      k: 1,
      n: 5,
      releaseWindows: 3,
      levelGateDbfs: -40,
    });
  });

  it('event timestamps come from the injected clock', async () => {
    const fixed = Date.parse('2026-03-01T12:00:00.000Z');
    const { committed } = await runFile(
      { detection: { modelPath }, mqtt: { url: `mqtt://127.0.0.1:${await freePort()}` } },
      fixed,
    );
    expect(committed).toHaveLength(2);
    expect(committed.map((m) => m.timestamp)).toEqual([
      '2026-03-01T12:00:00.000Z',
      '2026-03-01T12:00:00.000Z',
    ]);
    // monotonic ULIDs within one millisecond
    expect(committed[0]!.eventId < committed[1]!.eventId).toBe(true);
    expect(Date.parse(committed[0]!.startedAt)).toBeLessThan(fixed);
  });

  it('clips: one WAV per event with pre and post audio, the folder kept under maxBytes', async () => {
    const clipsDir = join(fixtures.dir, 'clips');
    const { committed } = await runFile({
      detection: { modelPath },
      mqtt: { url: `mqtt://127.0.0.1:${await freePort()}` },
      clips: { enabled: true, dir: clipsDir, preS: 1, postS: 1, maxBytes: 100_000 },
    });
    expect(committed).toHaveLength(2);
    const files = readdirSync(clipsDir).sort();
    // 2 s of 16-bit 16 kHz = 64 KB each: only the newest fits in 100 KB
    expect(files).toEqual([`${committed[1]!.eventId}.wav`]);
    expect(statSync(join(clipsDir, files[0]!)).size).toBe(44 + 2 * 16_000 * 2);
  });

  it('heartbeats: periodic, schema-valid, report outbox depth and level; only the newest waits offline', async () => {
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const state = await tempDir();
    teardown.add(state.remove);
    const app = new DaemonApp({
      config: daemonConfig({
        stateDir: state.dir,
        audio: { source: `file:${twoScreams}` }, // real time
        detection: { modelPath },
        mqtt: { url: broker.url },
        heartbeatIntervalS: 1,
      }),
      logger: captureLogs().logger,
    });
    teardown.add(() => app.stop());
    await app.start();
    await broker.waitFor((m) => m.filter((x) => x.topic.endsWith('/heartbeat')).length >= 2, 5000);
    const beats = broker.messages
      .filter((x) => x.topic.endsWith('/heartbeat'))
      .map((x) => decodeSensorMessage('heartbeat', 'hall-1', x.payload).message as HeartbeatMessage);
    expect(beats[1]).toMatchObject({
      sensorId: 'hall-1',
      outboxFull: false,
      droppedFrames: 0,
      modelVersion: 'test-tiny-1',
    });
    expect(beats[1]!.uptimeS).toBeGreaterThanOrEqual(1);
    expect(beats[1]!.rssBytes).toBeGreaterThan(1_000_000);
    expect(beats[1]!.inputLevelDbfs).toBeLessThan(0);
    await broker.stop();
    await eventually(() => !app.publisher.isConnected, 3000, 'disconnect');
    // Two heartbeats must have waited in the outbox while offline: the later replaced the earlier.
    const waited = new Set<number>();
    await eventually(
      () => {
        for (const r of app.outbox.peek(0, 1000)) if (r.kind === 'heartbeat') waited.add(r.id);
        return waited.size >= 2;
      },
      5000,
      'a second heartbeat while offline',
    );
    expect(app.outbox.depthOf('heartbeat')).toBe(1);
  });
});
