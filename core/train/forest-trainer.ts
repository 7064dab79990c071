import { seededRandom } from './random.ts';

/**
 * A random-forest trainer that writes ml-random-forest's own model format.
 *
 * ml-random-forest's trainer evaluates every split point of every feature with a fresh
 * pass over the node's samples (about rows^2 per node): 5,000 rows took 23 minutes. This
 * one sorts each candidate feature once per node and scans it with running class counts
 * (rows log rows per node), samples features per node (the usual Breiman forest), and
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
  if (rows.length !== labels.length) throw new RangeError('rows and labels differ in length');
  const nFeatures = rows[0]?.length ?? 0;
  if (nFeatures === 0) throw new RangeError('no training rows');
  const pos: number[] = [];
  const neg: number[] = [];
  labels.forEach((l, i) => {
    (l === 1 ? pos : neg).push(i);
  });
  if (pos.length === 0 || neg.length === 0) throw new RangeError('training needs both classes');

  // column-major copy: the split search reads one feature of many rows at a time
  const columns = Array.from({ length: nFeatures }, (_, f) => Float64Array.from(rows, (r) => r[f]!));
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
  const estimators: unknown[] = [];
  for (let t = 0; t < options.nEstimators; t++) {
    const sample = new Int32Array(perClass * 2);
    for (let i = 0; i < perClass; i++) {
      sample[i] = draw(posGroups, pos);
      sample[perClass + i] = draw(negGroups, neg);
    }
    const root = buildNode(sample, 0);
    estimators.push({ options: treeOptions, root, name: 'DTClassifier' });
    onProgress?.({ tree: t + 1, of: options.nEstimators });
  }

  return {
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
    let bestValue = 0;
    const features = pickFeatures(nFeatures, mtry, random);
    const order = new Int32Array(n);
    const values = new Float64Array(n);
    for (const f of features) {
      const col = columns[f]!;
      for (let i = 0; i < n; i++) order[i] = i;
      for (let i = 0; i < n; i++) values[i] = col[idx[i]!]!;
      order.sort((a, b) => values[a]! - values[b]!);
      let leftN = 0;
      let leftP = 0;
      for (let s = 0; s < n - 1; s++) {
        const i = order[s]!;
        leftN++;
        leftP += y[idx[i]!]!;
        const v = values[i]!;
        const next = values[order[s + 1]!]!;
        if (next === v) continue;
        if (leftN < options.minSamplesLeaf || n - leftN < options.minSamplesLeaf) continue;
        const rightN = n - leftN;
        const rightP = p - leftP;
        const gl = 1 - (leftP / leftN) ** 2 - ((leftN - leftP) / leftN) ** 2;
        const gr = 1 - (rightP / rightN) ** 2 - ((rightN - rightP) / rightN) ** 2;
        const gain = parentGini - (leftN / n) * gl - (rightN / n) * gr;
        if (gain > bestGain) {
          bestGain = gain;
          bestFeature = f;
          bestValue = compactSplit(v, next);
        }
      }
    }
    if (bestFeature < 0) return leaf(idx);
    const col = columns[bestFeature]!;
    let nl = 0;
    for (const i of idx) if (col[i]! < bestValue) nl++;
    const left = new Int32Array(nl);
    const right = new Int32Array(n - nl);
    let a = 0;
    let b = 0;
    for (const i of idx) {
      if (col[i]! < bestValue) left[a++] = i;
      else right[b++] = i;
    }
    return {
      splitValue: bestValue,
      splitColumn: bestFeature,
      left: buildNode(left, depth + 1),
      right: buildNode(right, depth + 1),
    };
  }
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
