import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeAudioFile } from '../../core/audio/decode.ts';
import { FEATURE_SET, WINDOW_FEATURE_NAMES } from '../../core/features/window-features.ts';
import { WindowFeatureStream } from '../../core/features/window-stream.ts';
import { MODEL_FORMAT } from '../../core/model/scream-model.ts';
import { trainForest } from '../../core/train/forest-trainer.ts';

// Audio fixtures are generated at test time with sox and espeak-ng, never committed. Every
// helper is async so that generating a fixture never blocks the event loop of a test that has
// a broker or a daemon running in-process.

const run = promisify(execFile);

/** A temp directory removed by the returned cleanup. */
export function tempDir(prefix = 'screamwatch-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Runs sox with the given arguments, in its repeatable mode (-R): its noise generators and
 * dither start from a fixed seed, so a fixture (and a toy model trained on fixtures) is the
 * same on every run, and a test that fails fails every time.
 */
export async function sox(...args: string[]): Promise<void> {
  await run('sox', ['-R', ...args]);
}

/** Generates `path` (16 kHz mono 16-bit) from sox's null input and the given effects. */
export async function synth16k(path: string, ...effects: string[]): Promise<string> {
  await sox('-n', '-r', '16000', '-c', '1', '-b', '16', path, ...effects);
  return path;
}

/**
 * A scream-like tone: a rising sine sweep (900-1400 Hz by default) with a 6 Hz tremolo. This
 * is what tinyModelFile's forest is trained on.
 */
export async function screamWav(
  path: string,
  seconds = 2,
  gain = 0.6,
  sweepHz = '900:1400',
): Promise<string> {
  return synth16k(path, 'synth', String(seconds), 'sine', sweepHz, 'tremolo', '6', '40', 'vol', String(gain));
}

/**
 * A harsher synthetic scream: a sawtooth, high, rising pitch with vibrato and breath noise.
 * Not a real scream, but it exercises the same features (makeToyDataset's scream class).
 */
export async function harshScreamWav(path: string, seconds = 2, baseHz = 900, seed = 1): Promise<string> {
  const lo = baseHz;
  const hi = Math.round(baseHz * 1.5);
  return synth16k(
    path,
    'synth',
    String(seconds),
    'sawtooth',
    `${lo}-${hi}`,
    'pinknoise',
    'mix',
    'tremolo',
    String(5 + (seed % 3)),
    '30',
    'vol',
    '0.5',
    'fade',
    'q',
    '0.05',
    String(seconds),
    '0.2',
  );
}

/** Speech from espeak-ng resampled to 16 kHz mono. */
export async function speechWav(
  path: string,
  text: string,
  opts: { pitch?: number; voice?: string } = {},
): Promise<string> {
  const raw = `${path}.raw.wav`;
  await run('espeak-ng', ['-w', raw, '-p', String(opts.pitch ?? 50), '-v', opts.voice ?? 'en', text]);
  await sox(raw, '-r', '16000', '-c', '1', '-b', '16', path);
  rmSync(raw);
  return path;
}

export async function noiseWav(
  path: string,
  seconds: number,
  colour: 'whitenoise' | 'pinknoise' | 'brownnoise' = 'pinknoise',
  vol = 0.1,
): Promise<string> {
  return synth16k(path, 'synth', String(seconds), colour, 'vol', String(vol));
}

/** Quiet room tone: brown noise at about -50 dBFS. */
export async function roomToneWav(path: string, seconds: number): Promise<string> {
  return noiseWav(path, seconds, 'brownnoise', 0.01);
}

export async function silenceWav(path: string, seconds: number): Promise<string> {
  return synth16k(path, 'trim', '0', String(seconds));
}

/** Concatenates WAVs (all 16 kHz mono 16-bit). */
export async function concatWav(path: string, parts: string[]): Promise<string> {
  await sox(...parts, path);
  return path;
}

/**
 * `screams` screams of `screamS` seconds, each preceded by `gapS` seconds of room tone, and
 * `gapS` seconds after the last. Returns the path and each scream's onset (seconds).
 */
export async function screamSequenceWav(
  dir: string,
  name: string,
  screams: number,
  options: { gapS?: number; screamS?: number } = {},
): Promise<{ path: string; onsetsS: number[]; durationS: number }> {
  const gapS = options.gapS ?? 3;
  const screamS = options.screamS ?? 2;
  const gap = await roomToneWav(join(dir, `${name}-gap.wav`), gapS);
  const scream = await screamWav(join(dir, `${name}-scream.wav`), screamS);
  const parts: string[] = [];
  const onsetsS: number[] = [];
  for (let i = 0; i < screams; i++) {
    parts.push(gap, scream);
    onsetsS.push(gapS + i * (gapS + screamS));
  }
  parts.push(gap);
  const path = await concatWav(join(dir, `${name}.wav`), parts);
  return { path, onsetsS, durationS: screams * (gapS + screamS) + gapS };
}

/** A small labelled folder (scream/, non_scream/) of generated clips for train/eval tests. */
export async function makeToyDataset(dir: string, perClass = 12): Promise<void> {
  mkdirSync(join(dir, 'scream'), { recursive: true });
  mkdirSync(join(dir, 'non_scream'), { recursive: true });
  const texts = [
    'good morning, the lunch will be served at noon',
    'please remember to close the door behind you',
    'the weather is quite nice today, is it not',
    'i will call you back in about ten minutes',
  ];
  for (let i = 0; i < perClass; i++) {
    await harshScreamWav(join(dir, 'scream', `synthA__s${i}.wav`), 1.5 + (i % 3) * 0.5, 700 + i * 60, i);
    if (i % 2 === 0)
      await speechWav(join(dir, 'non_scream', `speechA__n${i}.wav`), texts[i % texts.length]!, {
        pitch: 20 + i * 5,
      });
    else
      await noiseWav(
        join(dir, 'non_scream', `noiseB__n${i}.wav`),
        2,
        i % 4 === 1 ? 'pinknoise' : 'brownnoise',
        0.05 + i * 0.01,
      );
  }
}

async function windowsOf(path: string): Promise<Float64Array[]> {
  const { samples } = await decodeAudioFile(path);
  return new WindowFeatureStream().push(samples).map((w) => w.values);
}

/**
 * A tiny forest trained at test time on sox-made sounds: scream-like sweeps vs silence,
 * room tone, hum and broadband noise. It makes tests independent of the shipped model
 * (which is being retrained): they test the daemon, not the model's accuracy.
 */
export async function tinyModelFile(dir: string): Promise<string> {
  const train = (name: string) => join(dir, `train-${name}.wav`);
  const pos: string[] = [];
  for (const [i, [sweep, gain]] of (
    [
      ['900:1400', 0.6],
      ['800:1300', 0.3],
      ['1000:1500', 0.8],
      ['900:1400', 0.15],
    ] as const
  ).entries()) {
    pos.push(await screamWav(train(`pos${i}`), 4, gain, sweep));
  }
  const neg = [
    await silenceWav(train('silence'), 4),
    await roomToneWav(train('brown'), 4),
    await noiseWav(train('brown-loud'), 4, 'brownnoise', 0.3),
    await noiseWav(train('pink'), 4, 'pinknoise', 0.2),
    await synth16k(train('hum'), 'synth', '4', 'sine', '120', 'vol', '0.3'),
    await synth16k(train('low-tone'), 'synth', '4', 'sine', '300', 'vol', '0.4'),
  ];
  const rows: Float64Array[] = [];
  const labels: number[] = [];
  for (const [label, files] of [
    [1, pos],
    [0, neg],
  ] as const) {
    for (const p of files) {
      for (const r of await windowsOf(p)) {
        rows.push(r);
        labels.push(label);
      }
    }
  }
  const forest = trainForest(rows, labels, {
    nEstimators: 20,
    maxDepth: 6,
    minSamplesSplit: 2,
    minSamplesLeaf: 1,
    seed: 7,
  });
  const model = {
    format: MODEL_FORMAT,
    version: 'test-tiny-1',
    featureNames: [...WINDOW_FEATURE_NAMES],
    featureSet: FEATURE_SET,
    threshold: 0.5,
    confirm: { k: 2, n: 3, releaseWindows: 2 },
    levelGateDbfs: -60,
    trainedAt: new Date(0).toISOString(),
    training: { note: 'test fixture: sox tones, not a real model' },
    forest,
  };
  const path = join(dir, 'tiny-forest.json');
  await writeFile(path, JSON.stringify(model));
  return path;
}
