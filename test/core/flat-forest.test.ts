import { readFileSync } from 'node:fs';
import { RandomForestClassifier } from 'ml-random-forest';
import { describe, expect, it } from 'vitest';
import { WindowFeatureStream } from '../../core/features/window-stream.ts';
import { FlatForest, FlatForestError } from '../../core/model/flat-forest.ts';
import { DEFAULT_MODEL_PATH, loadModelFile } from '../../core/model/load.ts';
import { synthesizeDemoRecording } from '../../demo/scream-recording.ts';

/** The library's vote of every tree for every row (rows x trees). */
function libraryVotes(forest: RandomForestClassifier, rows: readonly ArrayLike<number>[]): number[][] {
  const m = forest.predictionValues(rows.map((r) => Array.from(r)));
  return Array.from({ length: m.rows }, (_, i) => m.getRow(i));
}

function flatVotes(forest: FlatForest, rows: readonly ArrayLike<number>[]): number[][] {
  return rows.map((r) => Array.from({ length: forest.nTrees }, (_, t) => forest.treeVote(r, t)));
}

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every split (feature, threshold) of a forest JSON, walking the library's own node format. */
function splitsOf(json: { baseModel: { estimators: { root: unknown }[]; indexes: number[][] } }) {
  const out: { feature: number; value: number }[] = [];
  json.baseModel.estimators.forEach((est, t) => {
    const stack = [est.root as Record<string, unknown>];
    while (stack.length) {
      const n = stack.pop()!;
      if (n.distribution !== undefined) continue;
      out.push({
        feature: json.baseModel.indexes[t]![n.splitColumn as number]!,
        value: n.splitValue as number,
      });
      stack.push(n.left as Record<string, unknown>, n.right as Record<string, unknown>);
    }
  });
  return out;
}

describe('FlatForest on the shipped model', () => {
  const file = JSON.parse(readFileSync(DEFAULT_MODEL_PATH, 'utf8'));
  const library = RandomForestClassifier.load(file.forest);
  const flat = FlatForest.fromJSON(file.forest);
  const splits = splitsOf(file.forest);
  const nFeatures = file.featureNames.length as number;

  // Real windows: the demo recording (babble, room tone and a cry) through the feature code.
  const stream = new WindowFeatureStream();
  const real = stream.push(synthesizeDemoRecording().samples).map((w) => w.values);

  // Rows that sit exactly on, and one ulp either side of, every threshold: the comparisons where
  // a float32 threshold or a <= instead of < would go the other way.
  const random = prng(7);
  const pick = <T>(a: readonly T[]) => a[Math.floor(random() * a.length)]!;
  const boundary: Float64Array[] = [];
  const ulp = new Float64Array(1);
  const bits = new BigInt64Array(ulp.buffer);
  const step = (v: number, d: 1n | -1n) => {
    ulp[0] = v;
    bits[0] = bits[0]! + (v >= 0 ? d : -d);
    return ulp[0]!;
  };
  for (let i = 0; i < 600; i++) {
    const s = pick(splits);
    const base = Float64Array.from(pick(real));
    for (const v of [s.value, step(s.value, 1n), step(s.value, -1n), Math.fround(s.value)]) {
      const row = Float64Array.from(base);
      row[s.feature] = v;
      boundary.push(row);
    }
  }
  // Rows built from thresholds alone reach branches real audio never does.
  const fromThresholds = Array.from({ length: 400 }, () => {
    const row = new Float64Array(nFeatures);
    for (let f = 0; f < nFeatures; f++) row[f] = pick(splits).value;
    for (const s of splits.slice(0, 20)) row[s.feature] = s.value;
    return row;
  });
  const odd = [
    new Float64Array(nFeatures).fill(Number.NaN),
    new Float64Array(nFeatures).fill(Number.POSITIVE_INFINITY),
    new Float64Array(nFeatures).fill(Number.NEGATIVE_INFINITY),
    new Float64Array(nFeatures), // -0 and +0 compare alike; zeros everywhere
    Float64Array.from(real[0]!, (v, i) => (i % 3 === 0 ? Number.NaN : v)),
  ];
  const rows = [...real, ...boundary, ...fromThresholds, ...odd];

  it('is the whole forest', () => {
    expect(flat.nTrees).toBe(file.forest.baseModel.nEstimators);
    expect(flat.nNodes).toBeGreaterThan(flat.nTrees * 10);
    expect(flat.nFeatures).toBeLessThanOrEqual(nFeatures);
    expect(flat.nClasses).toBe(2);
    expect(real.length).toBeGreaterThan(20);
  });

  it('every tree votes as the library on every row', () => {
    // Both classes must occur, or the comparison says little.
    const lib = libraryVotes(library, rows);
    expect(flatVotes(flat, rows)).toEqual(lib);
    const all = lib.flat();
    expect(all).toContain(0);
    expect(all).toContain(1);
  });

  it('ScreamModel.predict is the share of the library votes for "scream", bit for bit', () => {
    const model = loadModelFile();
    const probs = model.predict(rows);
    const expected = libraryVotes(library, rows).map((v) => v.filter((c) => c === 1).length / v.length);
    expect(probs).toEqual(expected);
    for (let i = 0; i < probs.length; i++) expect(Object.is(probs[i], expected[i])).toBe(true);
    expect(new Set(probs.slice(0, real.length)).size).toBeGreaterThan(3);
  });

  it('toJSON loads in the library and predicts the same votes; the model JSON round-trips', () => {
    const again = RandomForestClassifier.load(flat.toJSON() as never);
    expect(libraryVotes(again, rows)).toEqual(libraryVotes(library, rows));
    const model = loadModelFile();
    const reloaded = JSON.parse(JSON.stringify(model.toJSON()));
    expect(FlatForest.fromJSON(reloaded.forest).toJSON()).toEqual(flat.toJSON());
    expect(reloaded.version).toBe(file.version);
  });
});

