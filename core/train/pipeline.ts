import { createHash } from 'node:crypto';
import type { ConfirmerOptions } from '../detect/confirmer.ts';
import { FEATURE_SET, WINDOW_FEATURE_NAMES } from '../features/window-features.ts';
import { type FeatureWindow, padToOneWindow, WindowFeatureStream } from '../features/window-stream.ts';
import { MODEL_FORMAT, type ModelFile, ScreamModel } from '../model/scream-model.ts';
import { mixAtSnr } from './augment.ts';
import type { Clip } from './dataset.ts';
import { type ForestOptions, trainForest } from './forest-trainer.ts';
import {
  averagePrecision,
  type EventMetrics,
  eventMetrics,
  metricsAt,
  rocAuc,
  type ScoredClip,
  type ThresholdMetrics,
} from './metrics.ts';
import { seededRandom } from './random.ts';

export const DEFAULT_FOREST: ForestOptions = {
  nEstimators: 100,
  maxDepth: 12,
  minSamplesSplit: 8,
  minSamplesLeaf: 6,
  seed: 1,
};

/** Scream windows more than this below the clip's loudest window are gaps, not screams. */
const SCREAM_GAP_DB = 15;
const MIX_SNRS_DB = [5, 10, 15, 20];
const MIXES_PER_SCREAM = 2;

export interface ClipFeatures {
  clip: number;
  label: 0 | 1;
  source: string;
  durationS: number;
  windows: FeatureWindow[];
}

/** Feature windows of a whole clip, padded with silence to at least one window. */
export function windowsOf(samples: Float32Array): FeatureWindow[] {
  return new WindowFeatureStream().push(padToOneWindow(samples));
}

/**
 * Training rows of one clip. Labels are clip-level and scream clips contain breaths and
 * gaps; windows far below the clip's peak level are left out rather than taught as screams.
 */
export function rowsOf(cf: { label: 0 | 1; windows: FeatureWindow[]; screamWindowsOnly?: boolean }): {
  rows: Float64Array[];
  labels: number[];
} {
  let windows = cf.windows;
  if (cf.label === 1 && !cf.screamWindowsOnly && windows.length) {
    const peak = Math.max(...windows.map((w) => w.levelDbfs));
    windows = windows.filter((w) => w.levelDbfs >= peak - SCREAM_GAP_DB);
  }
  return { rows: windows.map((w) => w.values), labels: windows.map(() => cf.label) };
}

export interface Mix {
  label: 1;
  /** Both recordings that went into the mix: a fold may use it only if it holds both. */
  sources: [string, string];
  clips: [number, number];
  snrDb: number;
  windows: FeatureWindow[];
  /** Windows were already cut to the scream's own extent. */
  screamWindowsOnly: true;
}

/** A background is noise-like when few of its windows are voiced (no cries, barks, speech). */
const MAX_BACKGROUND_VOICED = 0.3;
const VOICED_FRACTION = WINDOW_FEATURE_NAMES.indexOf('voicedFraction');

/** A non-scream clip of at least `minS` seconds that is mostly unvoiced: usable as background noise. */
function isNoiseLikeBackground(f: ClipFeatures, minS: number): boolean {
  if (f.label !== 0 || f.durationS < minS) return false;
  const voiced =
    f.windows.reduce((a, w) => a + w.values[VOICED_FRACTION]!, 0) / Math.max(1, f.windows.length);
  return voiced <= MAX_BACKGROUND_VOICED;
}

/**
 * Each scream mixed into a few noise-like backgrounds at random SNRs. Backgrounds are the
 * non-scream clips that are mostly unvoiced (street, engines, rooms, rain), plus colour
 * noise: mixing a scream into a baby's cry or a barking dog would teach the forest that
 * cries and barks are screams, which is what the first version of this pipeline did.
 */
