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
  --cross-validate: instead validates the training recipe on DIR, grouped by --group-by
  source (leave-one-source-out, the default) or recording (5 folds of whole recordings).`;

export async function runEval(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      model: { type: 'string' },
      'cross-validate': { type: 'boolean', default: false },
      'group-by': { type: 'string', default: 'source' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.data) {
    (values.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const groupBy = values['group-by'];
  if (groupBy !== 'source' && groupBy !== 'recording') {
    process.stderr.write(`--group-by must be source or recording, got ${JSON.stringify(groupBy)}\n`);
    return 2;
  }
  const bar = new ProgressBar();
  const model = values['cross-validate'] ? null : loadModelFile(values.model);
  const { clips, features, mixes } = await prepare(values.data, bar);
  let r: ReturnType<typeof report>;
  if (model) r = evaluateModel(clips, features, model);
  else {
    const cv = crossValidate(
      clips,
      features,
      mixes,
      DEFAULT_FOREST,
      (i, of, s) => bar.update(`validate: ${s}`, i - 1, of),
      groupBy,
    );
    if (cv.folds.length === 0) {
      process.stderr.write('cross-validation needs at least two groups that hold both classes\n');
      return 1;
    }
    r = report(cv.scored, cv.noisyScored, cv.folds, chooseDefaults(cv.scored), groupBy);
  }
  process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${formatReport(r)}\n`);
  return 0;
}
