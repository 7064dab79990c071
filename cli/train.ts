import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_PATH } from '../core/model/load.ts';
import { validateBaseline } from '../core/train/baseline.ts';
import { loadDataset } from '../core/train/dataset.ts';
import { num, pct } from '../core/train/model-card.ts';
import {
  buildMixes,
  buildModelFile,
  chooseDefaults,
  clipFeaturesOf,
  compareRules,
  DEFAULT_AUGMENT,
  DEFAULT_FOREST,
  decisionCandidates,
  fitForest,
  MAX_FALSE_ALARMS_PER_HOUR,
  type ModelDefaults,
  mergeFolds,
  NOISY_SNRS_DB,
  report,
  SHORTCUT_WARN_AUC,
  type ValidationReport,
  validationFolds,
} from '../core/train/pipeline.ts';
import { ProgressBar } from './progress.ts';
import { defaultJobs, validateAndFit } from './train-pool.ts';

/**
 * Validation folds grow forests of the shipped size, so the defaults are chosen on vote shares
 * of the forest that ships (40-tree folds picked a threshold 0.02 lower on the same forest:
 * 137 against 112 false alarms/h held out). With the folds on worker threads and table-driven
 * speed copies this costs 11 s more than 40 trees (1 min 27 s in all on 2 cores).
 */
export const VALIDATION_TREES = DEFAULT_FOREST.nEstimators;

const USAGE = `usage: screamwatch train --data DIR [--out FILE] [--no-validate] [--trees N] [--validation-trees N] [--jobs N] [--seed N]
  DIR holds scream/ and non_scream/ (WAV/MP3, any rate) and optionally manifest.csv.
  Validates the recipe leave-one-family-out (and the plain whole-clip baseline on the same
  folds, for comparison), picks the default threshold, k-of-n and
  short-scream rule from it (at most 2 false alarms per hour of held-out audio),
  trains on everything and writes the model (default: the shipped models/screamwatch-forest.json).
  --validation-trees N: trees of each validation fold's forest (default: as many as the model, --trees).
  --jobs N: worker threads for the folds and the forest (default: one per core, at most 4;
  1 runs on one thread; the model is the same to the bit either way).`;