export function buildMixes(
  clips: readonly Clip[],
  features: readonly ClipFeatures[],
  seed: number,
  perScream = MIXES_PER_SCREAM,
): Mix[] {
  const random = seededRandom(seed);
  const backgrounds: { samples: Float32Array; source: string; clip: number }[] = [];
  for (const f of features) {
    if (isNoiseLikeBackground(f, 1))
      backgrounds.push({ samples: clips[f.clip]!.samples, source: f.source, clip: f.clip });
  }
  for (const colour of ['white', 'pink', 'brown'] as const) {
    backgrounds.push({
      samples: colouredNoise(colour, 16000 * 10, random),
      source: `synthetic:${colour}-noise`,
      clip: -1,
    });
  }
  const mixes: Mix[] = [];
  clips.forEach((c, i) => {
    if (c.label !== 1) return;
    for (let m = 0; m < perScream; m++) {
      const b = backgrounds[Math.floor(random() * backgrounds.length)]!;
      const snrDb = MIX_SNRS_DB[Math.floor(random() * MIX_SNRS_DB.length)]!;
      const mixed = mixAtSnr(c.samples, b.samples, snrDb, random);
      // Which windows hold the scream is decided on the clean scream: after mixing, its
      // gaps are as loud as the background and would otherwise be taught as screams.
      const clean = features[i]!.windows;
      const peak = Math.max(...clean.map((w) => w.levelDbfs));
      const windows = windowsOf(mixed).filter(
        (_w, wi) => (clean[wi]?.levelDbfs ?? -Infinity) >= peak - SCREAM_GAP_DB,
      );
      mixes.push({
        label: 1,
        sources: [c.source, b.source],
        clips: [i, b.clip],
        snrDb,
        windows,
        screamWindowsOnly: true,
      });
    }
  });
  return mixes;
}

/** White, pink (1/f, Voss-McCartney) or brown (integrated) noise at about -20 dBFS. */
export function colouredNoise(
  colour: 'white' | 'pink' | 'brown',
  n: number,
  random: () => number,
): Float32Array {
  const out = new Float32Array(n);
  const rows = new Float64Array(16);
  let brown = 0;
  for (let i = 0; i < n; i++) {
    const white = random() * 2 - 1;
    if (colour === 'white') out[i] = white;
    else if (colour === 'brown') {
      brown = (brown + 0.02 * white) * 0.998;
      out[i] = brown * 4;
    } else {
      const k = Math.min(15, Math.clz32(0) - Math.clz32((i + 1) & -(i + 1)));
      rows[k] = random() * 2 - 1;
      let s = white;
      for (const r of rows) s += r;
      out[i] = s / 5;
    }
  }
  let e = 0;
  for (const v of out) e += v * v;
  const g = 0.1 / Math.sqrt(e / n);
  return out.map((v) => Math.max(-1, Math.min(1, v * g)));
}

export function fitForest(
  parts: readonly (ClipFeatures | Mix)[],
  forest: ForestOptions,
  onProgress?: (tree: number, of: number) => void,
): unknown {
  const rows: Float64Array[] = [];
  const labels: number[] = [];
  const groups: string[] = [];
  for (const p of parts) {
    const r = rowsOf(p);
    rows.push(...r.rows);
    labels.push(...r.labels);
    // bootstrap evenly across recording sources (a mix counts as its scream's source)
    const source = 'sources' in p ? p.sources[0] : p.source;
    for (let i = 0; i < r.rows.length; i++) groups.push(source);
  }
  return trainForest(rows, labels, forest, onProgress ? (p) => onProgress(p.tree, p.of) : undefined, groups);
}

export interface ModelDefaults {
  threshold: number;
  confirm: Omit<ConfirmerOptions, 'threshold'>;
  levelGateDbfs: number;
}

export function buildModelFile(
  forest: unknown,
  defaults: ModelDefaults,
  training: Record<string, unknown>,
  metrics?: Record<string, unknown>,
): ModelFile {
  const hash = createHash('sha256').update(JSON.stringify(forest)).digest('hex').slice(0, 8);
  const now = new Date();
  return {
    format: MODEL_FORMAT,
    version: `${now.toISOString().slice(0, 10)}-${hash}`,
    featureNames: [...WINDOW_FEATURE_NAMES],
    featureSet: FEATURE_SET,
    threshold: defaults.threshold,
    confirm: defaults.confirm,
    levelGateDbfs: defaults.levelGateDbfs,
    trainedAt: now.toISOString(),
    training,
    ...(metrics ? { metrics } : {}),
    forest,
  };
}

