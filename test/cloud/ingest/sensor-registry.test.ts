import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SensorConfigSchema } from '../../../cloud/config/schema.ts';
import { SensorRegistry, type SensorView } from '../../../cloud/ingest/sensor-registry.ts';

function setup(offlineAfterS = 60) {
  let now = Date.parse('2026-11-24T10:00:00.000Z');
  const offline: SensorView[] = [];
  const registry = new SensorRegistry({
    sensors: [
      SensorConfigSchema.parse({
        id: 'hall-1',
        name: 'Hall',
        room: 'Ground floor',
        location: { latitude: 1, longitude: 2 },
      }),
    ],
    offlineAfterS,
    logger: pino({ level: 'silent' }),
    clock: () => new Date(now),
    onOffline: (s) => offline.push(s),
  });
  return { registry, offline, advance: (ms: number) => (now += ms), iso: () => new Date(now).toISOString() };
}

const heartbeat = (sensorId: string, timestamp: string) => ({
  v: 1 as const,
  sensorId,
  timestamp,
  uptimeS: 1,
  outboxDepth: 2,
  outboxFull: false,
  droppedFrames: 4,
  inputLevelDbfs: -40,
  lastMaxProbability: 0.2,
  cpuPercent: 10,
  rssBytes: 1,
  modelVersion: 'm1',
  daemonVersion: '0.1.0',
});

describe('sensor registry', () => {
  it('lists configured sensors as unknown until heard, then online with their health', () => {
    const { registry, iso } = setup();
    expect(registry.get('hall-1')).toMatchObject({
      status: 'unknown',
      lastSeen: null,
      configured: true,
      location: { source: 'sensor-config', room: 'Ground floor' },
    });
    registry.noteHeartbeat(heartbeat('hall-1', iso()));
    expect(registry.get('hall-1')).toMatchObject({
      status: 'online',
      outboxDepth: 2,
      droppedFrames: 4,
      inputLevelDbfs: -40,
      modelVersion: 'm1',
      daemonVersion: '0.1.0',
      lastSeen: iso(),
    });
    // A sensor only seen on the broker joins the list.
    registry.noteEvent('yard-2', iso(), 'm2');
    expect(registry.list().map((s) => [s.id, s.status, s.configured])).toEqual([
      ['hall-1', 'online', true],
      ['yard-2', 'online', false],
    ]);
    expect(registry.get('yard-2')?.lastEventAt).toBe(iso());
  });

  it('shows an explicit offline status at once but alerts only after offlineAfterS of silence, once', () => {
    const { registry, offline, advance, iso } = setup(60);
    registry.noteHeartbeat(heartbeat('hall-1', iso()));
    advance(10_000);
    registry.noteStatus({ v: 1, sensorId: 'hall-1', state: 'offline', timestamp: iso() });
    expect(registry.get('hall-1')?.status).toBe('offline');
    expect(registry.checkOffline()).toEqual([]);
    advance(59_000);
    expect(registry.checkOffline()).toEqual([]);
    advance(2000);
    expect(registry.checkOffline().map((s) => s.id)).toEqual(['hall-1']);
    advance(120_000);
    expect(registry.checkOffline()).toEqual([]);
    expect(offline).toHaveLength(1);
    // Back: online again, and a new silence alerts again.
    registry.noteHeartbeat(heartbeat('hall-1', iso()));
    expect(registry.get('hall-1')?.status).toBe('online');
    advance(61_000);
    registry.checkOffline();
    expect(offline).toHaveLength(2);
  });

  it('alerts for a configured sensor never heard from since the bridge started', async () => {
    const { registry, offline, advance } = setup(60);
    await registry.start();
    try {
      advance(61_000);
      registry.checkOffline();
      expect(offline.map((s) => [s.id, s.lastSeen])).toEqual([['hall-1', null]]);
    } finally {
      await registry.stop();
    }
  });
});
