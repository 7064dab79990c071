import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeDemoRecording } from '../../demo/scream-recording.ts';
import { eventually } from '../support/eventually.ts';
import { FAKE_ARECORD_DIR } from '../support/fake-arecord.ts';

const BIN = new URL('../../bin/screamwatch.js', import.meta.url).pathname;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `p`, or 'hung' after `ms`; the timer is cleared either way (the leak check counts it). */
async function orHung<T>(p: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<'hung'>((r) => {
        timer = setTimeout(() => r('hung'), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('screamwatch demo (the `npm start` command)', () => {
  let child: ChildProcess | null = null;
  let dir = '';
  afterEach(() => {
    if (child?.pid && alive(child.pid)) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }
    child = null;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs bridge, dashboard and a replaying sensor; an alerted event appears; Ctrl-C exits 0 and leaves nothing running', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-demo-'));
    // through npm, in a process group of its own: Ctrl-C in a terminal signals npm and the demo
    const proc = spawn(
      'npm',
      [
        'start',
        '--silent',
        '--',
        '--data-dir',
        join(dir, 'data'),
        '--http-port',
        '0',
        '--mqtt-port',
        '0',
        '--source',
        'replay',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: new URL('../..', import.meta.url).pathname, detached: true },
    );
    child = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    proc.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));

    const { url, password, mqttPort } = await eventually(
      async () => {
        if (proc.exitCode !== null) throw new Error(`demo exited ${proc.exitCode}: ${stderr}`);
        const u = /Dashboard:\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
        const p = /Login:\s+username admin\s+password (\S+)/.exec(stdout);
        const m = /MQTT broker:\s+mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
        return u && p && m ? { url: u[1]!, password: p[1]!, mqttPort: Number(m[1]) } : undefined;
      },
      40_000,
      'the printed dashboard URL and login',
      250,
    );
    expect(stdout).toMatch(/no microphone found: replaying a generated recording/);

    // the API refuses a visitor without a session
    expect((await fetch(`${url}/api/events`)).status).toBe(401);
    const login = await fetch(`${url}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;

    type ApiEvent = { eventId: string; sensorId: string; isScream: boolean; responseStatus: string };
    const event = await eventually(
      async () => {
        const res = await fetch(`${url}/api/events`, { headers: { cookie } });
        const body = (await res.json()) as { events: ApiEvent[] };
        return body.events.find((e) => e.responseStatus === 'not-configured');
      },
      60_000,
      'a scream event alerted as not-configured on the dashboard',
      250,
    );
    expect(event).toMatchObject({ sensorId: 'demo-sensor', isScream: true });
    const detail = (await (
      await fetch(`${url}/api/events/${event.eventId}`, { headers: { cookie } })
    ).json()) as {
      event: { deliveries: { channel: string; status: string }[] };
    };
    expect(detail.event.deliveries.map((d) => d.status)).toEqual(['not-configured', 'not-configured']);
    await eventually(
      async () => (stdout.includes(event.eventId) ? true : undefined),
      5000,
      'the event printed on the console',
      250,
    );
    // the printed password is the demo's login, not something that leaks into logs
    expect(stderr).not.toContain(password);

    // the sensor heartbeats at start, and stays up across replay loops (one daemon run)
    type ApiSensor = {
      id: string;
      status: string;
      outboxDepth: number | null;
      inputLevelDbfs: number | null;
    };
    const sensor = await eventually(
      async () => {
        const r = (await (await fetch(`${url}/api/sensors`, { headers: { cookie } })).json()) as {
          sensors: ApiSensor[];
        };
        return r.sensors.find(
          (x) => x.id === 'demo-sensor' && x.outboxDepth !== null && x.inputLevelDbfs !== null,
        );
      },
      10_000,
      'the demo sensor with heartbeat figures',
      250,
    );
    expect(sensor.status).toBe('online');
    await eventually(
      async () => {
        const res = await fetch(`${url}/api/events?isScream=true`, { headers: { cookie } });
        const body = (await res.json()) as { events: ApiEvent[] };
        return body.events.filter((e) => e.sensorId === 'demo-sensor').length >= 2 ? true : undefined;
      },
      60_000,
      'a scream from the second replay loop',
      250,
    );
    const sensorLog = readFileSync(join(dir, 'data', 'logs', 'sensor.log'), 'utf8');
    expect(sensorLog.match(/replaying audio file/g)).toHaveLength(1);
    const after = (await (await fetch(`${url}/api/sensors`, { headers: { cookie } })).json()) as {
      sensors: ApiSensor[];
    };
    expect(after.sensors.find((x) => x.id === 'demo-sensor')?.status).toBe('online');

    // Ctrl-C: the terminal signals the whole foreground group (npm and the demo)
    process.kill(-proc.pid!, 'SIGINT');
    const code = await orHung(exited, 20_000);
    expect(code, `${stderr}\n${stdout}`).toBe(0);
    expect(stdout).toMatch(/Stopped\.\s*$/);
    expect(alive(proc.pid!)).toBe(false);
    expect(await portOpen(Number(new URL(url).port))).toBe(false);
    expect(await portOpen(mqttPort)).toBe(false);
  }, 120_000);

  it('listens to the microphone when `arecord -l` lists a card (fake arecord hearing the demo scream)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-demo-mic-'));
    const wav = join(dir, 'heard.wav');
    writeDemoRecording(wav);
    const proc = spawn(process.execPath, [BIN, 'demo', '--data-dir', join(dir, 'data'), '--http-port', '0'], {
      env: {
        ...process.env,
        PATH: `${FAKE_ARECORD_DIR}:${process.env.PATH ?? ''}`,
        FAKE_ARECORD_WAV: wav,
        FAKE_ARECORD_LOG: join(dir, 'arecord.log'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let stdout = '';
    proc.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    await eventually(
      async () => (/listening to the microphone \(alsa:default\)/.test(stdout) ? true : undefined),
      40_000,
      'the microphone notice',
      250,
    );
    // the scream the "microphone" hears is confirmed, stored and alerted (printed by the demo)
    await eventually(
      async () =>
        /scream event \S+ from demo-sensor .*alert: not-configured/.test(stdout) ? true : undefined,
      60_000,
      'an event heard through the microphone',
      250,
    );
    proc.kill('SIGINT');
    const code = await orHung(exited, 20_000);
    expect(code).toBe(0);
    // no orphaned capture process
    const pids = readFileSync(join(dir, 'arecord.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { pid: number })
      .map((l) => l.pid);
    expect(pids.length).toBeGreaterThan(0);
    await eventually(
      async () => (pids.every((p) => !alive(p)) ? true : undefined),
      5000,
      'arecord gone',
      250,
    );
  }, 120_000);
});
