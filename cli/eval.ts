import { parseArgs } from 'node:util';
import { loadModelFile } from '../core/model/load.ts';
import {
  chooseDefaults,
  crossValidate,
  DEFAULT_FOREST,
  evaluateModel,
  report,
} from '../core/train/pipeline.ts';
import { ProgressBar } from './progress.ts';
import { formatReport, prepare } from './train.ts';

const USAGE = `usage: screamwatch eval --data DIR [--model FILE] [--cross-validate] [--json]
  Default: scores the model (the shipped one, or --model) on every clip in DIR (scream/, non_scream/)
  and prints ROC-AUC, average precision, precision/recall/F1 and false-positive rate at the
  model's threshold, confirmed false alarms per hour, event recall and latency in noise.
  --cross-validate: instead validates the training recipe leave-one-source-out on DIR.`;

export async function runEval(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      model: { type: 'string' },
      'cross-validate': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.data) {
    (values.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const bar = new ProgressBar();
  const model = values['cross-validate'] ? null : loadModelFile(values.model);
  const { clips, features, mixes } = await prepare(values.data, bar);
  let r: ReturnType<typeof report>;
  if (model) r = evaluateModel(clips, features, model);
  else {
    const cv = crossValidate(clips, features, mixes, DEFAULT_FOREST, (i, of, s) =>
      bar.update(`validate: ${s}`, i - 1, of),
    );
    if (cv.folds.length === 0) {
      process.stderr.write('cross-validation needs at least two sources that hold both classes\n');
      return 1;
    }
    r = report(cv.scored, cv.noisyScored, cv.folds, chooseDefaults(cv.scored));
  }
  process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${formatReport(r)}\n`);
  return 0;
}
