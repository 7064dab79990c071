import { seededRandom } from './random.ts';

/**
 * A random-forest trainer that writes ml-random-forest's own model format.
 *
 * ml-random-forest's trainer evaluates every split point of every feature with a fresh
 * pass over the node's samples (about rows^2 per node): 5,000 rows took 23 minutes. This
 * one bins every feature once into at most 255 quantile bins (the split candidates, as in
 * LightGBM or scikit-learn's histogram trees; a feature with fewer distinct values keeps
 * every split point, so small data trains exactly as with sorting), then finds each
 * node's split from per-bin class counts in one pass over the node's rows (sorting each
 * candidate feature per node made a 10,000-row forest take minutes), samples features per
 * node (the usual Breiman forest), and
 * balances classes by drawing an equal-size bootstrap from each class for every tree, so
 * no synthetic rows are needed. The result loads with `RandomForestClassifier.load()` and
 * predicts with the library's own code; leaves keep only what prediction reads, which is
 * what keeps the file small.
 */
export interface ForestOptions {
  nEstimators: number;
  maxDepth: number;
  /** A node with fewer samples is a leaf. */
  minSamplesSplit: number;
  minSamplesLeaf: number;
  /** Features tried per split; default sqrt(features). */
  maxFeatures?: number;
  /** Bootstrap size per class, as a fraction of the smaller class. */
  samplesPerClass?: number;
  seed: number;
}

interface LeafJson {
  distribution: number[][];
}
interface SplitJson {
  splitValue: number;
  splitColumn: number;
  left: NodeJson;
  right: NodeJson;
}
type NodeJson = LeafJson | SplitJson;

export interface TrainProgress {
  tree: number;
  of: number;
}

export function trainForest(
  rows: readonly Float64Array[],
  labels: readonly number[],
  options: ForestOptions,
  onProgress?: (p: TrainProgress) => void,
  /** Optional group (e.g. recording source) per row: the bootstrap then draws each class's
   * rows evenly across its groups, so a small source of hard negatives (cats, say) counts
   * as much as a large source of easy ones. */
  groups?: readonly string[],
): unknown {
  return trainForestWithOob(rows, labels, options, onProgress, groups).forest;
}

/**
 * `trainForest`, plus each row's out-of-bag score: the share of the trees whose bootstrap
 * did not draw the row that vote "scream" (NaN if every tree drew it). Hard-negative
 * mining uses it: a non-scream row the forest would call a scream without having trained
 * on it.
 */
