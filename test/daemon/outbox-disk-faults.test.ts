import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DaemonApp } from '../../daemon/app.ts';
import { Outbox } from '../../daemon/outbox/outbox.ts';
import { OutboxStore } from '../../daemon/outbox/outbox-store.ts';
import { MqttPublisher } from '../../daemon/publish/mqtt-publisher.ts';
import type { EventMessage, HeartbeatMessage, StatusMessage } from '../../protocol/messages.ts';
import { startAedes } from '../support/aedes.ts';
import { screamSequenceWav, tinyModelFile } from '../support/audio-fixtures.ts';
import { canMount, loopExt4, smallTmpfs } from '../support/disk-faults.ts';
import { eventually } from '../support/eventually.ts';
import { freePort } from '../support/free-port.ts';
import { captureLogs, daemonConfig, Teardown, tempDir } from './helpers.ts';

let fixtures: { dir: string; remove: () => Promise<void> };
let modelPath: string;
let threeScreams: string;

beforeAll(async () => {
  fixtures = await tempDir('sw-fixtures-');
  modelPath = await tinyModelFile(fixtures.dir);
  threeScreams = (await screamSequenceWav(fixtures.dir, 'three', 3, { gapS: 2 })).path;
});
afterAll(() => fixtures.remove());

const teardown = new Teardown();
afterEach(() => teardown.run());

const fast = { initialDelayMs: 50, maxDelayMs: 200, multiplier: 2 };
const TOPIC = 'screamwatch/sensors/hall-1/events';

function startApp(stateDir: string, url: string, extra: Partial<Parameters<typeof daemonConfig>[0]> = {}) {
  const logs = captureLogs();
  const app = new DaemonApp({
    config: daemonConfig({
      stateDir,
      audio: { source: `file:${threeScreams}`, fast: true },
      detection: { modelPath },
      mqtt: { url },
      outbox: { retry: fast },
      ...extra,
    }),
    logger: logs.logger,
    mqttReconnect: fast,
  });
  teardown.add(() => app.stop());
  const committed: EventMessage[] = [];
  app.on('committed', (_id: number, m: EventMessage) => committed.push(m));
  const ended = new Promise<void>((r) => app.once('source-end', () => r()));
  return { app, logs, committed, ended };
}

const payloads = <T>(messages: { topic: string; payload: Buffer }[], suffix: string) =>
  messages.filter((m) => m.topic.endsWith(suffix)).map((m) => JSON.parse(m.payload.toString()) as T);

function outboxOn(dir: string, memoryMaxRows = 1000) {
  const logs = captureLogs();
  const outbox = new Outbox({
    stateDir: dir,
    maxRows: 1000,
    memoryMaxRows,
    retry: fast,
    logger: logs.logger,
    clock: { now: () => Date.now() },
    checkIntervalMs: 50,
  });
  outbox.open();
  teardown.add(() => outbox.close());
  return { outbox, logs };
}

