// Detection-core benchmark: feature extraction + forest inference speed on one core (in
// times real time), model load time, RSS, and (when a training folder is at hand) the time
// of a full `screamwatch train` fit. Figures only; nothing here is asserted.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { analyzeSamples } from '../core/detect/analyze.ts';
import { loadModelFile } from '../core/model/load.ts';
import { loadDataset } from '../core/train/dataset.ts';
import { buildMixes, clipFeaturesOf, DEFAULT_FOREST, fitForest } from '../core/train/pipeline.ts';

/** Speech-like test signal: harmonic tone with moving pitch, noise and pauses. */
function testSignal(seconds: number): Float32Array {
  const x = new Float32Array(seconds * 16000);
  let phase = 0;
  let seed = 7;
  for (let i = 0; i < x.length; i++) {
    seed = (seed * 16807) % 2147483647;
    const t = i / 16000;
    const f0 = 180 + 80 * Math.sin(t * 1.3) + (t % 7 > 5 ? 700 : 0);
    phase += (2 * Math.PI * f0) / 16000;
    const voiced = Math.sin(phase) + 0.5 * Math.sin(2 * phase) + 0.3 * Math.sin(3 * phase);
    const gate = t % 3 < 2.2 ? 1 : 0.05;
    x[i] = 0.2 * gate * voiced + 0.01 * ((seed / 2147483647) * 2 - 1);
  }
  return x;
}

export async function runCoreBench(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  const t0 = performance.now();
  const model = loadModelFile();
  out.modelLoadMs = round(performance.now() - t0);
  out.modelVersion = model.version;
  const seconds = 300;
  const audio = testSignal(seconds);
  analyzeSamples(audio.subarray(0, 16000 * 10), model); // warm-up (JIT)
  // the median of three runs: one run on a shared VM varies by +-20%
  const runs: number[] = [];
  let r = analyzeSamples(audio.subarray(0, 16000), model);
  for (let i = 0; i < 3; i++) {
    const t1 = performance.now();
    r = analyzeSamples(audio, model);
    runs.push((performance.now() - t1) / 1000);
  }
  const elapsed = runs.sort((a, b) => a - b)[1]!;
  out.analysisRunsTimesRealTime = runs.map((e) => round(seconds / e)).join(' / ');
  out.analysedSeconds = seconds;
  out.windows = r.windows.length;
  out.analysisTimesRealTime = round(seconds / elapsed);
  out.msPerWindow = round((elapsed * 1000) / r.windows.length, 3);
  out.rssMb = round(process.memoryUsage().rss / 1e6);
  const data = process.env.BENCH_TRAIN_DATA ?? resolve(import.meta.dirname, '../../shared/data/train');
  if (existsSync(data)) {
    const t2 = performance.now();
    const clips = await loadDataset(data);
    const features = clipFeaturesOf(clips);
    const mixes = buildMixes(clips, features, 7);
    const t3 = performance.now();
    fitForest([...features, ...mixes], DEFAULT_FOREST);
    const t4 = performance.now();
    out.trainDecodeAndFeaturesS = round((t3 - t2) / 1000);
    out.trainForestFitS = round((t4 - t3) / 1000);
    out.trainTotalWithoutValidationS = round((t4 - t2) / 1000);
    out.trainingFromModelFileS = String((model.meta.training as { seconds?: number }).seconds ?? 'n/a');
  } else out.training = `skipped: no data folder at ${data} (set BENCH_TRAIN_DATA)`;
  out.peakRssMb = round(process.memoryUsage().rss / 1e6);
  return out;
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.table(await runCoreBench());
}
