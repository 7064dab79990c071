import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SensorHistory } from '../../../cloud/ingest/sensor-history.ts';

const H = 3_600_000;
const MIN = 60_000;
const T0 = Date.parse('2026-12-01T00:00:00.000Z');

describe('sensor history (the sensor page: 24 h / 7 d of heartbeats and states)', () => {
  const dirs: string[] = [];
  const open = (opts: { retentionDays?: number; maxStatesPerSensor?: number } = {}) => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-history-'));
    dirs.push(dir);
    const h = new SensorHistory({ path: join(dir, 'h.sqlite'), ...opts });
    h.open();
    return { h, path: join(dir, 'h.sqlite') };
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('folds heartbeats into 5-minute buckets (24 h) and hours (7 d): level min/mean/max, highest probability', () => {
    const { h } = open();
    h.heartbeat('hall-1', T0 + 1 * MIN, -50, 0.1);
    h.heartbeat('hall-1', T0 + 2 * MIN, -40, 0.8);
    h.heartbeat('hall-1', T0 + 6 * MIN, -45, 0.2);
    h.heartbeat('yard-2', T0 + 2 * MIN, -10, 0.99);
    const day = h.history('hall-1', '24h', T0 + 10 * MIN);
    expect(day.bucketS).toBe(300);
    expect(day.buckets).toEqual([
      {
        at: new Date(T0).toISOString(),
        n: 2,
        levelMinDbfs: -50,
        levelMaxDbfs: -40,
        levelMeanDbfs: -45,
        maxProbability: 0.8,
      },
      {
        at: new Date(T0 + 5 * MIN).toISOString(),
        n: 1,
        levelMinDbfs: -45,
        levelMaxDbfs: -45,
        levelMeanDbfs: -45,
        maxProbability: 0.2,
      },
    ]);
    const week = h.history('hall-1', '7d', T0 + 10 * MIN);
    expect(week.bucketS).toBe(3600);
    expect(week.buckets).toEqual([
      {
        at: new Date(T0).toISOString(),
        n: 3,
        levelMinDbfs: -50,
        levelMaxDbfs: -40,
        levelMeanDbfs: -45,
        maxProbability: 0.8,
      },
    ]);
    // 24 h means 24 h: a bucket from two days ago is not in it
    expect(h.history('hall-1', '24h', T0 + 48 * H).buckets).toEqual([]);
    h.close();
  });

  it('records state changes only, and gives periods clipped to the range (the state at its start included)', () => {
    const { h, path } = open();
    h.state('hall-1', 'online', T0);
    h.state('hall-1', 'online', T0 + H); // no change: no row
    h.state('hall-1', 'degraded', T0 + 30 * H);
    h.state('hall-1', 'offline', T0 + 31 * H);
    h.state('hall-1', 'online', T0 + 32 * H);
    const r = h.history('hall-1', '24h', T0 + 40 * H);
    expect(r.periods).toEqual([
      { state: 'online', from: new Date(T0 + 16 * H).toISOString(), to: new Date(T0 + 30 * H).toISOString() },
      {
        state: 'degraded',
        from: new Date(T0 + 30 * H).toISOString(),
        to: new Date(T0 + 31 * H).toISOString(),
      },
      {
        state: 'offline',
        from: new Date(T0 + 31 * H).toISOString(),
        to: new Date(T0 + 32 * H).toISOString(),
      },
      { state: 'online', from: new Date(T0 + 32 * H).toISOString(), to: null },
    ]);
    h.close();
    // after a restart the last state is known: the same state again adds nothing
    const again = new SensorHistory({ path });
    again.open();
    again.state('hall-1', 'online', T0 + 41 * H);
    expect(again.history('hall-1', '24h', T0 + 42 * H).periods).toHaveLength(4);
    again.close();
    const rows = new Database(path).prepare('SELECT COUNT(*) AS n FROM states').get() as { n: number };
    expect(rows.n).toBe(4);
  });

  it('stays bounded: rows past the retention are pruned, a flapping sensor keeps its last N changes', () => {
    const { h, path } = open({ retentionDays: 1, maxStatesPerSensor: 10 });
    for (let i = 0; i < 200; i++) h.state('flappy', i % 2 ? 'offline' : 'online', T0 + i * MIN);
    const db = new Database(path);
    const states = () =>
      (db.prepare("SELECT COUNT(*) AS n FROM states WHERE sensor_id = 'flappy'").get() as { n: number }).n;
    expect(states()).toBe(10);
    for (let i = 0; i < 3 * 24; i++) h.heartbeat('hall-1', T0 + i * H, -40, 0.1);
    // past the retention only the last change is kept: what the sensor was at the range's start
    expect(states()).toBe(1);
    expect(h.history('flappy', '24h', T0 + 71 * H).periods).toEqual([
      { state: 'offline', from: new Date(T0 + 47 * H).toISOString(), to: null },
    ]);
    const buckets = db.prepare('SELECT MIN(bucket_ms) AS first FROM buckets').get() as { first: number };
    // pruned hourly to one day before the last heartbeat
    expect(buckets.first).toBeGreaterThanOrEqual(T0 + 71 * H - 24 * H - H);
    db.close();
    h.close();
  });

  it('creates its folder: with MongoDB for events and alerts it is the only local file in dataDir', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-history-'));
    dirs.push(dir);
    const h = new SensorHistory({ path: join(dir, 'not', 'yet', 'h.sqlite') });
    h.open();
    h.heartbeat('hall-1', T0, -40, 0.1);
    expect(h.history('hall-1', '24h', T0 + MIN).buckets).toHaveLength(1);
    h.close();
  });

  it('track() samples the registry: degraded = online and not hearing; close() stops it', async () => {
    const { h } = open();
    let now = T0;
    const views = [{ id: 'hall-1', status: 'online' as const, degraded: false }];
    const errors: unknown[] = [];
    h.track(
      () => views,
      () => now,
      (err) => errors.push(err),
      10,
    );
    now += MIN;
    views[0]!.degraded = true;
    await new Promise((r) => setTimeout(r, 60));
    h.close();
    // closed: later samples would throw inside; they must not run at all (no timer left)
    views[0]!.degraded = false;
    await new Promise((r) => setTimeout(r, 30));
    const reopened = new SensorHistory({
      path: (h as unknown as { options: { path: string } }).options.path,
    });
    reopened.open();
    expect(reopened.history('hall-1', '24h', now).periods.map((p) => p.state)).toEqual([
      'online',
      'degraded',
    ]);
    reopened.close();
    expect(errors).toEqual([]);
  });

  it('a sample that fails is reported once per run of failures and tried again', async () => {
    const { h } = open();
    const errors: unknown[] = [];
    let failures = 3;
    h.track(
      () => {
        if (failures-- > 0) throw new Error('registry unavailable');
        return [{ id: 'hall-1', status: 'offline' as const }];
      },
      () => T0,
      (err) => errors.push(err),
      10,
    );
    await new Promise((r) => setTimeout(r, 120));
    expect(errors.map((e) => (e as Error).message)).toEqual(['registry unavailable']);
    expect(h.history('hall-1', '24h', T0 + MIN).periods.map((p) => p.state)).toEqual(['offline']);
    h.close();
  });
});
