import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { connectSensor, eventually, newEvent, publishEvent, startBridge, tempDir } from './bridge-harness.ts';

/**
 * `screamwatch cloud backup --out DIR`, as an operator runs it: a separate process beside a
 * running bridge that a sensor keeps publishing to. The copy is opened and counted, and a bridge
 * restored from it (the README's recipe) serves those events.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function backup(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', 'cloud/main.ts', 'backup', ...args],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, out, err })));
}

const count = (file: string, table: string): number => {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get() as number;
  } finally {
    db.close();
  }
};

describe('screamwatch cloud backup', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('copies events.sqlite and alerts.sqlite consistently while the bridge stores a steady stream of events; a bridge restored from the copy has them', async () => {
    const dir = await tempDir('sw-backup-');
    cleanups.push(() => dir.remove());
    const data = join(dir.path, 'data');
    const bridge = await startBridge({
      dataDir: data,
      mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true },
    });
    let bridgeStopped = false;
    cleanups.push(async () => {
      if (!bridgeStopped) await bridge.app.stop();
    });
    const client: MqttClient = await connectSensor(
      `mqtt://127.0.0.1:${bridge.app.brokerPorts!.tcp}`,
      undefined,
      undefined,
    );
    cleanups.push(() => client.endAsync(true));

    // A sensor publishing QoS 1 events one after the other (PUBACK = stored) until told to stop.
    let publishing = true;
    let acked = 0;
    const stream = (async () => {
      while (publishing) {
        await publishEvent(client, newEvent());
        acked++;
      }
    })();
    await eventually(() => acked >= 50, 20_000, '50 stored events');

    const out = join(dir.path, 'backups', 'first');
    mkdirSync(join(dir.path, 'backups'));
    const before = acked;
    const r = await backup(['--out', out, '--data-dir', data]);
    const after = acked;
    publishing = false;
    await stream;
    expect(r.code, r.err).toBe(0);
    // the bridge went on storing while the copy was taken
    expect(after).toBeGreaterThan(before);

    expect(readdirSync(out).sort()).toEqual(['alerts.sqlite', 'events.sqlite', 'manifest.json']);
    const events = count(join(out, 'events.sqlite'), 'events');
    // every event acknowledged before the backup started is in it, and at most what was stored
    // when it ended (+1: the one event in flight, stored but its PUBACK not yet seen here)
    expect(events).toBeGreaterThanOrEqual(before);
    expect(events).toBeLessThanOrEqual(after + 1);
    // the alert state was copied after the events: it has a decision for each of them
    expect(count(join(out, 'alerts.sqlite'), 'decisions')).toBeGreaterThanOrEqual(events);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as {
      files: { file: string; rows: number; schemaVersion: number }[];
    };
    expect(manifest.files.map((f) => [f.file, f.schemaVersion])).toEqual([
      ['events.sqlite', 1],
      ['alerts.sqlite', 1],
    ]);
    expect(manifest.files[0]!.rows).toBe(events);
    expect(r.out).toContain(`events.sqlite: ${events} events, schema version 1`);
    expect(r.out).toContain(`backup complete: ${out}`);
    for (const f of ['events.sqlite', 'alerts.sqlite']) {
      const db = new Database(join(out, f), { readonly: true });
      try {
        expect(db.pragma('quick_check', { simple: true })).toBe('ok');
        // one self-contained file per database, nothing to restore beside it
        expect(db.pragma('journal_mode', { simple: true })).toBe('delete');
      } finally {
        db.close();
      }
    }
    expect(readdirSync(join(dir.path, 'backups'))).toEqual(['first']);

    // Restore (README recipe): the bridge stopped, the copies in a data dir, the bridge started.
    bridgeStopped = true;
    await bridge.app.stop();
    const restored = join(dir.path, 'restored');
    mkdirSync(restored);
    for (const f of ['events.sqlite', 'alerts.sqlite']) await copyFile(join(out, f), join(restored, f));
    const again = await startBridge({ dataDir: restored, mqtt: { port: 0, host: '127.0.0.1' } });
    try {
      expect(await again.app.store.count()).toBe(events);
    } finally {
      await again.app.stop();
    }

    // A second backup into the same, now non-empty, directory is refused.
    const refused = await backup(['--out', out, '--data-dir', restored]);
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('[CLOUD_BACKUP_FAILED]');
    expect(refused.err).toContain('is not an empty directory');
  }, 90_000);

  it('with MONGODB_URI refuses with a clear message pointing at mongodump (exit 78), writing nothing', async () => {
    const dir = await tempDir('sw-backup-');
    cleanups.push(() => dir.remove());
    const out = join(dir.path, 'out');
    const r = await backup(['--out', out, '--data-dir', dir.path], {
      MONGODB_URI: 'mongodb://db.example.org/screamwatch',
    });
    expect(r.code).toBe(78);
    expect(r.err).toContain('[CLOUD_BACKUP_MONGODB]');
    expect(r.err).toContain('mongodump --uri "$MONGODB_URI"');
    expect(existsSync(out)).toBe(false);
  }, 30_000);

  it('without a store in the data dir says where it looked (and that MongoDB data needs mongodump)', async () => {
    const dir = await tempDir('sw-backup-');
    cleanups.push(() => dir.remove());
    writeFileSync(join(dir.path, 'unrelated'), '');
    const r = await backup(['--out', join(dir.path, 'out'), '--data-dir', dir.path]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`no event store at ${join(dir.path, 'events.sqlite')}`);
    expect(r.err).toContain('mongodump');
    expect(readdirSync(dir.path)).toEqual(['unrelated']);
  }, 30_000);
});
