import { parseArgs } from 'node:util';
import { loadModelFile } from '../core/model/load.ts';
import { validateBaseline } from '../core/train/baseline.ts';
import {
  chooseDefaults,
  compareRules,
  DEFAULT_FOREST,
  decisionCandidates,
  evaluateModel,
  folderShortcutItems,
  type GroupBy,
  mergeFolds,
  report,
  shortcutCheck,
  trainingSetShortcutItems,
  type ValidationReport,
  validationFolds,
} from '../core/train/pipeline.ts';
import { ProgressBar } from './progress.ts';
import { formatReport, prepare, VALIDATION_TREES } from './train.ts';
import { defaultJobs, validateAndFit } from './train-pool.ts';

const USAGE = `usage: screamwatch eval --data DIR [--model FILE] [--cross-validate [--baseline]] [--group-by G] [--trees N] [--jobs N] [--json]
  Default: scores the model (the shipped one, or --model) on every clip in DIR (scream/, non_scream/)
  and prints ROC-AUC, average precision, precision/recall/F1 and false-positive rate at the
  model's threshold, confirmed false alarms per hour, event recall and latency in noise, per
  source family, and the bandwidth/level shortcut check on the folder.
  --cross-validate: instead validates the training recipe on DIR, grouped by --group-by
  family (leave-one-family-out, the default), source (leave-one-source-out) or recording
  (5 folds of whole recordings); also compares the decision rules and runs the shortcut
  check on the augmented training set. --trees N: each fold's forest (default ${VALIDATION_TREES},
  as in train). --jobs N: folds on N worker threads (default one per
  core, at most 4; the figures are the same either way). --baseline: also validates the plain
  method this model replaced (time means of MFCC, chroma, ZCR and RMS per clip, one forest, no
  augmentation) on the same folds and compares clip ROC-AUC, pooled and per group.`;

const GROUP_BYS: readonly GroupBy[] = ['family', 'source', 'recording'];

export async function runEval(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      model: { type: 'string' },
      'cross-validate': { type: 'boolean', default: false },
      baseline: { type: 'boolean', default: false },
      'group-by': { type: 'string', default: 'family' },
      trees: { type: 'string' },
      jobs: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.data) {
    (values.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  if (values.baseline && !values['cross-validate']) {
    process.stderr.write('--baseline compares validation folds: it needs --cross-validate\n');
    return 2;
  }
  const groupBy = values['group-by'] as GroupBy;
  if (!GROUP_BYS.includes(groupBy)) {
    process.stderr.write(
      `--group-by must be one of ${GROUP_BYS.join(', ')}, got ${JSON.stringify(groupBy)}\n`,
    );
    return 2;
  }
  // the folds of `train` by default, so `eval --cross-validate` reproduces the model card's figures
  const trees = countFlag('--trees', values.trees, VALIDATION_TREES);
  const jobs = countFlag('--jobs', values.jobs, defaultJobs());
  if (trees === null || jobs === null) return 2;
  const bar = new ProgressBar();
  const model = values['cross-validate'] ? null : loadModelFile(values.model);
  const { clips, features, mixes } = await prepare(values.data, bar, model === null);
  let r: ValidationReport;
  if (model) r = evaluateModel(clips, features, model);
  else {
    const { keys, folds } = validationFolds(clips, groupBy);
    const run = await validateAndFit({
      clips,
      features,
      mixes,
      keys,
      folds,
      foldForest: { ...DEFAULT_FOREST, nEstimators: trees },
      forest: null,
      jobs,
      onFold: (done, of) => bar.update('validate', done, of),
    });
    const cv = mergeFolds(run.results);
    if (cv.folds.length === 0) {
      process.stderr.write('cross-validation needs at least two groups that hold both classes\n');
      return 1;
    }
    const all = decisionCandidates(cv.scored, cv.noisyScored);
    r = {
      ...report(cv.scored, cv.noisyScored, cv.folds, chooseDefaults(cv.scored, cv.noisyScored, all), groupBy),
      rules: compareRules(cv.scored, cv.noisyScored, all),
    };
    if (values.baseline) {
      bar.update('baseline', 0, 1);
      r.baseline = validateBaseline(features, keys);
      bar.update('baseline', 1, 1);
    }
  }
  bar.update('shortcut check', 0, 1);
  const gb = model ? 'family' : groupBy === 'recording' ? 'family' : groupBy;
  r.shortcut = {
    folder: shortcutCheck(folderShortcutItems(clips, gb)),
    ...(model ? {} : { trainingSet: shortcutCheck(trainingSetShortcutItems(clips, mixes, gb)) }),
  };
  bar.update('shortcut check', 1, 1);
  process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${formatReport(r)}\n`);
  return 0;
}

/** A positive whole-number flag, or its default; null (after saying why) for anything else. */
function countFlag(name: string, value: string | undefined, fallback: number): number | null {
  const n = value === undefined ? fallback : Number(value);
  if (Number.isInteger(n) && n >= 1) return n;
  process.stderr.write(`${name} must be a positive integer, got ${JSON.stringify(value)}\n`);
  return null;
}