export async function runTrain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      out: { type: 'string' },
      'no-validate': { type: 'boolean', default: false },
      trees: { type: 'string' },
      'validation-trees': { type: 'string' },
      jobs: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.data) {
    (values.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const started = performance.now();
  const bar = new ProgressBar();
  const log = (msg: string) => process.stderr.write(`${msg}\n`);
  const forest = {
    ...DEFAULT_FOREST,
    ...(values.trees ? { nEstimators: positiveInt('--trees', values.trees) } : {}),
    ...(values.seed ? { seed: positiveInt('--seed', values.seed) } : {}),
  };

  // parsed before the slow part, so a bad value fails at once
  const validationTrees = values['validation-trees']
    ? positiveInt('--validation-trees', values['validation-trees'])
    : forest.nEstimators;
  const jobs = values.jobs ? positiveInt('--jobs', values.jobs) : defaultJobs();

  const prepared = await prepare(values.data, bar);
  const { clips, features, mixes } = prepared;
  let defaults: ModelDefaults = {
    threshold: 0.5,
    confirm: { k: 2, n: 3, releaseWindows: 4 },
    levelGateDbfs: -60,
  };
  let validation: ValidationReport | undefined;
  let forestJson: unknown;
  if (!values['no-validate']) {
    // Defaults are chosen leave-one-family-out: a sensor hears sources and kinds of sound
    // that are not in the folder, and the threshold must hold there, not only on new
    // recordings of familiar sources (that choice gave 25-75 false alarms an hour on
    // held-out sets).
    const { keys, folds } = validationFolds(clips, 'family');
    const progress = { folds: 0, trees: 0 };
    const show = () =>
      bar.update(
        `validate ${progress.folds}/${folds.length} folds, forest ${progress.trees}/${forest.nEstimators} trees`,
        progress.folds + progress.trees / forest.nEstimators,
        folds.length + 1,
      );
    const run = await validateAndFit({
      clips,
      features,
      mixes,
      keys,
      folds,
      foldForest: { ...forest, nEstimators: validationTrees },
      forest,
      jobs,
      onFold: (done) => {
        progress.folds = done;
        show();
      },
      onTree: (tree) => {
        progress.trees = tree;
        show();
      },
    });
    forestJson = run.forest;
    const cv = mergeFolds(run.results);
    if (cv.folds.length === 0) log('validation skipped: needs recordings of both classes in several folds');
    else {
      const all = decisionCandidates(cv.scored, cv.noisyScored);
      defaults = chooseDefaults(cv.scored, cv.noisyScored, all);
      bar.update('baseline', 0, 1);
      validation = {
        ...report(cv.scored, cv.noisyScored, cv.folds, defaults, 'family'),
        rules: compareRules(cv.scored, cv.noisyScored, all),
        // the plain method on the same folds: the bar the recipe must clear (about 2 s: its rows
        // come from the frames clipFeaturesOf analysed)
        baseline: validateBaseline(features, keys),
      };
      bar.update('baseline', 1, 1);
    }
  } else {
    forestJson = fitForest([...features, ...mixes], forest, (t, of) => bar.update('train forest', t, of));
  }
  const sources = summariseSources(clips);
  const file = buildModelFile(
    forestJson,
    defaults,
    {
      data: resolve(values.data),
      clips: clips.length,
      screamClips: clips.filter((c) => c.label === 1).length,
      nonScreamClips: clips.filter((c) => c.label === 0).length,
      augmentedCopies: {
        screams: mixes.filter((m) => m.label === 1).length,
        nonScreams: mixes.filter((m) => m.label === 0).length,
        ...DEFAULT_AUGMENT,
      },
      sources,
      forest,
      validationTrees: values['no-validate'] ? null : validationTrees,
      seconds: Math.round((performance.now() - started) / 100) / 10,
    },
    validation as unknown as Record<string, unknown> | undefined,
  );
  const out = resolve(values.out ?? DEFAULT_MODEL_PATH);
  await mkdir(dirname(out), { recursive: true });
  const text = JSON.stringify(file);
  await writeFile(out, text);
  log(
    `wrote ${out} (${(text.length / 1e6).toFixed(2)} MB, version ${file.version}) in ${file.training.seconds} s`,
  );
  if (validation) process.stdout.write(`${formatReport(validation)}\n`);
  return 0;
}

export async function prepare(dataDir: string, bar: ProgressBar, augment = true) {
  const clips = await loadDataset(dataDir, { onClip: (d, t) => bar.update('decode clips', d, t) });
  const features = clipFeaturesOf(clips, (d, t) => bar.update('features', d, t));
  const mixes = augment
    ? buildMixes(clips, features, 7, DEFAULT_AUGMENT, (d, t) => bar.update('augment', d, t))
    : [];
  return { clips, features, mixes };
}

function summariseSources(clips: { source: string; license: string; label: 0 | 1; durationS: number }[]) {
  const map = new Map<
    string,
    { source: string; license: string; screams: number; nonScreams: number; minutes: number }
  >();
  for (const c of clips) {
    const s = map.get(c.source) ?? {
      source: c.source,
      license: c.license,
      screams: 0,
      nonScreams: 0,
      minutes: 0,
    };
    if (c.label === 1) s.screams++;
    else s.nonScreams++;
    s.minutes += c.durationS / 60;
    map.set(c.source, s);
  }
  return [...map.values()].map((s) => ({ ...s, minutes: Math.round(s.minutes * 10) / 10 }));
}

function positiveInt(name: string, v: string): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x < 1)
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return x;
}

