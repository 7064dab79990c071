import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { runDaemonCommand } from '../../daemon/cli.ts';
import { envKeys, loadDaemonConfig } from '../../daemon/config/load.ts';
import { Teardown, tempDir } from './helpers.ts';

const teardown = new Teardown();
afterEach(() => teardown.run());

async function file(name: string, text: string): Promise<string> {
  const t = await tempDir('sw-config-');
  teardown.add(t.remove);
  const p = join(t.dir, name);
  await writeFile(p, text);
  return p;
}

describe('daemon config', () => {
  it('fills every documented default from just a sensorId', () => {
    const c = loadDaemonConfig({ env: {}, overrides: { sensorId: 'hall-1' } });
    expect(c).toEqual({
      sensorId: 'hall-1',
      topicRoot: 'screamwatch',
      audio: {
        source: 'alsa:default',
        fast: false,
        maxFileSeconds: 3600,
        retry: { initialDelayMs: 1000, maxDelayMs: 60000, multiplier: 2 },
      },
      detection: {
        modelPath: null,
        threshold: null,
        k: null,
        n: null,
        releaseWindows: null,
        singleWindowThreshold: null,
        levelGateDbfs: null,
        reportThreshold: null,
      },
      clips: { enabled: false, dir: null, maxBytes: 52428800, preS: 2, postS: 2 },
      mqtt: {
        url: 'mqtt://localhost:1883',
        username: null,
        password: null,
        caFile: null,
        certFile: null,
        keyFile: null,
        rejectUnauthorized: true,
        keepaliveS: 30,
      },
      stateDir: '/var/lib/screamwatch',
      outbox: {
        maxRows: 100000,
        memoryMaxRows: 1000,
        retry: { initialDelayMs: 1000, maxDelayMs: 60000, multiplier: 2 },
      },
      heartbeatIntervalS: 60,
      health: {
        silentAfterS: 300,
        silentFloorDbfs: -90,
        stuckAfterS: 30,
        clipAfterS: 10,
        clipShare: 0.05,
        noDeviceAfterS: 5,
        recoverAfterS: 10,
      },
      location: { latitude: null, longitude: null, accuracy: null, address: null, room: null },
      log: { level: 'info' },
      control: { enabled: true, maxCommandAgeS: 604_800, modelTrialS: 600, modelDownloadTimeoutS: 120 },
      metrics: { port: null, host: '127.0.0.1' },
    });
  });

  it('reads YAML and JSON; flags beat the environment, which beats the file', async () => {
    const yaml = await file(
      'daemon.yaml',
      'sensorId: hall-1\naudio:\n  source: alsa:dsnoop\ndetection:\n  k: 2\n  n: 4\nmqtt:\n  url: mqtt://broker.example:1883\n  username: sensor\n',
    );
    const env = {
      SCREAMWATCH_MQTT_URL: 'mqtts://env.example:8883',
      SCREAMWATCH_DETECTION_K: '3',
      SCREAMWATCH_CLIPS_ENABLED: 'true',
    };
    const c = loadDaemonConfig({ file: yaml, env, overrides: { mqtt: { url: 'mqtt://flag.example:1883' } } });
    expect(c.mqtt.url).toBe('mqtt://flag.example:1883');
    expect(c.mqtt.username).toBe('sensor');
    expect(c.detection.k).toBe(3);
    expect(c.detection.n).toBe(4);
    expect(c.clips.enabled).toBe(true);
    expect(c.audio.source).toBe('alsa:dsnoop');
    const json = await file('daemon.json', JSON.stringify({ sensorId: 'lab-2', heartbeatIntervalS: 5 }));
    expect(loadDaemonConfig({ file: json, env: {} }).heartbeatIntervalS).toBe(5);
    expect(
      loadDaemonConfig({ file: json, env: { SCREAMWATCH_DETECTION_THRESHOLD: 'null' } }).detection.threshold,
    ).toBeNull();
  });

  it('the shipped example config is valid and spells out every default', () => {
    const example = fileURLToPath(new URL('../../daemon/daemon.example.yaml', import.meta.url));
    const fromExample = loadDaemonConfig({ file: example, env: {} });
    expect(fromExample).toEqual(loadDaemonConfig({ env: {}, overrides: { sensorId: 'hall-1' } }));
  });

  it('derives one SCREAMWATCH_* variable per leaf key', () => {
    const names = envKeys().map((k) => k.name);
    expect(names).toContain('SCREAMWATCH_MQTT_URL');
    expect(names).toContain('SCREAMWATCH_SENSOR_ID');
    expect(names).toContain('SCREAMWATCH_AUDIO_RETRY_INITIAL_DELAY_MS');
    expect(names).toContain('SCREAMWATCH_LOCATION_LATITUDE');
    expect(new Set(names).size).toBe(names.length);
  });

  it('names every bad key path and where the value came from', async () => {
    const yaml = await file(
      'bad.yaml',
      'sensorId: "hall 1"\nmqtt:\n  url: http://x\n  pasword: typo\ndetection:\n  k: 5\n  n: 3\n',
    );
    let err: unknown;
    try {
      loadDaemonConfig({ file: yaml, env: { SCREAMWATCH_HEARTBEAT_INTERVAL_S: 'soon' } });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    const msg = (err as Error).message;
    expect(msg).toMatch(/sensorId: must be 1-64.*\[from file .*bad\.yaml\]/);
    expect(msg).toMatch(/mqtt\.url: must be mqtt:\/\/host:port/);
    expect(msg).toMatch(
      /mqtt\.pasword: unknown key \(did you mean mqtt\.password\?\) \[from file .*bad\.yaml\]/,
    );
    expect(msg).toMatch(/detection\.k: k must be <= n/);
    expect(msg).toMatch(/heartbeatIntervalS: .*\[from environment SCREAMWATCH_HEARTBEAT_INTERVAL_S\]/);
  });

  it('a missing sensorId, a missing file and broken YAML are clear errors', async () => {
    expect(() => loadDaemonConfig({ env: {} })).toThrow(/sensorId/);
    expect(() => loadDaemonConfig({ file: '/nonexistent/daemon.yaml', env: {} })).toThrow(
      /cannot read config file \/nonexistent\/daemon\.yaml: ENOENT/,
    );
    const broken = await file('broken.yaml', 'sensorId: [unclosed\n');
    expect(() => loadDaemonConfig({ file: broken, env: {} })).toThrow(/is not valid YAML\/JSON/);
  });

  it('the CLI exits 78 (EX_CONFIG) on bad config and unknown flags, without starting anything', async () => {
    const writes: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => {
      writes.push(String(s));
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await runDaemonCommand(['--source', 'mic:0', '--sensor-id', 'x'], { env: {} })).toBe(78);
      expect(await runDaemonCommand(['--bogus'], { env: {} })).toBe(78);
    } finally {
      process.stderr.write = orig;
    }
    expect(writes.join('')).toMatch(
      /audio\.source: must be alsa:<device> or file:<path> \[from command line\]/,
    );
    expect(writes.join('')).toMatch(/Unknown option '--bogus'/);
  });
});
