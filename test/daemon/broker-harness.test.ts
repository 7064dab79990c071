import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { startAedes } from '../support/aedes.ts';
import { startMosquitto, writePasswordFile } from '../support/mosquitto.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function publishOnce(url: string, opts: mqtt.IClientOptions = {}): Promise<void> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...opts });
  try {
    await client.publishAsync('t/x', 'hello', { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

describe('broker harnesses', () => {
  it('aedes records publishes and enforces users', async () => {
    const broker = await startAedes({ users: { sensor: 'right' } });
    cleanups.push(() => broker.stop());
    await publishOnce(broker.url, { username: 'sensor', password: 'right' });
    await broker.waitFor((m) => m.some((x) => x.topic === 't/x'), 2000);
    await expect(publishOnce(broker.url, { username: 'sensor', password: 'wrong' })).rejects.toThrow(
      /Bad username or password/i,
    );
  });

  it('mosquitto starts on a free port with a password file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sw-harness-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const passwordFile = await writePasswordFile(join(dir, 'passwd'), { sensor: 'right' });
    const broker = await startMosquitto({ passwordFile });
    cleanups.push(() => broker.stop());
    await publishOnce(broker.url, { username: 'sensor', password: 'right' });
    await expect(publishOnce(broker.url, { username: 'sensor', password: 'wrong' })).rejects.toThrow(
      /not authorized|bad user/i,
    );
  });
});