export interface FoldResult {
  heldOut: string;
  trainRows: number;
  clips: ScoredClip[];
}

export interface ValidationReport {
  method: string;
  folds: { heldOut: string; screamClips: number; nonScreamClips: number }[];
  windows: {
    count: number;
    screams: number;
    rocAuc: number;
    averagePrecision: number;
    atThreshold: ThresholdMetrics;
  };
  events: EventMetrics;
  /** Held-out screams mixed into held-out backgrounds, per SNR. */
  noisy: { snrDb: number; eventRecall: number; medianLatencyS: number; p90LatencyS: number; clips: number }[];
  defaults: ModelDefaults;
}

/**
 * Leave-one-source-out validation: for each recording source, train on the others (their
 * clips and the mixes made only of their clips) and score the held-out source's clips.
 * No augmented row ever reaches a held-out fold.
 */
export type GroupBy = 'source' | 'recording';

/** Folds for grouped validation: whole sources, or recordings hashed into five folds. */
export function foldKeys(clips: readonly Clip[], groupBy: GroupBy, folds = 5): string[] {
  if (groupBy === 'source') return clips.map((c) => c.source);
  return clips.map(
    (c) =>
      `fold ${(parseInt(createHash('sha1').update(c.recording).digest('hex').slice(0, 8), 16) % folds) + 1} of ${folds}`,
  );
}

/**
 * Grouped cross-validation: for each group (a recording source, or a fold of whole
 * recordings), train on the other groups (their clips and the mixes made only of their
 * clips) and score the held-out group's clips. No augmented row ever reaches a held-out fold.
 */
export function crossValidate(
  clips: readonly Clip[],
  features: readonly ClipFeatures[],
  mixes: readonly Mix[],
  forest: ForestOptions,
  onFold?: (i: number, of: number, source: string) => void,
  groupBy: GroupBy = 'source',
): {
  scored: ScoredClip[];
  noisyScored: (ScoredClip & { snrDb: number })[];
  folds: ValidationReport['folds'];
} {
  const keys = foldKeys(clips, groupBy);
  const groups = [...new Set(keys)].sort();
  const scored: ScoredClip[] = [];
  const noisyScored: (ScoredClip & { snrDb: number })[] = [];
  const folds: ValidationReport['folds'] = [];
  groups.forEach((held, fi) => {
    onFold?.(fi + 1, groups.length, held);
    const test = features.filter((f) => keys[f.clip] === held);
    const train = features.filter((f) => keys[f.clip] !== held);
    const trainMixes = mixes.filter(
      (m) => keys[m.clips[0]] !== held && (m.clips[1] < 0 || keys[m.clips[1]] !== held),
    );
    if (!train.some((f) => f.label === 1) || !train.some((f) => f.label === 0)) return;
    folds.push({
      heldOut: held,
      screamClips: test.filter((f) => f.label === 1).length,
      nonScreamClips: test.filter((f) => f.label === 0).length,
    });
    const model = ScreamModel.fromJSON(
      buildModelFile(fitForest([...train, ...trainMixes], forest), PLACEHOLDER_DEFAULTS, {}),
    );
    for (const t of test) {
      const probs = model.predict(t.windows.map((w) => w.values));
      scored.push({
        label: t.label,
        durationS: t.durationS,
        windows: t.windows.map((w, i) => ({
          index: w.index,
          startS: w.startS,
          endS: w.endS,
          probability: probs[i]!,
          levelDbfs: w.levelDbfs,
        })),
      });
    }
    // noisy condition: this source's screams, after 2 s of this source's background, mixed at each SNR
    const heldScreams = test.filter((f) => f.label === 1);
    const heldBg = test.filter((f) => isNoiseLikeBackground(f, 3));
    if (heldScreams.length && heldBg.length) {
      const random = seededRandom(1000 + fi);
      for (const s of heldScreams) {
        for (const snrDb of NOISY_SNRS_DB) {
          const bg = clips[heldBg[Math.floor(random() * heldBg.length)]!.clip]!.samples;
          const scream = clips[s.clip]!.samples;
          const lead = 32_000; // 2 s of background before the scream starts
          const padded = new Float32Array(lead + scream.length);
          padded.set(scream, lead);
          // mixAtSnr measures the scream's active RMS, which the silent lead-in does not change
          const mixed = mixAtSnr(padded, bg, snrDb, random);
          const windows = windowsOf(mixed);
          const probs = model.predict(windows.map((w) => w.values));
          noisyScored.push({
            label: 1,
            snrDb,
            onsetS: lead / 16000,
            durationS: mixed.length / 16000,
            windows: windows.map((w, i) => ({
              index: w.index,
              startS: w.startS,
              endS: w.endS,
              probability: probs[i]!,
            })),
          });
        }
      }
    }
  });
  return { scored, noisyScored, folds };
}

