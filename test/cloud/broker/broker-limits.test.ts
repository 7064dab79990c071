import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { PasswordGate } from '../../../cloud/auth/password-gate.ts';
import { hashPassword } from '../../../cloud/auth/passwords.ts';
import { eventually } from '../../support/eventually.ts';
import { freePort } from '../../support/free-port.ts';
import {
  connectSensor,
  newEvent,
  publishEvent,
  SENSOR_PASSWORD,
  sensorHash,
  startBridge,
  tempDir,
} from '../bridge-harness.ts';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

const closed = (s: Socket) =>
  new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

describe('embedded broker limits (the bridge as a process)', () => {
  it('hostile clients declaring 256 MB PUBLISHes are cut at the header: RSS stays within 50 MB, a sensor still publishes', async () => {
    const dir = await tempDir('sw-limits-');
    cleanups.push(() => dir.remove());
    const port = await freePort();
    const child: ChildProcess = spawn(
      process.execPath,
      ['--import', 'tsx', 'cloud/main.ts', '--mqtt-port', String(port), '--data-dir', dir.path],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          SCREAMWATCH_MQTT_ALLOW_ANONYMOUS: 'true',
          SCREAMWATCH_MQTT_HOST: '127.0.0.1',
          SCREAMWATCH_WEB_PORT: '0',
          SCREAMWATCH_WEB_HOST: '127.0.0.1',
          SCREAMWATCH_MQTT_CONNECT_TIMEOUT_MS: '1000',
          SCREAMWATCH_MQTT_MAX_PENDING_PER_IP: '8',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    await eventually(() => out.includes('cloud bridge running'), 30_000, `bridge running (${out})`);
    const baseline = rssBytes(child.pid!);

    // 1. 256 MB declared: 0x30 (PUBLISH) + remaining length 0xFF 0xFF 0xFF 0x7F, then bytes.
    //    Before the fix each connection buffered everything it was sent (341 MB -> 1.1 GB).
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(child.pid!))), 25);
    cleanups.push(() => clearInterval(sampler));
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    const hostile = async () => {
      const s = await openSocket(port);
      s.on('error', () => {});
      // a valid CONNECT first, then the huge PUBLISH header: authentication does not help
      s.write(
        Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]),
      );
      s.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]));
      let sent = 0;
      while (!s.destroyed && sent < 128) {
        if (!s.write(chunk)) await new Promise((r) => setTimeout(r, 5));
        sent++;
      }
      await closed(s);
      return sent;
    };
    const rawPublish = async () => {
      // not even a CONNECT: the first packet is the 256 MB PUBLISH
      const s = await openSocket(port);
      s.on('error', () => {});
      s.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]));
      for (let i = 0; i < 64 && !s.destroyed; i++) s.write(chunk);
      await closed(s);
    };
    const sent = await Promise.all([hostile(), hostile(), hostile(), hostile()]);
    await Promise.all([rawPublish(), rawPublish()]);
    clearInterval(sampler);
    expect(sent.every((n) => n < 128)).toBe(true); // the bridge closed them, they did not finish
    expect(peak - baseline).toBeLessThan(50 * 1024 * 1024);

    // 2. A connection that never sends its CONNECT is dropped after mqtt.connectTimeoutMs.
    const idle = await openSocket(port);
    idle.on('error', () => {});
    await eventually(() => idle.destroyed || idle.readableEnded, 5000, 'idle socket dropped');

    // 3. At most maxPendingPerIp connections waiting for CONNECT per IP.
    const waiting = await Promise.all(Array.from({ length: 12 }, () => openSocket(port)));
    for (const s of waiting) s.on('error', () => {});
    await new Promise((r) => setTimeout(r, 300));
    const cut = waiting.filter((s) => s.destroyed || s.readableEnded).length;
    expect(cut).toBeGreaterThanOrEqual(4);
    for (const s of waiting) s.destroy();

    // 4. A real sensor still gets its PUBACK and the event is stored.
    const sensor = await connectSensor(`mqtt://127.0.0.1:${port}`, undefined, undefined);
    const ev = newEvent();
    await publishEvent(sensor, ev);
    await sensor.endAsync();
    await eventually(() => out.includes(ev.eventId), 10_000, 'event stored');
    expect(out).toContain('MQTT_PACKET_REFUSED');
  }, 60_000);
});

