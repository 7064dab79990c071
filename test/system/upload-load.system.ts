import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../cloud/auth/passwords.ts';
import { encodeEvent } from '../../protocol/codec.ts';
import { sensorTopic } from '../../protocol/topics.ts';
import { synth16k } from '../support/audio-fixtures.ts';
import { freePort } from '../support/free-port.ts';
import { type Proc, record, sleep, startBridge, storedIds, systemEvent, tally } from './harness.ts';
import type { UploadHammerOptions, UploadHammerResult } from './upload-hammer.ts';

// Project issue 11: twenty concurrent 19 MB uploads pushed /healthz to 1.2 s median and a
// sensor's PUBACK to 7.4 s. The bridge (a `screamwatch cloud` child, so its RSS is its own)
// must keep ingest on its own path while uploaders hammer /api/analyze.

const UPLOADERS = 20;
const LOAD_S = 30;
const MAX_PER_UPLOADER = 40;
const EVENTS_PER_S = 5;
const HEALTH_EVERY_MS = 250;

const SENSOR_PASSWORD = `sensor-${randomBytes(12).toString('hex')}`;
const ADMIN_PASSWORD = `admin-${randomBytes(12).toString('hex')}`;
const HAMMER = new URL('./upload-hammer.ts', import.meta.url).pathname;

let root = '';
let wav = '';
const procs: Proc[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sw-system-upload-'));
  // 600 s (web.maxAnalysisSeconds) of 16 kHz 16-bit mono noise + tone: 19.2 MB, under
  // web.maxUploadBytes, so every accepted upload is decoded and scored in full
  wav = join(root, 'load.wav');
  await synth16k(wav, 'synth', '600', 'whitenoise', 'synth', '600', 'sine', 'mix', '440', 'vol', '0.3');
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  await Promise.all(procs.map((p) => p.stop()));
  if (root && !process.env.SW_SYSTEM_KEEP) rmSync(root, { recursive: true, force: true });
});

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

function summary(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: quantile(s, 0.5),
    p95: quantile(s, 0.95),
    p99: quantile(s, 0.99),
    max: s.at(-1)!,
  };
}

const fmt = (x: ReturnType<typeof summary>) =>
  `p50 ${x.p50.toFixed(0)} / p95 ${x.p95.toFixed(0)} / p99 ${x.p99.toFixed(0)} / max ${x.max.toFixed(0)} ms`;

function vm(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** The uploaders, as their own process: their CPU is not the sensor's event loop. */
function hammer(o: UploadHammerOptions): Promise<UploadHammerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', HAMMER], {
      env: { ...process.env, UPLOAD_HAMMER: JSON.stringify(o) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out) as UploadHammerResult);
      else reject(new Error(`upload hammer exited ${code}: ${err.slice(-2000)}`));
    });
  });
}