const NOISY_SNRS_DB = [0, 10, 20];
const PLACEHOLDER_DEFAULTS: ModelDefaults = {
  threshold: 0.5,
  confirm: { k: 2, n: 3, releaseWindows: 4 },
  levelGateDbfs: -60,
};

/**
 * Picks the default threshold and k-of-n from pooled held-out scores: among settings whose
 * window false-positive rate is at most 2% and whose confirmed false alarms are at most
 * 1 per hour of non-scream audio, the one with the best scream event recall (then window
 * recall, then the lower latency k).
 */
export function chooseDefaults(scored: readonly ScoredClip[]): ModelDefaults {
  const { scores, labels } = windowScores(scored);
  let best: { d: ModelDefaults; key: number[] } | null = null;
  for (let t = 0.3; t <= 0.985; t += 0.01) {
    const threshold = Math.round(t * 100) / 100;
    const m = metricsAt(scores, labels, threshold);
    for (const [k, n] of CONFIRM_CHOICES) {
      const confirm = { k, n, releaseWindows: 4 };
      const e = eventMetrics(scored, { threshold, ...confirm });
      // Targets: window false-positive rate <= 2% and <= 1 confirmed false alarm per hour,
      // with most screams still caught (event recall >= 0.8). Within them: the highest
      // event recall, then the fastest confirmation. When the folder is too hard for that
      // (in ours, cats' meows are the false alarms), a detector that misses most screams
      // is no safety product: then the best event-level F1 (confirmed events against
      // false alarms) among settings that keep the window false-positive rate <= 2%.
      const detected = Math.round(e.eventRecall * e.screamClips);
      const eventPrecision = detected + e.falseAlarms > 0 ? detected / (detected + e.falseAlarms) : 0;
      const eventF1 =
        detected > 0 ? (2 * eventPrecision * e.eventRecall) / (eventPrecision + e.eventRecall) : 0;
      const fprOk = m.falsePositiveRate <= 0.02;
      const key =
        fprOk && e.falseAlarmsPerHour <= 1 && e.eventRecall >= 0.8
          ? [2, e.eventRecall, -k, m.recall]
          : fprOk
            ? [1, eventF1, -k, -e.falseAlarmsPerHour]
            : [0, -m.falsePositiveRate, eventF1];
      if (!best || compareKeys(key, best.key) > 0)
        best = { d: { threshold, confirm, levelGateDbfs: -60 }, key };
    }
  }
  return best!.d;
}

/** k-of-n choices, each window adding 0.512 s before a scream can be confirmed. */
const CONFIRM_CHOICES = [
  [1, 1],
  [2, 2],
  [2, 3],
  [3, 3],
  [3, 4],
  [3, 5],
  [4, 5],
  [4, 6],
] as const;

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