describe('embedded broker identity', () => {
  it('a sensor cannot take another sensor`s client id (or one another identity holds): refused, the owner stays connected', async () => {
    const dir = await tempDir('sw-takeover-');
    cleanups.push(() => dir.remove());
    const { app, logs } = await startBridge({
      dataDir: dir.path,
      mqtt: {
        port: 0,
        host: '127.0.0.1',
        sensors: [
          { sensorId: 'hall-1', passwordHash: await sensorHash() },
          { sensorId: 'yard-2', passwordHash: await hashPassword('yard-2-pw') },
        ],
      },
      sensors: [{ id: 'hall-1' }, { id: 'yard-2' }],
    });
    cleanups.push(() => app.stop());
    const url = `mqtt://127.0.0.1:${app.brokerPorts!.tcp}`;
    const hall = await mqtt.connectAsync(url, {
      clientId: 'screamwatch-hall-1',
      username: 'hall-1',
      password: SENSOR_PASSWORD,
      reconnectPeriod: 0,
    });
    cleanups.push(() => hall.endAsync(true));
    let hallClosed = 0;
    hall.on('close', () => hallClosed++);
    const attempt = (clientId: string) =>
      mqtt.connectAsync(url, { clientId, username: 'yard-2', password: 'yard-2-pw', reconnectPeriod: 0 });
    for (let i = 0; i < 5; i++) {
      await expect(attempt('screamwatch-hall-1')).rejects.toMatchObject({ code: 2 });
    }
    // an id outside the screamwatch-<sensorId> scheme belongs to whoever holds it
    const other = await mqtt.connectAsync(url, {
      clientId: 'hall-1-tool',
      username: 'hall-1',
      password: SENSOR_PASSWORD,
      reconnectPeriod: 0,
    });
    cleanups.push(() => other.endAsync(true));
    await expect(attempt('hall-1-tool')).rejects.toMatchObject({ code: 2 });
    await new Promise((r) => setTimeout(r, 200));
    expect(hallClosed).toBe(0);
    expect(hall.connected && other.connected).toBe(true);
    expect(
      logs.find('MQTT login refused: client id belongs to another identity (takeover refused)').length,
    ).toBe(6);
    // its own id is fine
    const yard = await attempt('screamwatch-yard-2');
    await yard.endAsync();
  }, 30_000);

  it('wrong-password floods are refused without hashing once over the limit; a sensor that verified recently reconnects from the cache', async () => {
    const dir = await tempDir('sw-scrypt-');
    cleanups.push(() => dir.remove());
    let hashes = 0;
    const gate = new PasswordGate({ failuresPerIp: 10, failuresPerUser: 10 });
    const { app } = await startBridge(
      {
        dataDir: dir.path,
        mqtt: {
          port: 0,
          host: '127.0.0.1',
          sensors: [{ sensorId: 'hall-1', passwordHash: await sensorHash() }],
        },
        sensors: [{ id: 'hall-1' }],
      },
      { passwordGate: countingGate(gate, () => hashes++) },
    );
    cleanups.push(() => app.stop());
    const url = `mqtt://127.0.0.1:${app.brokerPorts!.tcp}`;
    const good = await connectSensor(url, 'hall-1', SENSOR_PASSWORD);
    await good.endAsync();
    const before = hashes;
    const bad = await Promise.allSettled(
      Array.from({ length: 100 }, () => connectSensor(url, 'hall-1', 'wrong-password')),
    );
    expect(bad.every((r) => r.status === 'rejected')).toBe(true);
    // 100 attempts, at most the limit (plus what was already queued) cost a hash
    expect(hashes - before).toBeLessThanOrEqual(10 + 2);
    const again = await connectSensor(url, 'hall-1', SENSOR_PASSWORD);
    expect(again.connected).toBe(true);
    await again.endAsync();
  }, 30_000);
});

/** A gate whose verifications are counted (how many scrypt runs the flood caused). */
function countingGate(gate: PasswordGate, onHash: () => void): PasswordGate {
  const check = gate.check.bind(gate);
  gate.check = (ip, username, password, hash, verify) =>
    check(ip, username, password, hash, () => {
      onHash();
      return verify();
    });
  return gate;
}

describe('PasswordGate', () => {
  it('runs at most `concurrency` checks at once and refuses past the queue', async () => {
    const gate = new PasswordGate({
      concurrency: 2,
      maxQueued: 3,
      failuresPerIp: 1000,
      failuresPerUser: 1000,
    });
    let running = 0;
    let maxRunning = 0;
    const verify = async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return false;
    };
    const verdicts = await Promise.all(
      Array.from({ length: 8 }, (_, i) => gate.check(`10.0.0.${i}`, `u${i}`, 'pw', 'h', verify)),
    );
    expect(maxRunning).toBe(2);
    expect(verdicts.filter((v) => v === 'busy')).toHaveLength(3);
    expect(verdicts.filter((v) => v === 'wrong')).toHaveLength(5);
  });

  it('counts failures per IP and per username within the window; the window passes', async () => {
    let now = 0;
    const gate = new PasswordGate({ failuresPerIp: 3, failuresPerUser: 2, windowMs: 1000, now: () => now });
    const no = async () => false;
    expect(await gate.check('1.1.1.1', 'a', 'x', 'h', no)).toBe('wrong');
    expect(await gate.check('1.1.1.1', 'a', 'x', 'h', no)).toBe('wrong');
    expect(await gate.check('2.2.2.2', 'a', 'x', 'h', no)).toBe('rate-limited'); // user a
    expect(await gate.check('1.1.1.1', 'b', 'x', 'h', no)).toBe('wrong');
    expect(await gate.check('1.1.1.1', 'c', 'x', 'h', no)).toBe('rate-limited'); // the IP
    now = 1001;
    expect(await gate.check('1.1.1.1', 'a', 'x', 'h', async () => true)).toBe('ok');
  });
});