describe.skipIf(!canMount)('outbox on a failing disk (real tmpfs / ext4 loop mounts, root)', () => {
  it('start-up on a full disk: comes up, detects, publishes directly with QoS 1, says outboxWritable false; recovers when space frees', async () => {
    const disk = smallTmpfs(1024);
    teardown.add(() => disk.unmount());
    disk.fill();
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const { app, logs, ended } = startApp(join(disk.dir, 'state'), broker.url);
    await app.start(); // before: SQLITE_FULL thrown at the boot heartbeat, a crash loop
    await ended;
    await broker.waitFor((m) => payloads(m, '/events').length >= 3, 10_000);
    await eventually(() => app.outbox.depth === 0, 5000, 'PUBACKs for the memory rows');
    expect(app.stats().eventsConfirmed).toBe(3);
    const failures = logs.find(/OUTBOX_WRITE_FAILED/);
    expect(failures).toHaveLength(1); // once, with the reason, not per event
    expect(String(failures[0]!.reason)).toMatch(/^SQLITE_(FULL|IOERR|CANTOPEN)/);
    expect(logs.find(/event held in memory/)).toHaveLength(3);
    app.beat();
    await broker.waitFor((m) =>
      payloads<HeartbeatMessage>(m, '/heartbeat').some((h) => h.outboxWritable === false),
    );
    const status = payloads<StatusMessage>(broker.messages, '/status').at(-1)!;
    expect(status).toMatchObject({ state: 'online', outboxWritable: false });

    disk.free();
    await eventually(() => app.outbox.writable, 5000, 'the disk retried and writable again');
    await broker.waitFor((m) => payloads<StatusMessage>(m, '/status').at(-1)?.outboxWritable === true);
    expect(logs.find(/OUTBOX_WRITABLE/)).toHaveLength(1);
    app.beat();
    await broker.waitFor((m) => payloads<HeartbeatMessage>(m, '/heartbeat').at(-1)?.outboxWritable === true);
  }, 30_000);

  it('disk fills while running and the broker is down: events wait in memory, go to disk once it frees, survive a restart', async () => {
    const disk = smallTmpfs(1024);
    teardown.add(() => disk.unmount());
    const stateDir = join(disk.dir, 'state');
    const port = await freePort();
    // an outbox that worked, with one queued event, then the card fills up
    const pre = new OutboxStore(stateDir, { maxRows: 100 });
    pre.add('event', TOPIC, Buffer.from('{"queued":true}'), 1, '01HZY0000000000000000000AA');
    pre.close();
    disk.fill();
    const first = startApp(stateDir, `mqtt://127.0.0.1:${port}`);
    await first.app.start();
    await first.ended;
    expect(first.committed).toHaveLength(3);
    expect(first.app.outbox.writable).toBe(false);
    expect(first.app.outbox.memoryDepth).toBeGreaterThanOrEqual(3);
    // SQLite cannot even open the file without room for its -shm: the queued row stays on
    // disk, untouched, and shows again once the disk has room
    expect(first.app.outbox.depthOf('event')).toBe(3);
    disk.free();
    await eventually(
      () => first.app.outbox.writable && first.app.outbox.memoryDepth === 0,
      5000,
      'memory rows on disk',
    );
    expect(first.app.outbox.depthOf('event')).toBe(4);
    await first.app.stop();
    const after = new OutboxStore(stateDir, { maxRows: 100 });
    expect(after.depthOf('event')).toBe(4);
    after.close();

    const broker = await startAedes({ port });
    teardown.add(() => broker.stop());
    const second = startApp(stateDir, broker.url, { audio: { source: `file:${threeScreams}`, fast: true } });
    await second.app.start();
    await second.ended;
    const ids = new Set(payloads<{ eventId: string }>(broker.messages, '/events').map((e) => e.eventId));
    await eventually(() => second.app.outbox.depth === 0, 10_000, 'all delivered');
    const delivered = new Set(
      payloads<{ eventId?: string }>(broker.messages, '/events').map((e) => e.eventId),
    );
    for (const e of first.committed) expect(delivered.has(e.eventId)).toBe(true);
    expect(ids.size).toBeGreaterThan(0);
  }, 40_000);

  it('ext4 remounted read-only while running: the next event goes out directly, OUTBOX_WRITE_FAILED once; a restart on the read-only disk still detects', async () => {
    const disk = loopExt4();
    teardown.add(() => disk.unmount());
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const { outbox, logs } = outboxOn(disk.dir);
    const publisher = new MqttPublisher({
      mqtt: daemonConfig({ stateDir: disk.dir, mqtt: { url: broker.url } }).mqtt,
      sensorId: 'hall-1',
      topicRoot: 'screamwatch',
      modelVersion: 'test',
      outbox,
      outboxWritable: () => outbox.writable,
      clock: { now: () => Date.now() },
      logger: logs.logger,
      reconnect: fast,
    });
    teardown.add(() => publisher.stop(500));
    expect(outbox.add('event', TOPIC, Buffer.from('{"n":1}'), 1, 'E1').memory).toBe(false);
    disk.remountReadOnly();
    const second = outbox.add('event', TOPIC, Buffer.from('{"n":2}'), 2, 'E2');
    expect(second.memory).toBe(true);
    expect(outbox.add('heartbeat', 'screamwatch/sensors/hall-1/heartbeat', Buffer.from('{}'), 3).memory).toBe(
      true,
    );
    expect(outbox.writable).toBe(false);
    await publisher.start();
    await broker.waitFor((m) => payloads(m, '/events').length >= 2);
    expect(payloads<{ n: number }>(broker.messages, '/events').map((e) => e.n)).toEqual([1, 2]);
    await eventually(() => outbox.memoryDepth === 0, 5000, 'memory rows acknowledged');
    // the acknowledged disk row cannot be deleted on a read-only disk, but is not sent again
    expect(outbox.depth).toBe(0);
    expect(logs.find(/OUTBOX_WRITE_FAILED/)).toHaveLength(1);
    expect(String(logs.find(/OUTBOX_WRITE_FAILED/)[0]!.reason)).toMatch(/^SQLITE_(IOERR|READONLY)/);
    await publisher.stop(500);
    outbox.close();

    const { app, ended } = startApp(disk.dir, broker.url);
    await app.start();
    await ended;
    await broker.waitFor((m) => payloads(m, '/events').length >= 2 + 3, 10_000);
    expect(app.outbox.writable).toBe(false);
  }, 30_000);

  it('a full memory queue sheds heartbeats and reports first, then the oldest event, counted in outboxLost', async () => {
    const disk = smallTmpfs(512);
    teardown.add(() => disk.unmount());
    const { outbox, logs } = outboxOn(join(disk.dir, 'state'), 10);
    disk.fill();
    outbox.add('heartbeat', 'hb', Buffer.from('1'), 1);
    outbox.add('report', TOPIC, Buffer.from('r'), 2, 'R1');
    for (let i = 0; i < 10; i++) outbox.add('event', TOPIC, Buffer.from(`e${i}`), 10 + i, `E${i}`);
    expect(outbox.depthOf('heartbeat') + outbox.depthOf('report')).toBe(0);
    expect(outbox.lost).toBe(0);
    outbox.add('event', TOPIC, Buffer.from('e10'), 30, 'E10');
    expect(outbox.lost).toBe(1);
    expect(outbox.peek(0, 100).map((r) => r.eventId)).toEqual([
      'E1',
      'E2',
      'E3',
      'E4',
      'E5',
      'E6',
      'E7',
      'E8',
      'E9',
      'E10',
    ]);
    expect(logs.find(/memory queue is full/)[0]!.eventId).toBe('E0');
  });
});

