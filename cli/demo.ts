import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pino, { type Logger } from 'pino';
import type { CloudApp } from '../cloud/app.ts';
import type { StoredEvent } from '../cloud/store/types.ts';
import { analyzeSamples } from '../core/detect/analyze.ts';
import { loadModelFile } from '../core/model/load.ts';
import type { ScreamModel } from '../core/model/scream-model.ts';
import { writeDemoRecording } from '../demo/scream-recording.ts';
import { ScreamwatchError } from '../protocol/errors.ts';
import { ShutdownRequest } from '../runtime/shutdown.ts';

export const DEMO_USAGE = `usage: screamwatch demo [options]

A complete installation on this machine: the cloud bridge (embedded MQTT broker, SQLite
event store, alerts), the dashboard, and one sensor daemon. The sensor listens to the
microphone when one exists, otherwise it replays a generated recording containing a
scream, in a loop at real speed. Ctrl-C stops everything.

Options:
  --data-dir DIR      where the demo keeps its store, logins and logs (default ./.screamwatch-demo)
  --http-port PORT    dashboard port on 127.0.0.1 (default 8080, or any free port when 8080 is taken)
  --mqtt-port PORT    embedded MQTT broker port on 127.0.0.1 (default: any free port)
  --source SRC        auto (default), mic, replay, alsa:DEVICE or file:PATH (WAV/MP3)
  -h, --help          this text`;

export const DEMO_SENSOR_ID = 'demo-sensor';
const DEMO_USERNAME = 'admin';

class DemoError extends ScreamwatchError {}

interface DemoSecrets {
  adminPassword: string;
  sensorPassword: string;
}

function portFlag(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new DemoError('DEMO_USAGE', `--${name}: "${v}" is not a port number`);
  return n;
}

/** Generated once per data dir (mode 0600), so a restarted demo keeps the same login. */
function demoSecrets(dataDir: string): DemoSecrets {
  const file = join(dataDir, 'demo-logins.json');
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as DemoSecrets;
    if (typeof s.adminPassword === 'string' && typeof s.sensorPassword === 'string') return s;
  } catch {
    // absent or damaged: make new ones
  }
  const s: DemoSecrets = {
    adminPassword: randomBytes(9).toString('base64url'),
    sensorPassword: randomBytes(18).toString('base64url'),
  };
  writeFileSync(file, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  return s;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.once('error', () => resolveFree(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolveFree(true)));
  });
}

/** A capture device exists when `arecord -l` lists a card (no arecord = no microphone). */
export function hasMicrophone(): Promise<boolean> {
  return new Promise((resolveHas) => {
    execFile('arecord', ['-l'], { timeout: 3000 }, (err, stdout) => {
      resolveHas(!err && /^card \d+:/m.test(stdout));
    });
  });
}

/**
 * The threshold the demo sensor runs with: the model's own unless the model misses the demo
 * recording (it may be retrained), then a lowered one just under the recording's scream peak,
 * for the demo sensor only and printed as such.
 */
function demoThreshold(
  model: ScreamModel,
  samples: Float32Array,
): { threshold: number | null; peak: number } {
  const result = analyzeSamples(samples, model);
  if (result.isScream) return { threshold: null, peak: result.maxProbability };
  const lowered = Math.max(0.05, Math.floor(result.maxProbability * 90) / 100);
  return { threshold: lowered, peak: result.maxProbability };
}

function fileLogger(path: string): Logger {
  return pino(
    { level: 'info', timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: path, sync: true, mkdir: true }),
  );
}

function describe(e: StoredEvent): string {
  const time = new Date(e.timestamp).toLocaleTimeString();
  const p = e.screamProbability.toFixed(2);
  const deliveries = e.deliveries.map((d) => `${d.channel} ${d.to}: ${d.status}`).join(', ');
  return `${time}  ${e.alertType} event ${e.eventId} from ${e.sensorId} (p=${p}); alert: ${e.responseStatus}${deliveries ? ` (${deliveries})` : ''}`;
}

