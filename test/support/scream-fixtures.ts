import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeAudioFile } from '../../core/audio/decode.ts';
import { FEATURE_SET, WINDOW_FEATURE_NAMES } from '../../core/features/window-features.ts';
import { WindowFeatureStream } from '../../core/features/window-stream.ts';
import { MODEL_FORMAT } from '../../core/model/scream-model.ts';
import { trainForest } from '../../core/train/forest-trainer.ts';

const run = promisify(execFile);

/** A scream-like tone: a rising 900-1400 Hz sweep with a 6 Hz tremolo (sox synth). */
export async function screamWav(path: string, seconds = 2, gain = 0.6): Promise<string> {
  await run('sox', [
    '-n',
    '-r',
    '16000',
    '-c',
    '1',
    '-b',
    '16',
    path,
    'synth',
    String(seconds),
    'sine',
    '900:1400',
    'tremolo',
    '6',
    '40',
    'vol',
    String(gain),
  ]);
  return path;
}

export async function silenceWav(path: string, seconds: number): Promise<string> {
  await run('sox', ['-n', '-r', '16000', '-c', '1', '-b', '16', path, 'trim', '0', String(seconds)]);
  return path;
}

/** Quiet room tone: brown noise at about -50 dBFS. */
export async function roomToneWav(path: string, seconds: number): Promise<string> {
  await run('sox', [
    '-n',
    '-r',
    '16000',
    '-c',
    '1',
    '-b',
    '16',
    path,
    'synth',
    String(seconds),
    'brownnoise',
    'vol',
    '0.01',
  ]);
  return path;
}

/** Concatenates WAVs (all 16 kHz mono 16-bit). */
export async function concatWav(path: string, parts: string[]): Promise<string> {
  await run('sox', [...parts, path]);
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
  const pos: string[] = [];
  const neg: string[] = [];
  const sox = async (name: string, args: string[]) => {
    const p = join(dir, `train-${name}.wav`);
    await run('sox', ['-n', '-r', '16000', '-c', '1', '-b', '16', p, ...args]);
    return p;
  };
  for (const [i, [f, g]] of [
    ['900:1400', '0.6'],
    ['800:1300', '0.3'],
    ['1000:1500', '0.8'],
    ['900:1400', '0.15'],
  ].entries()) {
    pos.push(await sox(`pos${i}`, ['synth', '4', 'sine', f!, 'tremolo', '6', '40', 'vol', g!]));
  }
  neg.push(await sox('silence', ['trim', '0', '4']));
  neg.push(await sox('brown', ['synth', '4', 'brownnoise', 'vol', '0.01']));
  neg.push(await sox('brown-loud', ['synth', '4', 'brownnoise', 'vol', '0.3']));
  neg.push(await sox('pink', ['synth', '4', 'pinknoise', 'vol', '0.2']));
  neg.push(await sox('hum', ['synth', '4', 'sine', '120', 'vol', '0.3']));
  neg.push(await sox('low-tone', ['synth', '4', 'sine', '300', 'vol', '0.4']));
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
