import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudEnvVariables, loadCloudConfig, parseCloudConfig } from '../../../cloud/config/schema.ts';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sw-cloud-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('cloud config', () => {
  it('has the documented defaults', () => {
    const c = loadCloudConfig({ env: {} });
    expect(c.dataDir).toBe('./data');
    expect(c.mqtt).toMatchObject({
      broker: null,
      port: 1883,
      sharedGroup: 'screamwatch-bridges',
      topicRoot: 'screamwatch',
      allowAnonymous: false,
    });
    expect(c.offlineAfterS).toBe(300);
    expect(c.alerts.retry).toEqual({
      maxRetries: 6,
      initialDelayMs: 2000,
      maxDelayMs: 300000,
      multiplier: 2,
    });
    expect(c.alerts.policies).toHaveLength(1);
    expect(c.alerts.policies[0]).toMatchObject({
      group: 'default',
      threshold: 0.5,
      cooldownS: 120,
      ratePerContactPerHour: 10,
    });
    expect(c.web).toMatchObject({ host: '127.0.0.1', port: 8080, maxUploadBytes: 20971520 });
  });

  it('reads YAML, applies SCREAMWATCH_* environment and then CLI overrides', async () => {
    const file = join(dir, 'cloud.yaml');
    await writeFile(
      file,
      [
        'dataDir: /var/lib/screamwatch',
        'mqtt: { port: 1884, topicRoot: site-a }',
        'sensors:',
        '  - { id: hall-1, name: Hall, room: Ground floor hall, location: { latitude: 48.85, longitude: 2.35, address: 1 Main St } }',
        'alerts:',
        '  policies:',
        '    - { group: default, threshold: 0.7, contacts: { sms: ["+15550001111"], email: [ops@example.org] } }',
      ].join('\n'),
    );
    const c = loadCloudConfig({
      file,
      env: {
        SCREAMWATCH_ALERTS_TWILIO_AUTH_TOKEN: 'tok',
        SCREAMWATCH_OFFLINE_AFTER_S: '60',
        SCREAMWATCH_MQTT_PORT: '1999',
      },
      overrides: { httpPort: 0, dataDir: '/tmp/x' },
    });
    expect(c.dataDir).toBe('/tmp/x');
    expect(c.mqtt.port).toBe(1999);
    expect(c.mqtt.topicRoot).toBe('site-a');
    expect(c.web.port).toBe(0);
    expect(c.offlineAfterS).toBe(60);
    expect(c.alerts.twilio.authToken).toBe('tok');
    expect(c.sensors[0]).toMatchObject({
      id: 'hall-1',
      group: 'default',
      location: { latitude: 48.85, accuracy: null },
    });
    expect(c.alerts.policies[0]?.contacts.email).toEqual(['ops@example.org']);
  });

  it('names the key path and the file in errors', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      'mqtt:\n  port: lots\nalerts:\n  policies:\n    - { contacts: { sms: ["555"] } }\n',
    );
    expect(() => loadCloudConfig({ file, env: {} })).toThrow(
      /bad\.yaml.*mqtt\.port.*alerts\.policies\.0\.contacts\.sms\.0/s,
    );
    try {
      loadCloudConfig({ file, env: {} });
    } catch (err) {
      expect(err).toMatchObject({ code: 'CLOUD_CONFIG_INVALID' });
    }
  });

  it('names the environment variable that broke the config', () => {
    expect(() => loadCloudConfig({ env: { SCREAMWATCH_WEB_PORT: 'eighty' } })).toThrow(
      /web\.port: .*\[from environment SCREAMWATCH_WEB_PORT\]/,
    );
  });

  it('types environment values from the schema: a numeric password stays a string, numbers and booleans parse', () => {
    const c = loadCloudConfig({
      env: {
        SCREAMWATCH_MQTT_PASSWORD: '123456',
        SCREAMWATCH_ALERTS_SMTP_PASS: 'true',
        SCREAMWATCH_ALERTS_SMTP_PORT: '465',
        SCREAMWATCH_ALERTS_SMTP_SECURE: 'true',
        SCREAMWATCH_MQTT_TLS_PORT: 'null',
        SCREAMWATCH_WEB_SESSION_SECRET: '12345678901234567890',
      },
    });
    expect(c.mqtt.password).toBe('123456');
    expect(c.alerts.smtp.pass).toBe('true');
    expect(c.alerts.smtp.port).toBe(465);
    expect(c.alerts.smtp.secure).toBe(true);
    expect(c.mqtt.tls.port).toBeNull();
    expect(c.web.sessionSecret).toBe('12345678901234567890');
  });

  it('refuses an unknown key with its path, a did-you-mean and the file (a typo must not start a bridge that never alerts)', async () => {
    const file = join(dir, 'typo.yaml');
    await writeFile(
      file,
      'alerts:\n  polices:\n    - { contacts: { sms: ["+15550001111"] } }\nsensors:\n  - { id: hall-1, rooom: Hall }\nweb: { prot: 8081 }\n',
    );
    let err: unknown;
    try {
      loadCloudConfig({ file, env: {} });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'CLOUD_CONFIG_INVALID' });
    const msg = (err as Error).message;
    expect(msg).toContain('alerts.polices: unknown key (did you mean alerts.policies?) [from file');
    expect(msg).toContain('sensors.0.rooom: unknown key (did you mean sensors.0.room?)');
    expect(msg).toContain('web.prot: unknown key (did you mean web.port?)');
    expect(msg).toContain(file);
    // a name nothing resembles gets no suggestion
    expect(() => parseCloudConfig({ frobnicate: 1 }, 'test')).toThrow(
      /frobnicate: unknown key \[from test\]$/,
    );
  });

  it('rejects duplicate sensor ids and unreadable files with coded errors', () => {
    expect(() => loadCloudConfig({ env: { SCREAMWATCH_SENSORS: '[{"id":"a-1"},{"id":"a-1"}]' } })).toThrow(
      /sensors\.1\.id: duplicate/,
    );
    expect(() => loadCloudConfig({ file: join(dir, 'missing.yaml'), env: {} })).toThrow(
      expect.objectContaining({ code: 'CLOUD_CONFIG_UNREADABLE' }),
    );
  });

  it('derives one environment variable per key', () => {
    const vars = cloudEnvVariables();
    expect(vars.SCREAMWATCH_MQTT_SHARED_GROUP).toBe('mqtt.sharedGroup');
    expect(vars.SCREAMWATCH_MQTT_TLS_CERT_FILE).toBe('mqtt.tls.certFile');
    expect(vars.SCREAMWATCH_GEO_IP_DATABASE).toBe('geo.ipDatabase');
    expect(vars.SCREAMWATCH_ALERTS_SMTP_PASS).toBe('alerts.smtp.pass');
  });
});

describe('cloud/config/cloud.example.yaml', () => {
  it('is a valid config (the documented example cannot rot)', () => {
    const file = fileURLToPath(new URL('../../../cloud/config/cloud.example.yaml', import.meta.url));
    const c = loadCloudConfig({ file, env: {} });
    expect(c.sensors[0]?.id).toBe('hall-1');
    expect(c.alerts.policies[0]?.contacts.sms).toEqual(['+15550000000']);
    expect(c.mqtt.sensors[0]?.sensorId).toBe('hall-1');
  });
});
