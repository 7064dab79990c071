import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DaemonApp } from '../../daemon/app.ts';
import { runDaemonCommand } from '../../daemon/cli.ts';
import { screamSequenceWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { eventually } from '../support/eventually.ts';
import { startMosquitto } from '../support/mosquitto.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from './helpers.ts';

const run = promisify(execFile);

let fixtures: { dir: string; remove: () => Promise<void> };
let modelPath: string;
let oneScream: string;
const pki = { ca: '', serverCert: '', serverKey: '', clientCert: '', clientKey: '' };

/** A throwaway CA, a server cert for 127.0.0.1 and a client cert (openssl). */
async function makePki(dir: string): Promise<void> {
  const p = (n: string) => join(dir, n);
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=test-ca',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.crt'),
  ]);
  await writeFile(p('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const who of ['server', 'client']) {
    await run('openssl', [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${who === 'server' ? '127.0.0.1' : 'hall-1'}`,
      '-keyout',
      p(`${who}.key`),
      '-out',
      p(`${who}.csr`),
    ]);
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      p(`${who}.csr`),
      '-CA',
      p('ca.crt'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      p(`${who}.crt`),
      ...(who === 'server' ? ['-extfile', p('server.ext')] : []),
    ]);
  }
  Object.assign(pki, {
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
  });
}

beforeAll(async () => {
  fixtures = await tempDir('sw-fixtures-');
  modelPath = await tinyModelFile(fixtures.dir);
  oneScream = (await screamSequenceWav(fixtures.dir, 'one', 1, { gapS: 2 })).path;
  await makePki(fixtures.dir);
});
afterAll(() => fixtures.remove());

const teardown = new Teardown();
afterEach(() => teardown.run());

describe('MQTT over TLS (Mosquitto)', () => {
  it('connects with caFile + client certificate (mutual TLS) and delivers the event', async () => {
    const broker = await startMosquitto({
      configExtra: `cafile ${pki.ca}\ncertfile ${pki.serverCert}\nkeyfile ${pki.serverKey}\nrequire_certificate true`,
    });
    teardown.add(() => broker.stop());
    const state = await tempDir();
    teardown.add(state.remove);
    const app = new DaemonApp({
      config: daemonConfig({
        stateDir: state.dir,
        audio: { source: `file:${oneScream}`, fast: true },
        detection: { modelPath },
        mqtt: {
          url: `mqtts://127.0.0.1:${broker.port}`,
          caFile: pki.ca,
          certFile: pki.clientCert,
          keyFile: pki.clientKey,
        },
      }),
      logger: captureLogs().logger,
    });
    teardown.add(() => app.stop());
    await app.start();
    await eventually(
      () => app.stats().eventsConfirmed === 1 && app.outbox.depthOf('event') === 0,
      10_000,
      'event acknowledged over TLS',
    );
    expect(app.publisher.connects).toBeGreaterThanOrEqual(1);
  });

  it('without the client certificate the handshake fails: logged, retried, the event kept', async () => {
    const broker = await startMosquitto({
      configExtra: `cafile ${pki.ca}\ncertfile ${pki.serverCert}\nkeyfile ${pki.serverKey}\nrequire_certificate true`,
    });
    teardown.add(() => broker.stop());
    const state = await tempDir();
    teardown.add(state.remove);
    const logs = captureLogs();
    const app = new DaemonApp({
      config: daemonConfig({
        stateDir: state.dir,
        audio: { source: `file:${oneScream}`, fast: true },
        detection: { modelPath },
        mqtt: { url: `mqtts://127.0.0.1:${broker.port}`, caFile: pki.ca },
      }),
      logger: logs.logger,
      mqttReconnect: { initialDelayMs: 100, maxDelayMs: 200, multiplier: 2 },
    });
    teardown.add(() => app.stop());
    await app.start();
    await eventually(
      () => logs.find(/MQTT_CONNECT_FAILED/).length > 0 && app.stats().eventsConfirmed === 1,
      10_000,
      'TLS failure logged',
    );
    expect(String(logs.find(/MQTT_CONNECT_FAILED/)[0]!.msg)).toContain(`mqtts://127.0.0.1:${broker.port}`);
    expect(app.outbox.depthOf('event')).toBe(1);
    expect(app.publisher.connects).toBe(0);
  });

  it('an unreadable TLS file fails the start with exit 78, naming the key and the file', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const writes: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => {
      writes.push(String(s));
      return true;
    }) as typeof process.stderr.write;
    let code: number;
    try {
      code = await runDaemonCommand(
        ['--sensor-id', 'hall-1', '--source', `file:${oneScream}`, '--fast', '--state-dir', state.dir],
        {
          env: {
            SCREAMWATCH_MQTT_CA_FILE: '/nonexistent/ca.crt',
            SCREAMWATCH_DETECTION_MODEL_PATH: modelPath,
          },
          handleSignals: false,
          logger: captureLogs().logger,
        },
      );
    } finally {
      process.stderr.write = orig;
    }
    expect(code).toBe(78);
    expect(writes.join('')).toMatch(/mqtt\.caFile: cannot read \/nonexistent\/ca\.crt: ENOENT/);
  });
});
