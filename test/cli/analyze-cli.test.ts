import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harshScreamWav, makeToyDataset, silenceWav, sox, tempDir } from '../support/audio-fixtures.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../bin/screamwatch.js');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      timeout: 240_000,
      maxBuffer: 1 << 26,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const tmp = tempDir();
let modelPath = '';
beforeAll(async () => {
  // a small labelled folder, trained on in the test: train -> analyze end to end
  await makeToyDataset(join(tmp.dir, 'data'), 10);
  modelPath = join(tmp.dir, 'toy-model.json');
  const r = await cli(['train', '--data', join(tmp.dir, 'data'), '--out', modelPath, '--trees', '20']);
  expect(r.stderr).toMatch(/wrote .*toy-model\.json/);
  expect(r.code).toBe(0);
  const clips = join(tmp.dir, 'clips');
  await sox(
    '-n',
    '-r',
    '16000',
    '-c',
    '1',
    join(tmp.dir, 'lead.wav'),
    'synth',
    '3',
    'pinknoise',
    'vol',
    '0.02',
  );
  await harshScreamWav(join(tmp.dir, 'scream.wav'), 2.5, 950, 5);
  await sox(
    '-n',
    '-r',
    '16000',
    '-c',
    '1',
    join(tmp.dir, 'tail.wav'),
    'synth',
    '2',
    'pinknoise',
    'vol',
    '0.02',
  );
  await run('mkdir', ['-p', join(clips, 'sub')]);
  await sox(
    join(tmp.dir, 'lead.wav'),
    join(tmp.dir, 'scream.wav'),
    join(tmp.dir, 'tail.wav'),
    join(clips, 'sub', 'with-scream.wav'),
  );
  await silenceWav(join(clips, 'quiet.wav'), 4);
  await sox(join(clips, 'quiet.wav'), '-r', '44100', join(clips, 'quiet-copy.mp3'));
  writeFileSync(join(clips, 'corrupt.wav'), 'RIFF....WAVEjunk');
}, 280_000);
afterAll(() => tmp.cleanup());

describe('screamwatch analyze --json (contract)', () => {
  it('prints one JSON object per file, finds files recursively, reports bad files and exits 1', async () => {
    const r = await cli(['analyze', join(tmp.dir, 'clips'), '--json', '--model', modelPath]);
    expect(r.code).toBe(1);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.file.split('/').slice(-1)[0]).sort()).toEqual([
      'corrupt.wav',
      'quiet-copy.mp3',
      'quiet.wav',
      'with-scream.wav',
    ]);
    const bad = lines.find((l) => l.file.endsWith('corrupt.wav'));
    expect(Object.keys(bad).sort()).toEqual(['error', 'file']);
    expect(bad.error).toMatch(/corrupt\.wav/);

    for (const ok of lines.filter((l) => !l.error)) {
      expect(Object.keys(ok).sort()).toEqual([
        'durationS',
        'events',
        'file',
        'isScream',
        'maxProbability',
        'thresholdValue',
        'windows',
      ]);
      expect(ok.windows.length).toBeGreaterThan(0);
      for (const w of ok.windows) expect(Object.keys(w).sort()).toEqual(['endS', 'probability', 'startS']);
    }
    const scream = lines.find((l) => l.file.endsWith('with-scream.wav'));
    expect(scream.durationS).toBeCloseTo(7.5, 1);
    expect(scream.isScream).toBe(true);
    expect(scream.events.length).toBe(1);
    const ev = scream.events[0];
    expect(Object.keys(ev).sort()).toEqual(['detectedAtS', 'endS', 'peakProbability', 'startS']);
    // the scream starts at 3.0 s: the event is confirmed after it, within a few windows
    expect(ev.detectedAtS).toBeGreaterThan(3.0);
    expect(ev.detectedAtS).toBeLessThan(5.0);
    const quiet = lines.find((l) => l.file.endsWith('quiet.wav'));
    expect(quiet.isScream).toBe(false);
    expect(quiet.maxProbability).toBe(0);
  });

  it('without --json prints a readable timeline', async () => {
    const r = await cli(['analyze', join(tmp.dir, 'clips', 'sub', 'with-scream.wav'), '--model', modelPath]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/SCREAM \(1 event\)/);
    expect(r.stdout).toMatch(/event 0:0\d\.\d-0:0\d\.\d +confirmed at/);
  });

  it('threshold override and usage errors', async () => {
    const r = await cli([
      'analyze',
      join(tmp.dir, 'clips', 'quiet.wav'),
      '--json',
      '--model',
      modelPath,
      '--threshold',
      '0.9',
    ]);
    expect(JSON.parse(r.stdout).thresholdValue).toBe(0.9);
    expect((await cli(['analyze'])).code).toBe(2);
    const bad = await cli(['analyze', 'x.wav', '--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bogus/);
    const missingModel = await cli(['analyze', 'x.wav', '--model', join(tmp.dir, 'none.json')]);
    expect(missingModel.code).toBe(1);
    expect(missingModel.stderr).toMatch(/MODEL_NOT_FOUND.*none\.json/);
  });

  it('eval scores a model on a labelled folder and prints the metrics', async () => {
    const r = await cli(['eval', '--data', join(tmp.dir, 'data'), '--model', modelPath, '--json']);
    expect(r.code).toBe(0);
    const m = JSON.parse(r.stdout);
    expect(m.windows.rocAuc).toBeGreaterThan(0.9);
    expect(m.windows.atThreshold).toHaveProperty('falsePositiveRate');
    expect(m.events).toHaveProperty('falseAlarmsPerHour');
    expect(m.noisy.map((n: { snrDb: number }) => n.snrDb)).toEqual([0, 5, 10, 20]);
  });

  it('eval --cross-validate --baseline compares clip ranking with the plain method on the same folds', async () => {
    const r = await cli([
      'eval',
      '--data',
      join(tmp.dir, 'data'),
      '--cross-validate',
      '--group-by',
      'recording',
      '--baseline',
      '--trees',
      '10',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const m = JSON.parse(r.stdout);
    expect(m.clips.count).toBe(20);
    expect(m.clips.rocAuc).toBeGreaterThan(0.8);
    expect(m.baseline.description).toMatch(/time means of 13 MFCC, 12 chroma, ZCR and RMS/);
    // the same folds: every clip the recipe scored, the baseline scored too
    expect(m.baseline.clips.count).toBe(m.clips.count);
    expect(m.baseline.groups.map((g: { group: string }) => g.group)).toEqual(
      m.groups.map((g: { group: string }) => g.group),
    );
    expect(m.baseline.clips.rocAuc).toBeGreaterThan(0.8);
    const text = await cli(['eval', '--data', join(tmp.dir, 'data'), '--model', modelPath, '--baseline']);
    expect(text.code).toBe(2);
    expect(text.stderr).toMatch(/--baseline .* needs --cross-validate/);
  });

  it('train refuses a folder without scream/ and non_scream/', async () => {
    const r = await cli(['train', '--data', join(tmp.dir, 'clips'), '--out', join(tmp.dir, 'x.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/scream.*missing/);
  });

  it("train records the validation forests' size and refuses a bad --validation-trees before reading audio", async () => {
    const model = JSON.parse(readFileSync(modelPath, 'utf8'));
    // --trees 20: the validation folds grow as many trees as the model
    expect(model.training.forest.nEstimators).toBe(20);
    expect(model.training.validationTrees).toBe(20);
    const r = await cli(['train', '--data', join(tmp.dir, 'data'), '--validation-trees', '0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--validation-trees must be a positive integer, got "0"/);
  });
});