export function report(
  scored: readonly ScoredClip[],
  noisyScored: readonly (ScoredClip & { snrDb: number })[],
  folds: ValidationReport['folds'],
  defaults: ModelDefaults,
  groupBy: GroupBy = 'source',
): ValidationReport {
  const { scores, labels } = windowScores(scored);
  const confirm = { threshold: defaults.threshold, ...defaults.confirm };
  return {
    method:
      groupBy === 'source'
        ? 'leave-one-source-out (manifest source_repo); window and event metrics pooled over held-out folds'
        : 'grouped 5-fold cross-validation by original recording (no recording on both sides); metrics pooled over held-out folds',
    folds,
    windows: {
      count: scores.length,
      screams: labels.filter((l) => l === 1).length,
      rocAuc: rocAuc(scores, labels),
      averagePrecision: averagePrecision(scores, labels),
      atThreshold: metricsAt(scores, labels, defaults.threshold),
    },
    events: eventMetrics(scored, confirm),
    noisy: NOISY_SNRS_DB.map((snrDb) => {
      const subset = noisyScored.filter((c) => c.snrDb === snrDb);
      const e = eventMetrics(subset, confirm);
      return {
        snrDb,
        eventRecall: e.eventRecall,
        medianLatencyS: e.medianLatencyS,
        p90LatencyS: e.p90LatencyS,
        clips: subset.length,
      };
    }),
    defaults,
  };
}

/**
 * Window-level scores for metrics. Scream clips' gap windows (far below the clip's peak
 * level) are left out, exactly as in training: they are not screams, whatever the clip says.
 */
export function windowScores(scored: readonly ScoredClip[]): { scores: number[]; labels: number[] } {
  const scores: number[] = [];
  const labels: number[] = [];
  for (const c of scored) {
    const peak = Math.max(...c.windows.map((w) => w.levelDbfs ?? 0));
    for (const w of c.windows) {
      if (c.label === 1 && w.levelDbfs !== undefined && w.levelDbfs < peak - SCREAM_GAP_DB) continue;
      scores.push(w.probability);
      labels.push(c.label);
    }
  }
  return { scores, labels };
}

/**
 * Scores a trained model on a labelled folder (the metrics of `screamwatch eval`): clean
 * clips, and each scream after a 2 s lead-in of a noise-like background from the same
 * folder at 0, 10 and 20 dB SNR (event recall and latency from the scream's onset).
 */
export function evaluateModel(
  clips: readonly Clip[],
  features: readonly ClipFeatures[],
  model: ScreamModel,
  seed = 1,
): ValidationReport {
  const score = (windows: FeatureWindow[]) => {
    const probs = model.predict(windows.map((w) => w.values));
    return windows.map((w, i) => ({
      index: w.index,
      startS: w.startS,
      endS: w.endS,
      probability: w.levelDbfs < model.meta.levelGateDbfs ? 0 : probs[i]!,
      levelDbfs: w.levelDbfs,
    }));
  };
  const scored: ScoredClip[] = features.map((f) => ({
    label: f.label,
    durationS: f.durationS,
    windows: score(f.windows),
  }));
  const backgrounds = features.filter((f) => isNoiseLikeBackground(f, 3));
  const random = seededRandom(seed);
  const noisyScored: (ScoredClip & { snrDb: number })[] = [];
  const bgPool = backgrounds.length
    ? backgrounds.map((b) => clips[b.clip]!.samples)
    : [colouredNoise('pink', 16000 * 10, random)];
  for (const f of features) {
    if (f.label !== 1) continue;
    for (const snrDb of NOISY_SNRS_DB) {
      const scream = clips[f.clip]!.samples;
      const lead = 32_000;
      const padded = new Float32Array(lead + scream.length);
      padded.set(scream, lead);
      const mixed = mixAtSnr(padded, bgPool[Math.floor(random() * bgPool.length)]!, snrDb, random);
      noisyScored.push({
        label: 1,
        snrDb,
        onsetS: 2,
        durationS: mixed.length / 16000,
        windows: score(windowsOf(mixed)),
      });
    }
  }
  const defaults: ModelDefaults = {
    threshold: model.threshold,
    confirm: model.meta.confirm,
    levelGateDbfs: model.meta.levelGateDbfs,
  };
  const r = report(scored, noisyScored, [], defaults);
  return { ...r, method: `model ${model.version} scored on every clip of the folder (no training on it)` };
}
