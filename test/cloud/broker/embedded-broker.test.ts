import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../../cloud/broker/embedded-broker.ts';
import { CloudConfigSchema } from '../../../cloud/config/schema.ts';
import { sensorTopic } from '../../../protocol/topics.ts';
import { eventually } from '../../support/eventually.ts';
import { freePort } from '../../support/free-port.ts';
import { SENSOR_PASSWORD, sensorHash, tempDir } from '../bridge-harness.ts';

const logger = pino({ level: 'silent' });

async function mqttConfig(over: Record<string, unknown> = {}) {
  return CloudConfigSchema.parse({
    mqtt: {
      port: 0,
      host: '127.0.0.1',
      sensors: [{ sensorId: 'hall-1', passwordHash: await sensorHash() }],
      ...over,
    },
  }).mqtt;
}

describe('embedded broker', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir('sw-broker-');
  });
  afterAll(async () => {
    await dir.remove();
  });

  it('sends the PUBACK only once the handler has stored the message', async () => {
    const broker = new EmbeddedBroker({ config: await mqttConfig(), logger });
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const seen: string[] = [];
    broker.setHandler(async (topic) => {
      seen.push(topic);
      await gate;
    });
    await broker.start();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.tcp}`, {
      username: 'hall-1',
      password: SENSOR_PASSWORD,
      reconnectPeriod: 0,
    });
    try {
      let acked = false;
      const pub = client
        .publishAsync(sensorTopic('screamwatch', 'hall-1', 'events'), '{}', { qos: 1 })
        .then(() => {
          acked = true;
        });
      await eventually(() => seen.length === 1, 5000, 'handler called');
      await new Promise((r) => setTimeout(r, 200));
      expect(acked).toBe(false);
      release();
      await pub;
      expect(acked).toBe(true);
    } finally {
      await client.endAsync(true);
      await broker.stop();
    }
  });

  it('refuses the publish when storing fails, so the sensor sends it again', async () => {
    const broker = new EmbeddedBroker({ config: await mqttConfig(), logger });
    let calls = 0;
    broker.setHandler(async () => {
      calls += 1;
      if (calls === 1) throw new Error('disk full');
    });
    await broker.start();
    // mqtt.js keeps unacknowledged QoS 1 messages and resends them after reconnecting.
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.ports.tcp}`, {
      username: 'hall-1',
      password: SENSOR_PASSWORD,
      reconnectPeriod: 100,
      clean: false,
      clientId: 'hall-1-retry',
    });
    try {
      let closed = 0;
      client.on('close', () => (closed += 1));
      await client.publishAsync(sensorTopic('screamwatch', 'hall-1', 'events'), '{}', { qos: 1 });
      expect(calls).toBe(2);
      expect(closed).toBeGreaterThanOrEqual(1);
    } finally {
      await client.endAsync(true);
      await broker.stop();
    }
  });

  it('listens on TLS and WebSocket when configured', async () => {
    const cert = join(dir.path, 'cert.pem');
    const key = join(dir.path, 'key.pem');
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
    ]);
    const broker = new EmbeddedBroker({
      config: await mqttConfig({ tls: { port: 0, certFile: cert, keyFile: key }, wsPort: 0 }),
      logger,
    });
    const topics: string[] = [];
    broker.setHandler(async (topic) => {
      topics.push(topic);
    });
    await broker.start();
    try {
      expect(broker.ports.tls).toBeGreaterThan(0);
      expect(broker.ports.ws).toBeGreaterThan(0);
      const tls = await mqtt.connectAsync(`mqtts://127.0.0.1:${broker.ports.tls}`, {
        username: 'hall-1',
        password: SENSOR_PASSWORD,
        reconnectPeriod: 0,
        rejectUnauthorized: false,
      });
      await tls.publishAsync(sensorTopic('screamwatch', 'hall-1', 'heartbeat'), '{}', { qos: 1 });
      await tls.endAsync();
      const ws = await mqtt.connectAsync(`ws://127.0.0.1:${broker.ports.ws}/mqtt`, {
        username: 'hall-1',
        password: SENSOR_PASSWORD,
        reconnectPeriod: 0,
      });
      await ws.publishAsync(sensorTopic('screamwatch', 'hall-1', 'status'), '{}', { qos: 1 });
      await ws.endAsync();
      expect(topics).toEqual([
        sensorTopic('screamwatch', 'hall-1', 'heartbeat'),
        sensorTopic('screamwatch', 'hall-1', 'status'),
      ]);
    } finally {
      await broker.stop();
    }
  });

  it('a start that fails after the TCP listener is up closes it again (unreadable TLS certificate)', async () => {
    const port = await freePort();
    const broker = new EmbeddedBroker({
      config: await mqttConfig({
        port,
        tls: { port: 0, certFile: '/nonexistent/cert.pem', keyFile: '/nonexistent/key.pem' },
      }),
      logger,
    });
    await expect(broker.start()).rejects.toMatchObject({
      code: 'CLOUD_TLS_FILE_UNREADABLE',
      message: expect.stringContaining('/nonexistent/cert.pem'),
    });
    // the port is free again: a new listener can take it
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  it('names host:port when the port is taken', async () => {
    const first = new EmbeddedBroker({ config: await mqttConfig(), logger });
    await first.start();
    try {
      const second = new EmbeddedBroker({ config: await mqttConfig({ port: first.ports.tcp }), logger });
      await expect(second.start()).rejects.toMatchObject({
        code: 'CLOUD_BROKER_LISTEN_FAILED',
        message: expect.stringContaining(`127.0.0.1:${first.ports.tcp}`),
      });
      await second.stop();
    } finally {
      await first.stop();
    }
  });
});
