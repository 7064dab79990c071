import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudApp } from '../../../cloud/app.ts';
import { SensorConfigSchema } from '../../../cloud/config/schema.ts';
import { Geolocator } from '../../../cloud/geo/locator.ts';
import { eventually } from '../../support/eventually.ts';
import { cityRecord, writeMmdb } from '../../support/mmdb-writer.ts';
import { connectSensor, newEvent, publishEvent, startBridge, tempDir } from '../bridge-harness.ts';

describe('geolocation', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let mmdb: string;
  const logger = pino({ level: 'silent' });

  beforeAll(async () => {
    dir = await tempDir('sw-geo-');
    mmdb = join(dir.path, 'city.mmdb');
    await writeFile(
      mmdb,
      writeMmdb([
        { cidr: '127.0.0.0/8', data: cityRecord('Lyon', 'France', 'FR', 45.764, 4.8357, 20) },
        { cidr: '203.0.113.0/24', data: cityRecord('Sydney', 'Australia', 'AU', -33.8688, 151.2093) },
      ]),
    );
  });
  afterAll(async () => {
    await dir.remove();
  });

  it('reads an offline City database (dbip-city / GeoLite2-City format)', async () => {
    const geo = new Geolocator({ ipDatabase: mmdb, logger });
    await geo.start();
    expect(geo.locateIp('203.0.113.7')).toEqual({
      latitude: -33.8688,
      longitude: 151.2093,
      accuracy: 25_000,
      address: 'Sydney, Australia',
      source: 'ip-database',
    });
    expect(geo.locateIp('::ffff:127.0.0.1')).toMatchObject({
      latitude: 45.764,
      accuracy: 20_000,
      address: 'Lyon, France',
    });
    expect(geo.locateIp('198.51.100.1')).toBeNull();
    expect(geo.locateIp('not-an-ip')).toBeNull();
    await geo.stop();
  });

  it('prefers the sensor config, then the device, then the IP database, else unknown (never 0,0)', async () => {
    const geo = new Geolocator({ ipDatabase: mmdb, logger });
    await geo.start();
    const configured = SensorConfigSchema.parse({
      id: 'hall-1',
      room: 'Hall',
      location: { latitude: 1, longitude: 2, address: 'A St' },
    });
    const bare = SensorConfigSchema.parse({ id: 'yard-2', room: 'Yard' });
    const device = { latitude: 10, longitude: 20, accuracy: 30 };
    expect(geo.locate({ sensor: configured, device, ip: '203.0.113.7' })).toMatchObject({
      latitude: 1,
      source: 'sensor-config',
      room: 'Hall',
    });
    expect(geo.locate({ sensor: bare, device, ip: '203.0.113.7' })).toMatchObject({
      latitude: 10,
      accuracy: 30,
      source: 'device',
      room: 'Yard',
    });
    expect(geo.locate({ sensor: bare, ip: '203.0.113.7' })).toMatchObject({
      latitude: -33.8688,
      source: 'ip-database',
      room: 'Yard',
    });
    expect(geo.locate({ sensor: bare, ip: '198.51.100.1' })).toEqual({
      latitude: null,
      longitude: null,
      accuracy: null,
      address: null,
      source: 'unknown',
      room: 'Yard',
    });
    await geo.stop();
    // No database configured: the IP path is skipped, never an online service.
    const none = new Geolocator({ ipDatabase: null, logger });
    await none.start();
    expect(none.locate({ ip: '203.0.113.7' }).source).toBe('unknown');
  });

  it('fails at start with a coded error naming the key and the file', async () => {
    const geo = new Geolocator({ ipDatabase: join(dir.path, 'missing.mmdb'), logger });
    await expect(geo.start()).rejects.toMatchObject({
      code: 'CLOUD_GEO_DATABASE',
      message: expect.stringContaining('geo.ipDatabase'),
    });
  });

  it('locates an event from a sensor without a configured location by the IP it connected from', async () => {
    let bridge: { app: CloudApp } | null = null;
    let client: MqttClient | null = null;
    try {
      bridge = await startBridge({
        dataDir: join(dir.path, 'bridge'),
        mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true },
        sensors: [{ id: 'yard-2', name: 'Yard', room: 'Back yard' }],
        geo: { ipDatabase: mmdb },
        alerts: { policies: [] },
      });
      client = await connectSensor(`mqtt://127.0.0.1:${bridge.app.brokerPorts!.tcp}`, undefined, undefined);
      const byIp = newEvent({ sensorId: 'yard-2' });
      const byDevice = newEvent({
        sensorId: 'yard-2',
        location: { latitude: 51.5, longitude: -0.12, accuracy: 8, address: 'Flat 2' },
      });
      await publishEvent(client, byIp);
      await publishEvent(client, byDevice);
      const a = await eventually(() => bridge!.app.store.get(byIp.eventId), 5000, 'stored');
      const b = await eventually(() => bridge!.app.store.get(byDevice.eventId), 5000, 'stored');
      expect(a.location).toEqual({
        latitude: 45.764,
        longitude: 4.8357,
        accuracy: 20_000,
        address: 'Lyon, France',
        source: 'ip-database',
        room: 'Back yard',
      });
      expect(b.location).toEqual({
        latitude: 51.5,
        longitude: -0.12,
        accuracy: 8,
        address: 'Flat 2',
        source: 'device',
        room: 'Back yard',
      });
    } finally {
      await client?.endAsync(true);
      await bridge?.app.stop();
    }
  });
});
