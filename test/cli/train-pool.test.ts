import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProgressBar } from '../../cli/progress.ts';
import { prepare } from '../../cli/train.ts';
import { validateAndFit } from '../../cli/train-pool.ts';
import { DEFAULT_FOREST, validationFolds } from '../../core/train/pipeline.ts';
import { ScreamwatchError } from '../../protocol/errors.ts';
import { makeToyDataset, tempDir } from '../support/audio-fixtures.ts';

const tmp = tempDir();
const quiet = { update() {} } as unknown as ProgressBar;
/** No clips at all, on two workers: `forest` null asks for the folds only. */
const noRows = (forest: typeof DEFAULT_FOREST | null) => ({
  clips: [],
  features: [],
  mixes: [],
  keys: [],
  folds: [],
  foldForest: DEFAULT_FOREST,
  forest,
  jobs: 2,
});
let prepared: Awaited<ReturnType<typeof prepare>>;
beforeAll(async () => {
  await makeToyDataset(join(tmp.dir, 'data'), 8);
  prepared = await prepare(join(tmp.dir, 'data'), quiet);
}, 120_000);
afterAll(() => tmp.cleanup());

describe('screamwatch train on worker threads', () => {
  it('gives the same folds and the same forest, to the bit, as one thread', async () => {
    const { clips, features, mixes } = prepared;
    const { keys, folds } = validationFolds(clips, 'family');
    expect(folds.length).toBeGreaterThan(1);
    const forest = { ...DEFAULT_FOREST, nEstimators: 8 };
    const input = { clips, features, mixes, keys, folds, foldForest: { ...forest, nEstimators: 6 }, forest };
    const seen: number[] = [];
    const one = await validateAndFit({ ...input, jobs: 1 });
    const two = await validateAndFit({ ...input, jobs: 2, onFold: (done) => seen.push(done) });
    expect(seen).toEqual(folds.map((_f, i) => i + 1));
    // at least one fold was really validated (the others lack a class without their group)
    expect(one.results.filter(Boolean).length).toBeGreaterThan(0);
    expect(two.results).toEqual(one.results);
    expect(JSON.stringify(two.forest)).toBe(JSON.stringify(one.forest));
  }, 120_000);

  it('a task that throws in a worker fails the run with TRAIN_WORKER_FAILED and stops every worker', async () => {
    // no rows at all: the shipped forest's fit throws inside the worker
    const run = validateAndFit(noRows(DEFAULT_FOREST));
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScreamwatchError);
    expect((err as ScreamwatchError).code).toBe('TRAIN_WORKER_FAILED');
    expect((err as Error).message).toMatch(/a training worker failed: .*no training rows/);
    // the leak check (test/support/leak-check.ts) fails the file if a worker were left running
  });

  it('nothing to do is done at once (no folds, no forest), not a wait for workers that never start', async () => {
    const run = await validateAndFit(noRows(null));
    expect(run).toEqual({ results: [], forest: null });
  });
});
