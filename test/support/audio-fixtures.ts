import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temp directory removed by the returned cleanup. */
export function tempDir(prefix = 'screamwatch-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs sox with the given arguments (fixtures are generated, never committed). */
export function sox(...args: string[]): void {
  execFileSync('sox', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A synthetic scream-like sound: a harsh (sawtooth), high, rising-then-falling pitch with
 * vibrato and breath noise. Not a real scream, but it exercises the same features.
 */
export function synthScream(path: string, seconds = 2, baseHz = 900, seed = 1): void {
  const lo = baseHz;
  const hi = Math.round(baseHz * 1.5);
  sox(
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
export function speech(path: string, text: string, opts: { pitch?: number; voice?: string } = {}): void {
  const raw = `${path}.raw.wav`;
  execFileSync('espeak-ng', ['-w', raw, '-p', String(opts.pitch ?? 50), '-v', opts.voice ?? 'en', text], {
    stdio: 'ignore',
  });
  sox(raw, '-r', '16000', '-c', '1', '-b', '16', path);
  rmSync(raw);
}

export function noise(
  path: string,
  seconds: number,
  colour: 'whitenoise' | 'pinknoise' | 'brownnoise' = 'pinknoise',
  vol = 0.1,
): void {
  sox('-n', '-r', '16000', '-c', '1', '-b', '16', path, 'synth', String(seconds), colour, 'vol', String(vol));
}

export function silence(path: string, seconds: number): void {
  sox('-n', '-r', '16000', '-c', '1', '-b', '16', path, 'trim', '0', String(seconds));
}

/** A small labelled folder (scream/, non_scream/) of generated clips for train/eval tests. */
export function makeToyDataset(dir: string, perClass = 12): void {
  mkdirSync(join(dir, 'scream'), { recursive: true });
  mkdirSync(join(dir, 'non_scream'), { recursive: true });
  const texts = [
    'good morning, the lunch will be served at noon',
    'please remember to close the door behind you',
    'the weather is quite nice today, is it not',
    'i will call you back in about ten minutes',
  ];
  for (let i = 0; i < perClass; i++) {
    synthScream(join(dir, 'scream', `synthA__s${i}.wav`), 1.5 + (i % 3) * 0.5, 700 + i * 60, i);
    if (i % 2 === 0)
      speech(join(dir, 'non_scream', `speechA__n${i}.wav`), texts[i % texts.length]!, { pitch: 20 + i * 5 });
    else
      noise(
        join(dir, 'non_scream', `noiseB__n${i}.wav`),
        2,
        i % 4 === 1 ? 'pinknoise' : 'brownnoise',
        0.05 + i * 0.01,
      );
  }
}
