// Daemon benchmark: a long replay at real speed through the real capture path (a fake
// `arecord` streaming a WAV, since there is no microphone here), the real daemon process
// (the built dist/daemon.mjs with the unit's node flags, as systemd runs it) and an in-process
// aedes broker.
//
// Figures: average CPU % of one core and peak RSS of the daemon process (the fake arecord
// is another process and not counted; real arecord costs about
// nothing), and the latency from a scream's onset in the file to the broker receiving the
// event (the broker sends the PUBACK in the same tick).
//
// Environment: BENCH_DAEMON_MINUTES (default 10), BENCH_DAEMON_MODEL (a model file; default
// the shipped models/screamwatch-forest.json when present, else a tiny model trained here
// on sox tones, which fires on the sox "screams" of the replay), BENCH_DAEMON_ENTRY (default
// dist/daemon.mjs, the built artifact the unit runs; `tsx` = the sources through tsx) and
// BENCH_DAEMON_NODE_FLAGS (default: the flags the systemd unit gives node).
// The replay is real time (no acceleration): CPU % and latency are what a sensor sees.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { encodeWav16 } from '../core/audio/wav.ts';
import { DEFAULT_MODEL_PATH, loadModelFile } from '../core/model/load.ts';
import { synthesizeDemoRecording } from '../demo/scream-recording.ts';
import type { EventMessage } from '../protocol/messages.ts';
import { startAedes } from '../test/support/aedes.ts';
import { concatWav, roomToneWav, screamWav, sox, tinyModelFile } from '../test/support/audio-fixtures.ts';
import { FAKE_ARECORD_DIR } from '../test/support/fake-arecord.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SEGMENT_S = 30;
const SCREAM_AT_S = 25;

function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Extra node flags for the daemon process, e.g. BENCH_DAEMON_NODE_FLAGS=--max-semi-space-size=1 */
/** Node's flags in the daemon's systemd unit (NODE_OPTIONS and ExecStart's): the bench runs node as the unit does. */
const DAEMON_UNIT_NODE_FLAGS = (() => {
  const unit = readFileSync(join(ROOT, 'deploy/systemd/screamwatch-daemon.service'), 'utf8');
  const env = /^Environment=NODE_OPTIONS=(.*)$/m.exec(unit)?.[1] ?? '';
  const exec = (/^ExecStart=\S+ (.*)$/m.exec(unit)?.[1] ?? '').split(' ');
  return [
    env,
    ...exec.slice(
      0,
      exec.findIndex((a) => !a.startsWith('--')),
    ),
  ].join(' ');
})();

function nodeFlags(): string[] {
  // default: the flags deploy/systemd/screamwatch-daemon.service gives node
  return (process.env.BENCH_DAEMON_NODE_FLAGS ?? DAEMON_UNIT_NODE_FLAGS).split(/\s+/).filter(Boolean);
}