export function trainForestWithOob(
  rows: readonly Float64Array[],
  labels: readonly number[],
  options: ForestOptions,
  onProgress?: (p: TrainProgress) => void,
  groups?: readonly string[],
): { forest: unknown; oob: Float64Array } {
  if (rows.length !== labels.length) throw new RangeError('rows and labels differ in length');
  const nFeatures = rows[0]?.length ?? 0;
  if (nFeatures === 0) throw new RangeError('no training rows');
  const pos: number[] = [];
  const neg: number[] = [];
  labels.forEach((l, i) => {
    (l === 1 ? pos : neg).push(i);
  });
  if (pos.length === 0 || neg.length === 0) throw new RangeError('training needs both classes');

  // column-major bin codes: the split search reads one feature of many rows at a time
  const binned = Array.from({ length: nFeatures }, (_, f) =>
    binFeature(Float64Array.from(rows, (r) => r[f]!)),
  );
  const y = Uint8Array.from(labels);
  const random = seededRandom(options.seed);
  const mtry = options.maxFeatures ?? Math.max(1, Math.round(Math.sqrt(nFeatures)));
  const perClass = Math.max(1, Math.round(Math.min(pos.length, neg.length) * (options.samplesPerClass ?? 1)));
  const allColumns = Array.from({ length: nFeatures }, (_, i) => i);
  const treeOptions = {
    gainFunction: 'gini',
    splitFunction: 'mean',
    minNumSamples: options.minSamplesSplit,
    maxDepth: options.maxDepth,
    gainThreshold: 0,
    kind: 'classifier',
  };

  const byGroup = (idx: number[]): number[][] => {
    if (!groups) return [idx];
    const m = new Map<string, number[]>();
    for (const i of idx) {
      const g = groups[i] ?? '';
      const list = m.get(g) ?? [];
      list.push(i);
      m.set(g, list);
    }
    return [...m.values()];
  };
  const posGroups = byGroup(pos);
  const negGroups = byGroup(neg);
  const draw = (gs: number[][], all: number[]): number => {
    const g = gs.length > 1 ? gs[Math.floor(random() * gs.length)]! : all;
    return g[Math.floor(random() * g.length)]!;
  };
  const histN = new Int32Array(MAX_BINS + 1);
  const histP = new Int32Array(MAX_BINS + 1);
  const estimators: unknown[] = [];
  const oobVotes = new Float64Array(rows.length);
  const oobTrees = new Float64Array(rows.length);
  const inBag = new Uint8Array(rows.length);
  for (let t = 0; t < options.nEstimators; t++) {
    const sample = new Int32Array(perClass * 2);
    for (let i = 0; i < perClass; i++) {
      sample[i] = draw(posGroups, pos);
      sample[perClass + i] = draw(negGroups, neg);
    }
    const root = buildNode(sample, 0);
    estimators.push({ options: treeOptions, root, name: 'DTClassifier' });
    inBag.fill(0);
    for (const i of sample) inBag[i] = 1;
    for (let i = 0; i < rows.length; i++) {
      if (inBag[i]) continue;
      oobTrees[i]!++;
      oobVotes[i]! += voteOf(root, rows[i]!);
    }
    onProgress?.({ tree: t + 1, of: options.nEstimators });
  }
  const oob = oobVotes.map((v, i) => (oobTrees[i]! > 0 ? v / oobTrees[i]! : Number.NaN));

  const forest = {
    name: 'RFClassifier',
    baseModel: {
      indexes: estimators.map(() => allColumns),
      n: nFeatures,
      replacement: true,
      maxFeatures: mtry,
      nEstimators: options.nEstimators,
      treeOptions,
      isClassifier: true,
      seed: options.seed,
      estimators,
      useSampleBagging: true,
    },
  };
  return { forest, oob };

  function leaf(idx: Int32Array): LeafJson {
    let p = 0;
    for (const i of idx) p += y[i]!;
    const p1 = p / idx.length;
    // ml-cart's TreeNode picks the class with the larger share (ties go to class 0)
    return { distribution: [[round4(1 - p1), round4(p1)]] };
  }

  function buildNode(idx: Int32Array, depth: number): NodeJson {
    const n = idx.length;
    let p = 0;
    for (const i of idx) p += y[i]!;
    if (depth >= options.maxDepth || n < options.minSamplesSplit || p === 0 || p === n) return leaf(idx);

    const parentGini = 1 - (p / n) ** 2 - ((n - p) / n) ** 2;
    let bestGain = 1e-9;
    let bestFeature = -1;
    let bestBin = 0;
    const features = pickFeatures(nFeatures, mtry, random);
    for (const f of features) {
      const { codes, edges } = binned[f]!;
      const nb = edges.length + 1;
      if (nb < 2) continue;
      histN.fill(0, 0, nb);
      histP.fill(0, 0, nb);
      for (let i = 0; i < n; i++) {
        const r = idx[i]!;
        const b = codes[r]!;
        histN[b]!++;
        histP[b]! += y[r]!;
      }
      let leftN = 0;
      let leftP = 0;
      for (let b = 0; b < nb - 1; b++) {
        leftN += histN[b]!;
        leftP += histP[b]!;
        if (histN[b + 1] === 0 && b + 1 < nb - 1) {
          // an empty next bin splits the same rows as a later edge: try that one instead
          continue;
        }
        if (leftN < options.minSamplesLeaf || n - leftN < options.minSamplesLeaf) continue;
        const rightN = n - leftN;
        const rightP = p - leftP;
        const gl = 1 - (leftP / leftN) ** 2 - ((leftN - leftP) / leftN) ** 2;
        const gr = 1 - (rightP / rightN) ** 2 - ((rightN - rightP) / rightN) ** 2;
        const gain = parentGini - (leftN / n) * gl - (rightN / n) * gr;
        if (gain > bestGain) {
          bestGain = gain;
          bestFeature = f;
          bestBin = b;
        }
      }
    }
    if (bestFeature < 0) return leaf(idx);
    const codes = binned[bestFeature]!.codes;
    let nl = 0;
    for (const i of idx) if (codes[i]! <= bestBin) nl++;
    const left = new Int32Array(nl);
    const right = new Int32Array(n - nl);
    let a = 0;
    let b = 0;
    for (const i of idx) {
      if (codes[i]! <= bestBin) left[a++] = i;
      else right[b++] = i;
    }
    return {
      // rows in bins <= bestBin are exactly those below this edge
      splitValue: binned[bestFeature]!.edges[bestBin]!,
      splitColumn: bestFeature,
      left: buildNode(left, depth + 1),
      right: buildNode(right, depth + 1),
    };
  }
}

