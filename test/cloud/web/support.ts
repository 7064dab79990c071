import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { hashPassword } from '../../../cloud/auth/passwords.ts';
import { SensorHistory } from '../../../cloud/ingest/sensor-history.ts';
import { ObservedEventStore } from '../../../cloud/store/observed-store.ts';
import { SqliteEventStore } from '../../../cloud/store/sqlite-store.ts';
import type { ChannelDelivery, EventStore, StoredEvent } from '../../../cloud/store/types.ts';
import { createWebService } from '../../../cloud/web/server.ts';
import type { SensorView, WebConfig, WebDeps, WebService } from '../../../cloud/web/types.ts';
import { FEATURE_SET, WINDOW_FEATURE_NAMES } from '../../../core/features/window-features.ts';
import { MODEL_FORMAT, ScreamModel } from '../../../core/model/scream-model.ts';
import { UlidFactory } from '../../../protocol/event-id.ts';

/**
 * A deterministic one-tree model: "scream" when the window's mean spectral centroid is
 * above 750 Hz. The shipped model is retrained while we work, so dashboard tests must not
 * depend on its accuracy; this one fires on the sox tone fixtures below and not on a
 * low hum or quiet noise, which is all the plumbing tests need.
 */
export function pitchModel(threshold = 0.5): ScreamModel {
  const col = WINDOW_FEATURE_NAMES.indexOf('centroidMean');
  if (col < 0) throw new Error('centroidMean feature missing');
  const treeOptions = {
    gainFunction: 'gini',
    splitFunction: 'mean',
    minNumSamples: 3,
    maxDepth: 3,
    gainThreshold: 0,
    kind: 'classifier',
  };
  const root = {
    splitValue: 750,
    splitColumn: col,
    left: { distribution: [[1, 0]] },
    right: { distribution: [[0, 1]] },
  };
  // Four identical trees. (ml-random-forest 2.1's predictProbability seeds its vote
  // count with the first tree's class label instead of 0, so a lone tree scores ~0 and the
  // first tree's vote never counts; ScreamModel.predict counts the votes itself, so a
  // "scream" window scores 1.)
  const trees = Array.from({ length: 4 }, () => ({ options: treeOptions, root, name: 'DTClassifier' }));
  return ScreamModel.fromJSON({
    format: MODEL_FORMAT,
    version: 'test-centroid-750',
    featureNames: [...WINDOW_FEATURE_NAMES],
    featureSet: FEATURE_SET,
    threshold,
    confirm: { k: 2, n: 3, releaseWindows: 2 },
    levelGateDbfs: -40,
    trainedAt: '2026-11-24T00:00:00Z',
    training: { note: 'hand-made for tests' },
    forest: {
      name: 'RFClassifier',
      baseModel: {
        indexes: trees.map(() => WINDOW_FEATURE_NAMES.map((_, i) => i)),
        n: WINDOW_FEATURE_NAMES.length,
        replacement: true,
        maxFeatures: WINDOW_FEATURE_NAMES.length,
        nEstimators: trees.length,
        treeOptions,
        isClassifier: true,
        seed: 1,
        estimators: trees,
        useSampleBagging: true,
      },
    },
  });
}

/** sox: silence, a scream-like warbling tone, silence (16 kHz mono 16-bit). */
export function screamWav(dir: string, name = 'scream.wav', rate = 16000): string {
  const out = join(dir, name);
  const tone = join(dir, `${name}.tone.wav`);
  const quiet = join(dir, `${name}.quiet.wav`);
  execFileSync('sox', [
    '-n',
    '-r',
    String(rate),
    '-c',
    '1',
    '-b',
    '16',
    tone,
    'synth',
    '2',
    'sine',
    '900:1400',
    'tremolo',
    '6',
    '40',
    'vol',
    '0.6',
  ]);
  execFileSync('sox', [
    '-n',
    '-r',
    String(rate),
    '-c',
    '1',
    '-b',
    '16',
    quiet,
    'synth',
    '1.5',
    'brownnoise',
    'vol',
    '0.01',
  ]);
  execFileSync('sox', [quiet, tone, quiet, out]);
  return out;
}

/** A low hum: loud enough to pass the level gate, far below the model's pitch split. */
export function humWav(dir: string, name = 'hum.wav'): string {
  const out = join(dir, name);
  execFileSync('sox', [
    '-n',
    '-r',
    '16000',
    '-c',
    '1',
    '-b',
    '16',
    out,
    'synth',
    '3',
    'sine',
    '180',
    'vol',
    '0.5',
  ]);
  return out;
}

export function tempDir(prefix = 'sw-web-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export class FakeRegistry {
  readonly sensors = new Map<string, SensorView>();
  set(s: Partial<SensorView> & { id: string }): void {
    this.sensors.set(s.id, {
      name: null,
      room: null,
      location: null,
      status: 'online',
      lastSeen: null,
      outboxDepth: 0,
      inputLevelDbfs: null,
      modelVersion: null,
      lastEventAt: null,
      droppedFrames: 0,
      ...s,
    });
  }
  list(): SensorView[] {
    return [...this.sensors.values()];
  }
  get(id: string): SensorView | undefined {
    return this.sensors.get(id);
  }
}

/**
 * Records manual alerts and marks the event delivered in the real store, like the
 * bridge's alert service would (the carriers are what cannot exist here).
 */