export function formatReport(r: ValidationReport): string {
  const w = r.windows;
  const a = w.atThreshold;
  const c = r.defaults.confirm;
  const rule = `${c.k} of ${c.n} windows${c.singleWindowThreshold !== undefined ? `, or one window >= ${c.singleWindowThreshold}` : ''}`;
  const lines = [
    `Validation: ${r.method}`,
    `Windows (${w.count}, ${w.screams} scream):`,
    `  ROC-AUC ${w.rocAuc.toFixed(3)}   average precision ${w.averagePrecision.toFixed(3)}`,
    `  at threshold ${a.threshold}: precision ${pct(a.precision)}  recall ${pct(a.recall)}  F1 ${a.f1.toFixed(3)}  false-positive rate ${pct(a.falsePositiveRate)}`,
    `Clips (${r.clips.count}, ${r.clips.screams} scream; each scored by its highest window):`,
    `  ROC-AUC ${r.clips.rocAuc.toFixed(3)}   average precision ${r.clips.averagePrecision.toFixed(3)}`,
    `Events (confirmed at ${rule}):`,
    `  scream clips detected ${pct(r.events.eventRecall)} of ${r.events.screamClips}`,
    `  false alarms ${r.events.falseAlarms} in ${(r.events.nonScreamHours * 60).toFixed(1)} min of non-scream audio = ${r.events.falseAlarmsPerHour.toFixed(2)} per hour`,
    `  latency from clip start: median ${num(r.events.medianLatencyS)} s, p90 ${num(r.events.p90LatencyS)} s`,
  ];
  if (r.noisy.some((n) => n.clips > 0)) {
    lines.push(`Screams mixed into held-out background recordings (2 s lead-in):`);
    for (const n of r.noisy) {
      lines.push(
        `  SNR ${String(n.snrDb).padStart(2)} dB: event recall ${pct(n.eventRecall)} of ${n.clips}, latency from onset median ${num(n.medianLatencyS)} s, p90 ${num(n.p90LatencyS)} s`,
      );
    }
    lines.push(
      `  latency from onset, all SNRs: median ${num(r.latencyFromOnset.medianS)} s, p90 ${num(r.latencyFromOnset.p90S)} s`,
    );
  }
  if (r.groups.length) {
    lines.push(
      'Per held-out group: screams/non-screams, window ROC-AUC, clip ROC-AUC, window FPR, clip event recall, false alarms/h, recall at 0/5/10/20 dB, latency median/p90',
    );
    for (const g of r.groups) {
      const noisy = NOISY_SNRS_DB.map((s) => pct(g.noisyRecall.find((n) => n.snrDb === s)?.eventRecall)).join(
        '/',
      );
      lines.push(
        `  ${g.group.padEnd(28)} ${String(g.screamClips).padStart(3)}/${String(g.nonScreamClips).padEnd(4)} AUC ${num(g.rocAuc, 3).padStart(5)}  clip AUC ${num(g.clipRocAuc, 3).padStart(5)}  FPR ${pct(g.windowFalsePositiveRate).padStart(5)}  recall ${pct(g.eventRecall).padStart(6)}  FA/h ${num(g.falseAlarmsPerHour, 1).padStart(5)} (${g.falseAlarms})  noisy ${noisy}  lat ${num(g.medianLatencyS)}/${num(g.p90LatencyS)} s`,
      );
    }
  }
  if (r.baseline && Number.isFinite(r.baseline.clips.rocAuc)) {
    const b = r.baseline;
    lines.push(
      `Baseline on the same folds (${b.description}):`,
      `  clip ROC-AUC ${b.clips.rocAuc.toFixed(3)}   average precision ${b.clips.averagePrecision.toFixed(3)}   (this recipe: ${r.clips.rocAuc.toFixed(3)} / ${r.clips.averagePrecision.toFixed(3)})`,
    );
    for (const g of b.groups) {
      const ours = r.groups.find((x) => x.group === g.group)?.clipRocAuc;
      if (g.clipRocAuc === null) continue;
      lines.push(
        `  ${g.group.padEnd(28)} clip ROC-AUC baseline ${num(g.clipRocAuc, 3)}  this recipe ${num(ours, 3)}`,
      );
    }
  }
  if (r.rules?.length) {
    const budget = r.rules[0]!.falseAlarmBudgetPerHour;
    lines.push(
      `Decision rules compared (each at its best setting with <= ${budget} false alarms/h${budget > MAX_FALSE_ALARMS_PER_HOUR ? `; no setting catches half the screams within ${MAX_FALSE_ALARMS_PER_HOUR}/h` : ''}):`,
    );
    for (const x of r.rules) {
      lines.push(
        `  ${x.rule.padEnd(34)} threshold ${x.threshold} ${x.k}/${x.n}${x.singleWindowThreshold !== null ? ` single ${x.singleWindowThreshold}` : ''}: clip recall ${pct(x.eventRecall)}, 10 dB recall ${pct(x.noisyRecall10Db)}, ${x.falseAlarmsPerHour.toFixed(2)} FA/h, latency median ${num(x.medianLatencyS)} s`,
      );
    }
  }
  if (r.shortcut) {
    const f = (s: { rocAuc: number; bandwidthOnlyRocAuc: number; levelOnlyRocAuc: number; items: number }) =>
      `ROC-AUC ${s.rocAuc.toFixed(3)} (bandwidth only ${s.bandwidthOnlyRocAuc.toFixed(3)}, level/clipping only ${s.levelOnlyRocAuc.toFixed(3)}; ${s.items} clips)`;
    lines.push(
      'Shortcut check: a forest on bandwidth, level and clipping alone, validated by the same groups (0.5 = chance):',
    );
    lines.push(`  the folder as it is:            ${f(r.shortcut.folder)}`);
    if (r.shortcut.trainingSet) lines.push(`  the training set, augmented:    ${f(r.shortcut.trainingSet)}`);
    if (r.shortcut.folder.rocAuc > SHORTCUT_WARN_AUC)
      lines.push(
        `  WARNING: above ${SHORTCUT_WARN_AUC}, the classes in this folder differ by recording chain; ${r.shortcut.trainingSet && r.shortcut.trainingSet.rocAuc <= SHORTCUT_WARN_AUC ? 'augmentation hides most of it from training' : 'a model can learn that instead of the sound'}`,
      );
  }
  return lines.join('\n');
}
