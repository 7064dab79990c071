import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ExternalBroker } from '../../cloud/broker/external-broker.ts';
import { CloudConfigSchema } from '../../cloud/config/schema.ts';
import { DaemonApp } from '../../daemon/app.ts';
import { redactUrl } from '../../protocol/redact.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from '../daemon/helpers.ts';
import { startAedes } from '../support/aedes.ts';
import { silenceWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';
import { startMosquitto, writePasswordFile } from '../support/mosquitto.ts';

const SECRET = 'Sup3r-s3cret-PW';
const teardown = new Teardown();
afterEach(() => teardown.run());

describe('credentials in broker URLs never reach a log', () => {
  it('redactUrl keeps user and host, hides the password', () => {
    expect(redactUrl(`mqtt://hall-1:${SECRET}@cloud.example:1883`)).toBe(
      'mqtt://hall-1:***@cloud.example:1883',
    );
    expect(redactUrl('mqtts://cloud.example:8883')).toBe('mqtts://cloud.example:8883');
    expect(redactUrl(`not a url://u:${SECRET}@x`)).not.toContain(SECRET);
  });

  it('daemon: connected, refused and unreachable brokers, all logged without the password', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const modelPath = await tinyModelFile(state.dir);
    const wav = await silenceWav(join(state.dir, 'quiet.wav'), 1);
    const broker = await startAedes({ users: { 'hall-1': SECRET } });
    teardown.add(() => broker.stop());
    const dead = await freePort();
    const all: string[] = [];
    for (const url of [
      `mqtt://hall-1:${SECRET}@127.0.0.1:${broker.port}`,
      `mqtt://hall-1:${SECRET}x@127.0.0.1:${broker.port}`,
      `mqtt://hall-1:${SECRET}@127.0.0.1:${dead}`,
    ]) {
      const logs = captureLogs('trace');
      const app = new DaemonApp({
        config: daemonConfig({
          stateDir: join(state.dir, String(all.length)),
          audio: { source: `file:${wav}`, fast: true },
          detection: { modelPath },
          mqtt: { url },
        }),
        logger: logs.logger,
        mqttReconnect: { initialDelayMs: 50, maxDelayMs: 100, multiplier: 2 },
      });
      await app.start().catch((err: Error) => all.push(err.message));
      await eventually(
        () => logs.lines.some((l) => /MQTT_|connected to MQTT/.test(JSON.stringify(l))),
        5000,
        'a broker line',
      );
      await app.stop();
      all.push(...logs.lines.map((l) => JSON.stringify(l)));
    }
    expect(all.join('\n')).toMatch(/connected to MQTT broker/);
    expect(all.join('\n')).toMatch(/MQTT_AUTH_REFUSED/);
    expect(all.join('\n')).toMatch(/MQTT_CONNECT_FAILED/);
    expect(all.join('\n')).not.toContain(SECRET);
  }, 30_000);

  it('bridge on an external broker: connected and refused, logs and errors without the password', async () => {
    const dir = await tempDir();
    teardown.add(dir.remove);
    const passwordFile = await writePasswordFile(join(dir.dir, 'passwd'), { 'screamwatch-bridge': SECRET });
    const mosquitto = await startMosquitto({ passwordFile });
    teardown.add(() => mosquitto.stop());
    const lines: string[] = [];
    const logger = pino({ level: 'trace' }, { write: (s: string) => void lines.push(s) });
    const source = (url: string) =>
      new ExternalBroker({
        config: CloudConfigSchema.parse({ mqtt: { broker: url, clientId: 'redaction-test' } }).mqtt,
        logger,
        connectTimeoutMs: 1500,
      });
    const good = source(`mqtt://screamwatch-bridge:${SECRET}@127.0.0.1:${mosquitto.port}`);
    good.setHandler(async () => {});
    await good.start();
    await good.stop();
    const bad = source(`mqtt://screamwatch-bridge:${SECRET}-wrong@127.0.0.1:${mosquitto.port}`);
    bad.setHandler(async () => {});
    const err = (await bad.start().catch((e: unknown) => e)) as Error;
    await bad.stop();
    expect(err.message).toContain('screamwatch-bridge:***@127.0.0.1');
    expect(lines.join('\n')).toContain('connected to external MQTT broker');
    expect(`${lines.join('\n')}\n${err.message}\n${JSON.stringify(err)}`).not.toContain(SECRET);
  }, 30_000);
});