/** `screamwatch demo`: returns the exit code once stopped by SIGINT/SIGTERM. */
export async function runDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      'http-port': { type: 'string' },
      'mqtt-port': { type: 'string' },
      source: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${DEMO_USAGE}\n`);
    return 0;
  }
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const dataDir = resolve(values['data-dir'] ?? '.screamwatch-demo');
  let httpPort = portFlag('http-port', values['http-port'], 8080);
  // The demo's broker listens on loopback for its own sensor only, so any port does; a
  // Debian box with Mosquitto installed already has 1883.
  const mqttPort = portFlag('mqtt-port', values['mqtt-port'], 0);
  let portNote = '';
  if (values['http-port'] === undefined && !(await portFree(httpPort))) {
    portNote = ` (port ${httpPort} is in use, so another one was picked)`;
    httpPort = 0;
  }
  const sourceFlag = values.source ?? 'auto';
  if (!/^(auto|mic|replay|alsa:.+|file:.+)$/.test(sourceFlag))
    throw new DemoError(
      'DEMO_USAGE',
      `--source: "${sourceFlag}" is not auto, mic, replay, alsa:DEVICE or file:PATH`,
    );
  try {
    mkdirSync(join(dataDir, 'logs'), { recursive: true });
  } catch (err) {
    throw new DemoError('DEMO_DATA_DIR', `--data-dir ${dataDir}: cannot create (${(err as Error).message})`);
  }

  // Stop requests may arrive while we are still starting: remember them and act when ready.
  const shutdown = new ShutdownRequest();
  const removeSignals = shutdown.handleSignals({
    onFirst: (signal) => out(`\n${signal}: stopping the sensor, the dashboard and the bridge...`),
    onRepeat: (signal) => out(`(${signal}: already stopping)`),
  });
  const stopped = shutdown.requested.then(() => {});

  let cloud: CloudApp | null = null;
  let poll: NodeJS.Timeout | null = null;
  let sensorLoop: Promise<void> | null = null;
  try {
    const model = loadModelFile();
    let source: string;
    let threshold: number | null = null;
    let note = '';
    const wantMic =
      sourceFlag === 'mic' ||
      sourceFlag.startsWith('alsa:') ||
      (sourceFlag === 'auto' && (await hasMicrophone()));
    if (wantMic) {
      source = sourceFlag.startsWith('alsa:') ? sourceFlag : 'alsa:default';
      note = `listening to the microphone (${source}); scream near it, or run with --source replay`;
    } else if (sourceFlag.startsWith('file:')) {
      source = sourceFlag;
      note = `replaying ${sourceFlag.slice(5)} in a loop at real speed`;
    } else {
      const wav = join(dataDir, 'demo-recording.wav');
      const rec = writeDemoRecording(wav);
      const t = demoThreshold(model, rec.samples);
      threshold = t.threshold;
      source = `file:${wav}`;
      const at = rec.screams[0]!;
      note =
        `no microphone found: replaying a generated recording in a loop at real speed ` +
        `(${rec.durationS.toFixed(1)} s, a synthetic scream at ${at.startS}-${at.endS} s)`;
      if (threshold !== null) {
        note +=
          `\n  DEMO ONLY: model ${model.version} peaks at ${t.peak.toFixed(2)} on this recording, under its ` +
          `threshold ${model.threshold}; the demo sensor uses detection.threshold ${threshold}`;
      }
    }

    const secrets = demoSecrets(dataDir);
    const { hashPassword } = await import('../cloud/auth/passwords.ts');
    const { parseCloudConfig } = await import('../cloud/config/schema.ts');
    const { CloudApp } = await import('../cloud/app.ts');
    const config = parseCloudConfig(
      {
        dataDir,
        mqtt: {
          port: mqttPort,
          host: '127.0.0.1',
          sensors: [{ sensorId: DEMO_SENSOR_ID, passwordHash: await hashPassword(secrets.sensorPassword) }],
        },
        sensors: [
          {
            id: DEMO_SENSOR_ID,
            name: 'Demo sensor',
            room: 'This computer',
            location: { latitude: 48.8584, longitude: 2.2945, accuracy: 50, address: 'Demo location' },
          },
        ],
        alerts: {
          // Placeholder contacts with no SMS/email provider configured: alerts are recorded
          // as "not-configured", which is what a fresh install shows.
          // The sensor publishes at confirmation with the probability so far, so the policy
          // alerts from the sensor's own threshold.
          policies: [
            {
              group: 'default',
              threshold: threshold ?? model.threshold,
              contacts: { sms: ['+15550000000'], email: ['you@example.org'] },
            },
          ],
        },
        web: {
          host: '127.0.0.1',
          port: httpPort,
          users: [
            {
              username: DEMO_USERNAME,
              passwordHash: await hashPassword(secrets.adminPassword),
              role: 'admin',
            },
          ],
        },
      },
      'demo config',
    );
    const logs = join(dataDir, 'logs');
    const app = new CloudApp({ config, logger: fileLogger(join(logs, 'cloud.log')), env: {} });
    cloud = app;
    out('Starting the Screamwatch demo (cloud bridge + dashboard + one sensor)...');
    try {
      await app.start();
    } catch (err) {
      cloud = null;
      const msg = (err as Error).message;
      throw new DemoError(
        'DEMO_START_FAILED',
        `${msg}${/listen/.test(msg) ? ' (another program uses the port? try --http-port 0 --mqtt-port 0)' : ''}; see ${join(logs, 'cloud.log')}`,
      );
    }
    const brokerPort = app.brokerPorts?.tcp;
    if (!app.web || !brokerPort)
      throw new DemoError('DEMO_START_FAILED', `the dashboard did not start; see ${join(logs, 'cloud.log')}`);

    out('');
    out(`  Dashboard:   ${app.web.url}${portNote}`);
    out(`  Login:       username ${DEMO_USERNAME}   password ${secrets.adminPassword}`);
    out(`  MQTT broker: mqtt://127.0.0.1:${brokerPort} (sensor "${DEMO_SENSOR_ID}")`);
    out(`  Sensor:      ${note}`);
    out(
      `  Alerts:      to placeholder contacts; no SMS/email provider is configured, so they are recorded as "not-configured"`,
    );
    out(`  Data, logs:  ${dataDir} (logs/cloud.log, logs/sensor.log)`);
    out('');
    out('Events appear below and on the dashboard within a minute. Press Ctrl-C to stop.');
    out('');

    // The sensor: the real daemon, in this process, against the embedded broker. A file
    // source ends after one replay; run it again until stopped (each replay is new events).
    const { loadDaemonConfig } = await import('../daemon/config/load.ts');
    const { runDaemon } = await import('../daemon/run.ts');
    const daemonConfig = loadDaemonConfig({
      env: {},
      overrides: {
        sensorId: DEMO_SENSOR_ID,
        stateDir: join(dataDir, 'sensor'),
        audio: { source },
        mqtt: {
          url: `mqtt://127.0.0.1:${brokerPort}`,
          username: DEMO_SENSOR_ID,
          password: secrets.sensorPassword,
        },
        heartbeatIntervalS: 30,
        ...(threshold !== null && { detection: { threshold } }),
      } as never,
    });
    const sensorLogger = fileLogger(join(logs, 'sensor.log'));
    sensorLoop = (async () => {
      while (!shutdown.isRequested) {
        const t0 = Date.now();
        const code = await runDaemon(daemonConfig, {
          logger: sensorLogger,
          model,
          stopSignal: stopped,
          drainTimeoutS: 10,
          // one daemon run for the whole demo: a restart per replay made the fleet card flicker
          // offline and never show a heartbeat's figures
          loopFileSource: true,
          // the fleet card fills in at once instead of after heartbeatIntervalS
          onStarted: (sensorApp) => sensorApp.beat(),
        });
        if (shutdown.isRequested) return;
        if (code !== 0) {
          out(`sensor exited with code ${code} (see ${join(logs, 'sensor.log')}); restarting in 5 s`);
        }
        // bounded: never spin when the source fails at once
        const waitMs = Date.now() - t0 < 2000 || code !== 0 ? 5000 : 0;
        await Promise.race([stopped, new Promise((r) => setTimeout(r, waitMs))]);
      }
    })();

    const seen = new Map<string, string>();
    const report = async () => {
      const events = await app.store.list({ limit: 20 });
      for (const e of events.reverse()) {
        const last = seen.get(e.eventId);
        if (last === e.responseStatus) continue;
        seen.set(e.eventId, e.responseStatus);
        out(describe(e));
      }
    };
    for (const e of await app.store.list({ limit: 500 })) seen.set(e.eventId, e.responseStatus);
    poll = setInterval(() => {
      report().catch(() => {});
    }, 1000);

    await stopped;
    return 0;
  } finally {
    shutdown.request('finished');
    if (poll) clearInterval(poll);
    await sensorLoop;
    if (cloud) await cloud.stop();
    removeSignals();
    if (cloud) out('Stopped.');
  }
}
