// Runs in a worker thread: decoding (sinc resampling) and scoring a long upload take
// seconds of CPU, and the dashboard shares its event loop with MQTT ingest and alerting.
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
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

/**
 * This thread alone runs 10 nice levels lower (Linux: a thread's TID is a valid target of
 * setpriority). Scoring uploads keeps a core busy for seconds per file; on a small machine the
 * main thread's MQTT ingest must win that core back at once (issue 11: 20 uploaders pushed a
 * sensor's PUBACK to 7.4 s). Elsewhere, or where /proc is missing, it stays as it is.
 */
function lowerThisThreadsPriority(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid === process.pid) return;
    setPriority(tid, Math.min(19, getPriority(tid) + 10));
  } catch {
    // not Linux, or not allowed: analysis just competes with ingest as any thread does
  }
}
lowerThisThreadsPriority();

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