export async function runDaemonBench(): Promise<Record<string, number | string>> {
  const minutes = Number(process.env.BENCH_DAEMON_MINUTES ?? 10);
  const segments = Math.max(1, Math.round((minutes * 60) / SEGMENT_S));
  const dir = await mkdtemp(join(tmpdir(), 'sw-bench-daemon-'));
  const broker = await startAedes();
  try {
    // the shipped model when it loads (it may be mid-retraining), else a tiny one trained here
    let modelPath = process.env.BENCH_DAEMON_MODEL ?? DEFAULT_MODEL_PATH;
    let modelNote = '';
    let modelVersion: string;
    try {
      modelVersion = loadModelFile(modelPath).version;
    } catch (err) {
      if (process.env.BENCH_DAEMON_MODEL) throw err;
      modelNote = ` (shipped model unusable: ${(err as Error).message.slice(0, 120)}; using a tiny test model)`;
      modelPath = await tinyModelFile(dir);
      modelVersion = loadModelFile(modelPath).version;
    }
    // The replay: 30 s segments with a scream at 25 s. With the shipped model, the demo's
    // synthetic harsh cry in room tone and babble (demo/scream-recording.ts, which the model
    // is checked to fire on), a different seed per segment; with the tiny fallback model,
    // the sox sweep it was trained on.
    const wav = join(dir, 'replay.wav');
    let replayKind: string;
    if (!modelNote) {
      replayKind = 'demo cry in room tone and babble';
      const parts = Array.from({ length: segments }, (_, i) =>
        synthesizeDemoRecording({
          seed: i + 1,
          leadS: SCREAM_AT_S,
          screamS: 2.5,
          tailS: SEGMENT_S - SCREAM_AT_S - 2.5,
        }).samples.subarray(0, SEGMENT_S * 16_000),
      );
      const all = new Float32Array(segments * SEGMENT_S * 16_000);
      for (const [i, p] of parts.entries()) all.set(p, i * SEGMENT_S * 16_000);
      await writeFile(wav, encodeWav16(all, 16_000));
    } else {
      replayKind = 'sox sweep in room tone';
      // 30 s segments: 25 s of room tone, a 2 s scream-like sweep, 3 s of room tone
      const seg = await concatWav(join(dir, 'segment.wav'), [
        await roomToneWav(join(dir, 'tone1.wav'), SCREAM_AT_S),
        await screamWav(join(dir, 'scream.wav'), 2),
        await roomToneWav(join(dir, 'tone2.wav'), SEGMENT_S - SCREAM_AT_S - 2),
      ]);
      await sox(seg, wav, 'repeat', String(segments - 1));
    }
    const durationS = segments * SEGMENT_S;
    const onsetsS = Array.from({ length: segments }, (_, i) => i * SEGMENT_S + SCREAM_AT_S);

    const publishedAt = new Map<string, number>();
    // the daemon's own share: confirmation (event.timestamp) to the broker having the event
    const confirmToPublishMs: number[] = [];
    broker.broker.on('publish', (packet, client) => {
      if (!client || !packet.topic.endsWith('/events')) return;
      const e = JSON.parse(packet.payload.toString()) as EventMessage;
      if (!publishedAt.has(e.eventId)) {
        publishedAt.set(e.eventId, Date.now());
        confirmToPublishMs.push(Date.now() - Date.parse(e.timestamp));
      }
    });
    let lastHeartbeat: Record<string, unknown> | null = null;
    broker.broker.on('publish', (packet, client) => {
      if (client && packet.topic.endsWith('/heartbeat'))
        lastHeartbeat = JSON.parse(packet.payload.toString());
    });

    const cfg = join(dir, 'daemon.json');
    await writeFile(
      cfg,
      JSON.stringify({
        sensorId: 'bench-1',
        stateDir: join(dir, 'state'),
        audio: { source: 'alsa:default' },
        detection: { modelPath },
        mqtt: { url: broker.url },
        heartbeatIntervalS: 30,
        log: { level: 'warn' },
      }),
    );
    const arecordLog = join(dir, 'arecord.log');
    // The built artifact, as the unit runs it (`npm run bench` builds first). BENCH_DAEMON_ENTRY=tsx
    // runs the TypeScript sources through tsx instead, any other value that JS file.
    const entryEnv = process.env.BENCH_DAEMON_ENTRY ?? join(ROOT, 'dist/daemon.mjs');
    const entry = entryEnv === 'tsx' ? ['--import', 'tsx', join(ROOT, 'daemon/main.ts')] : [entryEnv];
    const child = spawn(process.execPath, [...nodeFlags(), ...entry, '--config', cfg], {
      cwd: ROOT,
      env: {
        ...process.env,
        PATH: `${FAKE_ARECORD_DIR}:${process.env.PATH}`,
        FAKE_ARECORD_WAV: wav,
        FAKE_ARECORD_LOG: arecordLog,
        NOTIFY_SOCKET: '',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const pid = child.pid!;
    const ticksPerS = Number((await run('getconf', ['CLK_TCK'])).stdout.trim()) || 100;
    const cpuTicks = () => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]); // utime + stime
    };
    const vmRssKb = () =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    const vmHwmKb = () =>
      Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);

    // wait for the audio to start flowing (startup cost is not steady state)
    let streamStartMs = 0;
    const startDeadline = Date.now() + 60_000;
    while (!streamStartMs) {
      if (Date.now() > startDeadline)
        throw new Error('bench: the daemon did not start capturing within 60 s');
      await new Promise((r) => setTimeout(r, 100));
      if (existsSync(arecordLog)) {
        const line = readFileSync(arecordLog, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { streamStartMs?: number })
          .find((l) => l.streamStartMs);
        streamStartMs = line?.streamStartMs ?? 0;
      }
    }
    await new Promise((r) => setTimeout(r, 2000)); // let the JIT settle
    const cpu0 = cpuTicks();
    const wall0 = performance.now();
    const endAt = streamStartMs + durationS * 1000 + 3000;
    while (Date.now() < endAt)
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(10, endAt - Date.now()))));
    const cpuS = (cpuTicks() - cpu0) / ticksPerS;
    const wallS = (performance.now() - wall0) / 1000;
    const peakRssMb = vmHwmKb() / 1024;
    const endRssMb = vmRssKb() / 1024;
    child.kill('SIGTERM');
    const code = await exited;

    const latencies: number[] = [];
    for (const at of publishedAt.values()) {
      const audioS = (at - streamStartMs) / 1000;
      const onset = onsetsS.filter((o) => o <= audioS).at(-1);
      if (onset !== undefined) latencies.push(audioS - onset);
    }
    latencies.sort((a, b) => a - b);
    const q = (p: number) =>
      latencies.length
        ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!
        : Number.NaN;
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const hb = lastHeartbeat as { droppedFrames?: number } | null;
    return {
      replay: `${durationS} s (${replayKind}) at real speed through fake arecord (alsa path)`,
      model: modelVersion + modelNote,
      screams: onsetsS.length,
      eventsDelivered: publishedAt.size,
      cpuPercentOneCore: r3((cpuS / wallS) * 100),
      peakRssMb: r3(peakRssMb),
      endRssMb: r3(endRssMb),
      onsetToPubackMedianS: r3(q(0.5)),
      onsetToPubackP90S: r3(q(0.9)),
      onsetToPubackMaxS: r3(latencies.at(-1) ?? Number.NaN),
      confirmToPubackMedianMs: median(confirmToPublishMs),
      droppedFrames: hb?.droppedFrames ?? 'n/a',
      exitCode: code ?? 'signal',
    };
  } finally {
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runDaemonBench();
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(24)} ${v}`);
}
