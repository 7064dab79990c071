// Writes the demo recording (a synthetic scream in room tone and babble) and checks that the
// detection model fires on it:  npx tsx demo/generate-recording.ts [out.wav] [--model FILE]
import { parseArgs } from 'node:util';
import { analyzeSamples } from '../core/detect/analyze.ts';
import { loadModelFile } from '../core/model/load.ts';
import { writeDemoRecording } from './scream-recording.ts';

const { values, positionals } = parseArgs({
  options: { model: { type: 'string' } },
  allowPositionals: true,
});
const out = positionals[0] ?? 'screamwatch-demo.wav';
const rec = writeDemoRecording(out);
const model = values.model ? loadModelFile(values.model) : loadModelFile();
const result = analyzeSamples(rec.samples, model);
const scream = rec.screams[0]!;
process.stdout.write(
  `${out}: ${rec.durationS.toFixed(1)} s, scream at ${scream.startS}-${scream.endS} s\n` +
    `model ${result.modelVersion} (threshold ${result.thresholdValue}): max window probability ${result.maxProbability.toFixed(2)}, ` +
    `${result.events.length} event(s) ${JSON.stringify(result.events)}\n`,
);
const hit = result.events.some((e) => e.endS > scream.startS && e.startS < scream.endS);
if (!hit) {
  process.stderr.write('the model does not detect the demo scream\n');
  process.exitCode = 1;
}
