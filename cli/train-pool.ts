import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Clip } from '../core/train/dataset.ts';
import type { ForestOptions } from '../core/train/forest-trainer.ts';
import {
  type ClipFeatures,
  type FoldResult,
  type FoldTask,
  fitForest,
  foldTestClips,
  type Mix,
  validateFold,
} from '../core/train/pipeline.ts';
import { ScreamwatchError } from '../protocol/errors.ts';
import { bundleWorkerScript } from '../runtime/esbuild-service.ts';
import type { TrainReply, TrainTask, TrainWorkerData } from './train-worker.ts';

export interface ValidateAndFitInput {
  clips: readonly Clip[];
  features: ClipFeatures[];
  mixes: Mix[];
  keys: string[];
  folds: FoldTask[];
  foldForest: ForestOptions;
  /** The shipped forest, fitted on everything; null: the folds only (`eval --cross-validate`). */
  forest: ForestOptions | null;
  /** Worker threads; 1 runs everything on this thread. */
  jobs: number;
  /** After each finished task: folds done so far (of all folds), and the fold's group. */
  onFold?: (done: number, of: number, group: string) => void;
  /** Trees of the shipped forest fitted so far. */
  onTree?: (tree: number, of: number) => void;
}

/**
 * One worker per core, at most 4: each holds a copy of every clip's feature rows (a few tens
 * of MB for the training folder) and fits forests of its own.
 */
export function defaultJobs(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/**
 * The leave-one-family-out folds and the shipped forest, run side by side on `jobs` worker
 * threads (the folds were most of a 5-minute training on 2 cores, and none needs another's
 * result). Each task is a pure function of the same inputs, so the result is the same to the
 * bit as running them one after another on this thread (test/cli/train-pool.test.ts).
 * A worker that fails fails the whole run (TRAIN_WORKER_FAILED) and the others are stopped.
 */
export async function validateAndFit(input: ValidateAndFitInput): Promise<{
  results: (FoldResult | null)[];
  forest: unknown;
}> {
  const { clips, features, mixes, keys, folds } = input;
  if (input.jobs <= 1) {
    const samplesOf = (clip: number) => clips[clip]!.samples;
    const results = folds.map((task, i) => {
      const r = validateFold(task, keys, features, mixes, samplesOf, input.foldForest);
      input.onFold?.(i + 1, folds.length, task.heldOut);
      return r;
    });
    const forest = input.forest && fitForest([...features, ...mixes], input.forest, input.onTree);
    return { results, forest };
  }
  const code = await workerCode();
  const data: TrainWorkerData = { keys, features, mixes, foldForest: input.foldForest, forest: input.forest };
  // the shipped forest first: it is the longest task, and the folds fill the other workers
  const queue: TrainTask[] = [
    ...(input.forest ? [{ id: 0, kind: 'fit' as const }] : []),
    ...folds.map((task, i) => ({
      id: i + 1,
      kind: 'fold' as const,
      task,
      // only the held-out clips' audio: the fold scores them and mixes its screams into them
      samples: foldTestClips(features, keys, task).map(
        (f) => [f.clip, clips[f.clip]!.samples] as [number, Float32Array],
      ),
    })),
  ];
  const results: (FoldResult | null)[] = new Array(folds.length).fill(null);
  if (queue.length === 0) return { results, forest: null };
  let forest: unknown = null;
  let foldsDone = 0;
  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      // resolved or rejected: later events (terminate()'s exits) change nothing
      let settled = false;
      const fail = (message: string, cause?: unknown) => {
        if (settled) return;
        settled = true;
        reject(
          new ScreamwatchError(
            'TRAIN_WORKER_FAILED',
            `a training worker failed: ${message}`,
            { message },
            { cause },
          ),
        );
      };
      const next = (w: Worker) => {
        const job = queue.shift();
        if (!job) {
          if (running === 0 && !settled) {
            settled = true;
            resolve();
          }
          return;
        }
        running++;
        w.postMessage(job);
      };
      const count = Math.min(input.jobs, queue.length);
      for (let i = 0; i < count; i++) {
        const w = new Worker(code, { eval: true, workerData: data });
        workers.push(w);
        w.on('message', (reply: TrainReply) => {
          if (reply.kind === 'progress') return input.onTree?.(reply.tree, reply.of);
          if (reply.kind === 'error')
            return fail(reply.message, Object.assign(new Error(reply.message), { stack: reply.stack }));
          running--;
          if (reply.kind === 'fit') forest = reply.forest;
          else {
            results[reply.id - 1] = reply.result;
            foldsDone++;
            input.onFold?.(foldsDone, folds.length, folds[reply.id - 1]!.heldOut);
          }
          if (!settled) next(w);
        });
        w.on('error', (err) => fail(err.message, err));
        w.on('exit', (exitCode) => {
          if (exitCode !== 0) fail(`worker exited with code ${exitCode}`);
        });
        next(w);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return { results, forest };
}

let bundled: Promise<string> | null = null;

/** The worker script, bundled once per process (runtime/esbuild-service.ts). */
function workerCode(): Promise<string> {
  bundled ??= bundleWorkerScript(new URL('./train-worker.ts', import.meta.url)).catch((err: unknown) => {
    bundled = null;
    throw new ScreamwatchError(
      'TRAIN_WORKER_FAILED',
      `a training worker failed: bundling it failed: ${(err as Error).message}`,
      { message: 'bundle' },
      { cause: err },
    );
  });
  return bundled;
}