describe('system: uploads under load', () => {
  it(`${UPLOADERS} uploaders hammering /api/analyze with 19 MB WAVs: PUBACK p99 < 500 ms, no event lost, only 200/429, bridge RSS bounded`, async () => {
    const dir = join(root, 'bridge');
    const mqttPort = await freePort();
    const [sensorHash, adminHash] = await Promise.all([
      hashPassword(SENSOR_PASSWORD),
      hashPassword(ADMIN_PASSWORD),
    ]);
    const b = startBridge({
      dir,
      mqttPort,
      httpPort: 0,
      config: {
        mqtt: { host: '127.0.0.1', sensors: [{ sensorId: 'loaded', passwordHash: sensorHash }] },
        offlineAfterS: 3600,
        web: { host: '127.0.0.1', users: [{ username: 'ops', passwordHash: adminHash, role: 'viewer' }] },
      },
    });
    procs.push(b);
    await b.waitFor(/cloud bridge running/, 30_000);
    const web = /"web":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(b.out)![1]!;
    const pid = b.child.pid!;

    const login = await fetch(`${web}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'ops', password: ADMIN_PASSWORD }),
    });
    expect(login.status).toBe(200);
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;

    const sensor = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      username: 'loaded',
      password: SENSOR_PASSWORD,
      clientId: `loaded-${randomBytes(3).toString('hex')}`,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    });
    clients.push(sensor);
    const topic = sensorTopic('screamwatch', 'loaded', 'events');

    // Each sample is fired on its own timer, not after the previous answer: a stalled bridge
    // shows as many slow samples, not as a few missing ones.
    const sent: string[] = [];
    const pubacks: { phase: 'idle' | 'load'; ms: number }[] = [];
    const health: { phase: 'idle' | 'load'; ms: number; status: number }[] = [];
    const inflight: Promise<unknown>[] = [];
    let phase: 'idle' | 'load' = 'idle';
    let rssPeakMb = vm(pid, 'VmRSS');
    const rssStartMb = rssPeakMb;
    const publishTimer = setInterval(() => {
      const msg = systemEvent('loaded');
      const p = phase;
      sent.push(msg.eventId);
      const t0 = performance.now();
      inflight.push(
        sensor.publishAsync(topic, encodeEvent(msg), { qos: 1 }).then(() => {
          pubacks.push({ phase: p, ms: performance.now() - t0 });
        }),
      );
    }, 1000 / EVENTS_PER_S);
    const healthTimer = setInterval(() => {
      const p = phase;
      const t0 = performance.now();
      // bounded, and the bound's timer cleared when the answer comes (AbortSignal.timeout's
      // would outlive the file by 30 s)
      const abort = new AbortController();
      const bound = setTimeout(() => abort.abort(), 30_000);
      inflight.push(
        fetch(`${web}/healthz`, { signal: abort.signal })
          .then(
            async (res) => {
              await res.arrayBuffer();
              health.push({ phase: p, ms: performance.now() - t0, status: res.status });
            },
            () => health.push({ phase: p, ms: performance.now() - t0, status: 0 }),
          )
          .finally(() => clearTimeout(bound)),
      );
      rssPeakMb = Math.max(rssPeakMb, vm(pid, 'VmRSS'));
    }, HEALTH_EVERY_MS);

    let uploads: UploadHammerResult;
    try {
      // a few idle seconds first: what the same machine gives without the uploads
      await sleep(5_000);
      phase = 'load';
      uploads = await hammer({
        web,
        cookie,
        csrfToken,
        file: wav,
        uploaders: UPLOADERS,
        deadlineMs: Date.now() + LOAD_S * 1000,
        maxPerUploader: MAX_PER_UPLOADER,
      });
    } finally {
      clearInterval(publishTimer);
      clearInterval(healthTimer);
    }
    await Promise.all(inflight);
    const hwmMb = vm(pid, 'VmHWM');
    const stored = storedIds(join(dir, 'data'));
    const t = tally(sent, stored);

    const idlePuback = summary(pubacks.filter((x) => x.phase === 'idle').map((x) => x.ms));
    const puback = summary(pubacks.filter((x) => x.phase === 'load').map((x) => x.ms));
    const idleHealth = summary(health.filter((x) => x.phase === 'idle').map((x) => x.ms));
    const loadHealth = summary(health.filter((x) => x.phase === 'load').map((x) => x.ms));
    const accepted = summary(uploads.acceptedMs);
    const note =
      `${UPLOADERS} uploaders x ${(uploads.bytes / 1e6).toFixed(1)} MB WAV for ${LOAD_S} s, ` +
      `upload statuses ${JSON.stringify(uploads.statuses)} (200 answered in ${fmt(accepted)}); ` +
      `PUBACK under load ${fmt(puback)} (n=${puback.n}; idle ${fmt(idlePuback)}); ` +
      `/healthz under load ${fmt(loadHealth)} (n=${loadHealth.n}; idle ${fmt(idleHealth)}); ` +
      `bridge RSS ${rssStartMb.toFixed(0)} MB at start, peak ${rssPeakMb.toFixed(0)} MB sampled, VmHWM ${hwmMb.toFixed(0)} MB`;
    process.stdout.write(`upload load: ${note}\n${uploads.errors.join('\n')}\n`);
    record({
      scenario: `${UPLOADERS} uploaders x 19 MB on /api/analyze + 1 sensor at ${EVENTS_PER_S} events/s`,
      ...t,
      alertsSent: 0,
      duplicatedAlerts: 0,
      recoverS: null,
      note,
    });

    expect(b.running).toBe(true);
    expect(t.lost).toBe(0);
    expect(t.duplicated).toBe(0);
    expect(pubacks.length).toBe(sent.length);
    expect(puback.n).toBeGreaterThan(LOAD_S * EVENTS_PER_S * 0.8);
    expect(puback.p99).toBeLessThan(500);
    expect(health.every((h) => h.status === 200)).toBe(true);
    expect(uploads.errors).toEqual([]);
    expect(Object.keys(uploads.statuses).sort()).toEqual(['200', '429']);
    expect(uploads.missingRetryAfter).toBe(0);
    // 4 analysis slots x (one 19 MB body + its decoded samples in the worker) over a ~150 MB
    // idle bridge; twenty bodies buffered at once would be 400 MB of bodies alone
    expect(hwmMb).toBeLessThan(600);
  });
});