describe('outbox file deleted or corrupt', () => {
  it('deleted while running: detected, recreated, every queued row recovered into the new file', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const { outbox, logs } = outboxOn(state.dir);
    for (const id of ['A', 'B', 'C']) outbox.add('event', TOPIC, Buffer.from(id), 1, id);
    const path = join(state.dir, 'outbox.sqlite');
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    await eventually(() => existsSync(path), 2000, 'the inode check recreated the file');
    expect(logs.find(/OUTBOX_CORRUPT/)[0]!.msg).toMatch(
      /deleted while running: .*3 queued row\(s\) recovered, 0 lost/,
    );
    outbox.add('event', TOPIC, Buffer.from('D'), 2, 'D');
    expect(outbox.lost).toBe(0);
    outbox.close();
    const reopened = new OutboxStore(state.dir, { maxRows: 100 });
    expect(reopened.peek(0, 10).map((r) => r.eventId)).toEqual(['A', 'B', 'C', 'D']);
    reopened.close();
  });

  it('a PUBACK for a row of the deleted file removes its recovered copy', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    const { outbox } = outboxOn(state.dir);
    const a = outbox.add('event', TOPIC, Buffer.from('A'), 1, 'A').id!;
    outbox.add('event', TOPIC, Buffer.from('B'), 1, 'B');
    const path = join(state.dir, 'outbox.sqlite');
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    outbox.add('event', TOPIC, Buffer.from('C'), 2, 'C'); // detects the deletion first
    outbox.remove(a); // the ack of a row published before the file vanished
    expect(outbox.peek(0, 10).map((r) => r.eventId)).toEqual(['B', 'C']);
  });

  it('corrupt at start: moved aside as outbox.corrupt-<time>.sqlite, a fresh outbox opens, the daemon starts (no exit 78)', async () => {
    const state = await tempDir();
    teardown.add(state.remove);
    writeFileSync(join(state.dir, 'outbox.sqlite'), Buffer.alloc(8192, 0x5a));
    const broker = await startAedes();
    teardown.add(() => broker.stop());
    const { app, logs, ended } = startApp(state.dir, broker.url);
    await app.start();
    await ended;
    await broker.waitFor((m) => payloads(m, '/events').length >= 3, 10_000);
    const aside = readdirSync(state.dir).filter((f) => /^outbox\.corrupt-.*\.sqlite$/.test(f));
    expect(aside).toHaveLength(1);
    expect(String(logs.find(/OUTBOX_CORRUPT/)[0]!.movedTo)).toContain(aside[0]);
    expect(app.outbox.writable).toBe(true);
  }, 20_000);
});
