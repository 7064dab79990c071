import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/free-port.ts';
import {
  connectSensor,
  eventually,
  newEvent,
  publishEvent,
  SENSOR_PASSWORD,
  sensorHash,
  tempDir,
} from './bridge-harness.ts';

const BIN = fileURLToPath(new URL('../../bin/screamwatch.js', import.meta.url));

/**
 * `systemctl reload screamwatch-cloud` (SIGHUP): a sensor added to cloud.yaml (by Ansible) can
 * log in at once, and the bridge keeps running: connected sensors stay connected.
 */
describe('cloud bridge: SIGHUP reloads sensors and credentials without a restart', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let child: ChildProcess;
  let out = '';
  let mqttPort = 0;
  let cfg = '';
  const clients: MqttClient[] = [];
  const config = async (ids: string[]) => ({
    dataDir: join(dir.path, 'data'),
    mqtt: {
      host: '127.0.0.1',
      sensors: await Promise.all(
        ids.map(async (sensorId) => ({ sensorId, passwordHash: await sensorHash() })),
      ),
    },
    sensors: ids.map((id) => ({ id, name: `Sensor ${id}` })),
    web: { host: '127.0.0.1' },
  });

  beforeAll(async () => {
    dir = await tempDir('sw-reload-');
    mqttPort = await freePort();
    cfg = join(dir.path, 'cloud.json');
    await writeFile(cfg, JSON.stringify(await config(['hall-1'])));
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env))
      if (!k.startsWith('SCREAMWATCH_') && k !== 'MONGODB_URI') env[k] = v;
    child = spawn(
      process.execPath,
      [
        BIN,
        'cloud',
        '--config',
        cfg,
        '--mqtt-port',
        String(mqttPort),
        '--http-port',
        String(await freePort()),
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await eventually(
      () => {
        if (child.exitCode !== null) throw new Error(`bridge exited: ${out.slice(-2000)}`);
        return out.includes('cloud bridge running');
      },
      30_000,
      'bridge running',
    );
  });
  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    await dir?.remove();
  });

  it('a new sensor logs in after the reload; a connected one stays connected; a bad file is refused', async () => {
    const url = `mqtt://127.0.0.1:${mqttPort}`;
    const hall = await connectSensor(url, 'hall-1', SENSOR_PASSWORD);
    clients.push(hall);
    await expect(connectSensor(url, 'yard-2', SENSOR_PASSWORD)).rejects.toThrow();

    await writeFile(cfg, JSON.stringify(await config(['hall-1', 'yard-2'])));
    child.kill('SIGHUP');
    await eventually(() => out.includes('config reloaded: sensors and credentials'), 10_000, 'reloaded');
    expect(out).toMatch(/"added":\["yard-2"\]/);
    const yard = await connectSensor(url, 'yard-2', SENSOR_PASSWORD);
    clients.push(yard);
    const e = newEvent({ sensorId: 'yard-2' });
    await publishEvent(yard, e);
    expect(hall.connected).toBe(true);
    await publishEvent(hall, newEvent());

    await writeFile(cfg, '{"sensors": "not a list", "unknownKey": 1}');
    child.kill('SIGHUP');
    await eventually(
      () => out.includes('config reload refused; the running config stays'),
      10_000,
      'refused',
    );
    expect(child.exitCode).toBeNull();
    await publishEvent(yard, newEvent({ sensorId: 'yard-2' }));
    expect(out.match(/"msg":"event stored"/g)?.length).toBe(3);
  });
});