describe('FlatForest on any ml-random-forest classifier', () => {
  // A forest trained by the library itself: three classes, feature bagging (each tree sees a
  // subset of columns in its own order, so `indexes` matters), gain and sample counts in the nodes.
  const random = prng(3);
  const X: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < 150; i++) {
    const c = i % 3;
    X.push([c + random() * 1.5, random() * 10, (c === 2 ? 5 : 0) + random() * 4, random(), c * random()]);
    y.push(c);
  }
  const library = new RandomForestClassifier({
    nEstimators: 15,
    maxFeatures: 0.6,
    seed: 5,
    noOOB: true,
    treeOptions: { maxDepth: 6 },
  });
  library.train(X, y);
  const json = JSON.parse(JSON.stringify(library.toJSON()));
  const flat = FlatForest.fromJSON(json);

  it('votes as the library, three classes, bagged columns', () => {
    expect(json.baseModel.indexes[0].length).toBeLessThan(5);
    const probe = Array.from({ length: 300 }, () => Array.from({ length: 5 }, () => random() * 12 - 1));
    const rows = [...X, ...probe];
    expect(flatVotes(flat, rows)).toEqual(libraryVotes(RandomForestClassifier.load(json), rows));
    expect(flat.nClasses).toBe(3);
    const counts = flat.votes(X[2]!, new Int32Array(3));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(15);
    expect(flat.voteShare(X[2]!, 2)).toBe(counts[2]! / 15);
  });

  it('refuses what it cannot predict, naming the problem', () => {
    expect(() => FlatForest.fromJSON({ name: 'RFRegression', baseModel: {} })).toThrow(
      /not an ml-random-forest classifier/,
    );
    const broken = JSON.parse(JSON.stringify(json));
    broken.baseModel.estimators[1].root.splitColumn = 99;
    expect(() => FlatForest.fromJSON(broken)).toThrow(/estimator 1: splitColumn 99/);
    const noChild = JSON.parse(JSON.stringify(json));
    delete noChild.baseModel.estimators[0].root.left;
    expect(() => FlatForest.fromJSON(noChild)).toThrow(FlatForestError);
    const short = JSON.parse(JSON.stringify(json));
    short.baseModel.nEstimators = 3;
    expect(() => FlatForest.fromJSON(short)).toThrow(/nEstimators/);
    expect(() => flat.countVotes([1, 2], 0)).toThrow(/input has 2 features/);
  });
});
