// Runs in a worker thread of `screamwatch train` (cli/train-pool.ts): validation folds and the
// final forest are independent pure computations over the same rows, so they run side by side.
import { parentPort, workerData } from 'node:worker_threads';
import type { ForestOptions } from '../core/train/forest-trainer.ts';
import {
  type ClipFeatures,
  type FoldTask,
  fitForest,
  type Mix,
  validateFold,
} from '../core/train/pipeline.ts';

export interface TrainWorkerData {
  keys: string[];
  features: ClipFeatures[];
  mixes: Mix[];
  /** The forest of each validation fold (`--validation-trees`). */
  foldForest: ForestOptions;
  /** The shipped forest, fitted on every clip and copy (null: no such task is sent). */
  forest: ForestOptions | null;
}

export type TrainTask =
  | { id: number; kind: 'fold'; task: FoldTask; samples: [number, Float32Array][] }
  | { id: number; kind: 'fit' };

export type TrainReply =
  | { id: number; kind: 'fold'; result: ReturnType<typeof validateFold> }
  | { id: number; kind: 'fit'; forest: unknown }
  | { id: number; kind: 'progress'; tree: number; of: number }
  | { id: number; kind: 'error'; message: string; stack?: string };

const data = workerData as TrainWorkerData;
const port = parentPort!;

port.on('message', (job: TrainTask) => {
  try {
    if (job.kind === 'fit') {
      if (!data.forest) throw new Error('no forest options for the fit task');
      const forest = fitForest([...data.features, ...data.mixes], data.forest, (tree, of) =>
        port.postMessage({ id: job.id, kind: 'progress', tree, of } satisfies TrainReply),
      );
      port.postMessage({ id: job.id, kind: 'fit', forest } satisfies TrainReply);
    } else {
      const samples = new Map(job.samples);
      const samplesOf = (clip: number) => {
        const s = samples.get(clip);
        if (!s) throw new RangeError(`fold ${job.task.heldOut}: no audio sent for clip ${clip}`);
        return s;
      };
      const result = validateFold(job.task, data.keys, data.features, data.mixes, samplesOf, data.foldForest);
      port.postMessage({ id: job.id, kind: 'fold', result } satisfies TrainReply);
    }
  } catch (err) {
    const e = err as Error;
    port.postMessage({ id: job.id, kind: 'error', message: e.message, stack: e.stack } satisfies TrainReply);
  }
});
