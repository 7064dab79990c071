// Runs in a worker thread: decoding (sinc resampling) and scoring a long upload take
// seconds of CPU, and the dashboard shares its event loop with MQTT ingest and alerting.
import { parentPort, workerData } from 'node:worker_threads';
import { decodeAudio } from '../../core/audio/decode.ts';
import { AudioDecodeError } from '../../core/audio/errors.ts';
import { analyzeSamples } from '../../core/detect/analyze.ts';
import { ScreamModel } from '../../core/model/scream-model.ts';
import { ScreamwatchError } from '../../protocol/errors.ts';

export interface AnalysisJob {
  id: number;
  bytes: Uint8Array;
  name: string;
  threshold?: number;
  maxSeconds?: number;
}

const model = ScreamModel.fromJSON(
  JSON.parse((workerData as { modelJson: string }).modelJson),
  'dashboard model',
);

parentPort?.on('message', async (job: AnalysisJob) => {
  try {
    const decoded = await decodeAudio(
      job.bytes,
      job.name,
      job.maxSeconds !== undefined ? { maxSeconds: job.maxSeconds } : {},
    );
    if (decoded.samples.length === 0)
      throw new AudioDecodeError('AUDIO_EMPTY', job.name, 'no audio samples in the file');
    const result = analyzeSamples(
      decoded.samples,
      model,
      job.threshold !== undefined ? { threshold: job.threshold } : {},
    );
    parentPort?.postMessage({
      id: job.id,
      ok: true,
      originalSampleRate: decoded.originalSampleRate,
      result,
    });
  } catch (err) {
    const e = err as Error;
    parentPort?.postMessage({
      id: job.id,
      ok: false,
      error: {
        code: err instanceof ScreamwatchError ? err.code : 'WEB_ANALYSIS_FAILED',
        message: e.message,
        coded: err instanceof ScreamwatchError,
      },
    });
  }
});