const MAX_BINS = 255;

/** A tree's vote for a row, as ml-cart decides it (the larger share; ties go to class 0). */
function voteOf(node: NodeJson, row: Float64Array): number {
  let n = node;
  while ('splitColumn' in n) n = row[n.splitColumn]! < n.splitValue ? n.left : n.right;
  const d = n.distribution[0]!;
  return d[1]! > d[0]! ? 1 : 0;
}

/**
 * Quantile bins of one feature: `edges` are split values strictly between neighbouring
 * distinct values (shortest decimals, so model files stay small), and a value's code is
 * the number of edges at or below it, so `code <= b` holds exactly when `value < edges[b]`:
 * the test ml-random-forest applies at prediction time.
 */
export function binFeature(values: Float64Array): { codes: Uint8Array; edges: Float64Array } {
  const sorted = Float64Array.from(values).sort();
  const distinct: number[] = [];
  for (let i = 0; i < sorted.length; i++)
    if (i === 0 || sorted[i] !== sorted[i - 1]) distinct.push(sorted[i]!);
  const edges: number[] = [];
  if (distinct.length <= MAX_BINS) {
    for (let i = 1; i < distinct.length; i++) edges.push(compactSplit(distinct[i - 1]!, distinct[i]!));
  } else {
    // cut at the sample quantiles: each bin holds about the same number of rows
    let last = -Infinity;
    for (let k = 1; k < MAX_BINS; k++) {
      const at = Math.floor((k * sorted.length) / MAX_BINS);
      let j = at;
      while (j < sorted.length && sorted[j] === sorted[j - 1]) j++;
      if (j >= sorted.length || j === 0) continue;
      const e = compactSplit(sorted[j - 1]!, sorted[j]!);
      if (e > last) {
        edges.push(e);
        last = e;
      }
    }
  }
  const e = Float64Array.from(edges);
  const codes = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    let lo = 0;
    let hi = e.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (v < e[mid]!) hi = mid;
      else lo = mid + 1;
    }
    codes[i] = lo;
  }
  return { codes, edges: e };
}

function pickFeatures(n: number, k: number, random: () => number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k && i < n; i++) {
    const j = i + Math.floor(random() * (n - i));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, Math.min(k, n));
}

/** The shortest decimal strictly between two neighbours: model files stay small and exact. */
function compactSplit(lo: number, hi: number): number {
  for (let digits = 4; digits <= 17; digits++) {
    const m = Number(((lo + hi) / 2).toPrecision(digits));
    if (m > lo && m <= hi && m !== hi) return m;
  }
  return (lo + hi) / 2;
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