export class RecordingAlerts {
  readonly calls: { eventId: string; userId: string }[] = [];
  constructor(private readonly store: EventStore) {}
  async sendManualAlert(eventId: string, userId: string): Promise<{ deliveries: ChannelDelivery[] }> {
    this.calls.push({ eventId, userId });
    const d: ChannelDelivery = {
      channel: 'sms',
      to: '+15550100',
      status: 'sent',
      attempts: 1,
      updatedAt: new Date().toISOString(),
    };
    await this.store.updateDelivery(eventId, d);
    return { deliveries: [d] };
  }
}

export interface WebHarness {
  web: WebService;
  /** The real SQLite store, observed like the bridge's (writes reach the live stream). */
  store: ObservedEventStore;
  registry: FakeRegistry;
  /** The real sensor history (SQLite in the temp dir) the sensor page reads. */
  history: SensorHistory;
  alerts: RecordingAlerts;
  ingested: StoredEvent[];
  dir: string;
  logs: Record<string, unknown>[];
  /** A dashboard outage: stops the server, runs `during`, then starts a new one on the same port. */
  outage(during: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

export const ADMIN = { username: 'alice', password: 'correct horse battery' };
export const VIEWER = { username: 'victor', password: 'viewer password 1' };

let hashes: Promise<[string, string]> | null = null;

/** The dashboard on a free loopback port against a real SQLite store in a temp dir. */
export async function startWeb(
  options: {
    config?: Partial<WebConfig>;
    model?: ScreamModel;
    locateIp?: WebDeps['locateIp'];
    withIngest?: boolean;
    clock?: () => Date;
  } = {},
): Promise<WebHarness> {
  const tmp = tempDir();
  hashes ??= Promise.all([hashPassword(ADMIN.password), hashPassword(VIEWER.password)]);
  const [adminHash, viewerHash] = await hashes;
  const store = new ObservedEventStore(new SqliteEventStore(join(tmp.dir, 'events.sqlite')));
  await store.start();
  const registry = new FakeRegistry();
  const history = new SensorHistory({ path: join(tmp.dir, 'sensor-history.sqlite') });
  history.open();
  const alerts = new RecordingAlerts(store);
  const ingested: StoredEvent[] = [];
  const logs: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const config: WebConfig = {
    host: '127.0.0.1',
    port: 0,
    publicUrl: null,
    users: [
      { username: ADMIN.username, passwordHash: adminHash, role: 'admin' },
      { username: VIEWER.username, passwordHash: viewerHash, role: 'viewer' },
    ],
    sessionSecret: 'test-secret-0123456789abcdef',
    tileUrl: 'http://127.0.0.1:9/{z}/{x}/{y}.png',
    maxUploadBytes: 2 * 1024 * 1024,
    dataDir: tmp.dir,
    ...options.config,
  };
  const deps: WebDeps = {
    config,
    store,
    changes: store,
    registry,
    history,
    alerts,
    model: options.model ?? pitchModel(),
    logger,
  };
  if (options.clock) deps.clock = options.clock;
  if (options.locateIp) deps.locateIp = options.locateIp;
  if (options.withIngest !== false) {
    deps.ingestLocal = async (e) => {
      ingested.push(e);
      await store.insertIfNew(e);
    };
  }
  let web: WebService;
  try {
    web = createWebService(deps);
    await web.start();
  } catch (err) {
    // a test that expects the start to fail gets no harness to close: close the stores here
    await store.stop();
    history.close();
    tmp.remove();
    throw err;
  }
  return {
    get web() {
      return web;
    },
    store,
    registry,
    history,
    alerts,
    ingested,
    dir: tmp.dir,
    logs,
    async outage(during) {
      const port = Number(new URL(web.url).port);
      await web.stop();
      await during();
      web = createWebService({ ...deps, config: { ...config, port } });
      await web.start();
    },
    async close() {
      await web.stop();
      await store.stop();
      history.close();
      tmp.remove();
    },
  };
}

const ids = new UlidFactory();
/** A stored event as the bridge's ingest would write it. */
export function sampleEvent(over: Partial<StoredEvent> = {}): StoredEvent {
  const now = over.timestamp ? Date.parse(over.timestamp) : Date.now() - 60_000;
  return {
    eventId: ids.next(now),
    sensorId: 'hall-1',
    timestamp: new Date(now).toISOString(),
    receivedAt: new Date(now + 200).toISOString(),
    startedAt: new Date(now - 1500).toISOString(),
    audioSource: 'alsa:plughw:CARD=Device,DEV=0',
    screamProbability: 0.91,
    isScream: true,
    thresholdValue: 0.6,
    levelDbfs: -18.5,
    modelVersion: '2026-11-24-abc123',
    location: {
      latitude: 52.52,
      longitude: 13.405,
      accuracy: 15,
      address: 'Alexanderplatz 1, Berlin',
      source: 'sensor-config',
      room: 'Main hall',
    },
    alertType: 'scream',
    responseStatus: 'alerted',
    deliveries: [
      {
        channel: 'sms',
        to: '+15550100',
        status: 'delivered',
        attempts: 1,
        updatedAt: new Date(now + 900).toISOString(),
      },
    ],
    deviceInfo: { hostname: 'pi-hall-1', daemonVersion: '0.1.0', platform: 'linux-arm64' },
    ...over,
  };
}

/** Signs in over HTTP; returns the cookie header and CSRF token for later requests. */
export async function login(url: string, user = ADMIN): Promise<{ cookie: string; csrf: string }> {
  const res = await fetch(`${url}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: user.username, password: user.password }),
  });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]!;
  const body = (await res.json()) as { csrfToken: string };
  return { cookie, csrf: body.csrfToken };
}
