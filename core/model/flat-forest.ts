/**
 * A random-forest classifier in flat typed arrays, loaded from ml-random-forest's JSON
 * (`RandomForestClassifier.toJSON()`, `{name: 'RFClassifier', baseModel}`) and predicting exactly
 * what the library predicts on it: every tree takes the same branch for every input (the same
 * `row[column] < splitValue` test in float64, NaN going right), ends in the same leaf and votes for
 * the same class (the first largest entry of the leaf's distribution, as ml-matrix's
 * `maxRowIndex`). `test/core/flat-forest.test.ts` checks this vote for vote against the library
 * on the shipped model.
 *
 * Why: the library keeps one object per node plus an ml-matrix per leaf and copies every input row
 * into a Matrix, then a column-selection view per tree. For the shipped forest (100 trees, ~29k
 * nodes) that is megabytes of small objects on a 512 MB Pi and an allocation per tree per window.
 * Here a node is five array slots and a prediction allocates nothing.
 *
 * Thresholds stay float64 (Float64Array), not float32: the trained split values are doubles, and a
 * float32 copy would send an input lying between the double and its float32 rounding the other way,
 * so predictions would no longer be the library's bit for bit.
 */

export class FlatForestError extends Error {}

/** One node per slot, all trees one after another. */
interface Nodes {
  /** Split: the input feature compared (the tree's column resolved through `indexes`). Leaf: -1 - voted class. */
  feature: Int32Array;
  /** Split: go left when `row[feature] < threshold`. */
  threshold: Float64Array;
  /** Split: child slots. Leaf: start and length of its distribution in `distribution`. */
  left: Int32Array;
  right: Int32Array;
  /** Split: the tree-local splitColumn from the JSON (kept to write the JSON back). */
  column: Int32Array;
}

interface TreeJsonNode {
  distribution?: unknown;
  splitValue?: unknown;
  splitColumn?: unknown;
  left?: unknown;
  right?: unknown;
}

interface TreeHeader {
  name: unknown;
  options: unknown;
}

export class FlatForest {
  private constructor(
    private readonly nodes: Nodes,
    private readonly distribution: Float64Array,
    /** Root slot of each tree. */
    private readonly roots: Int32Array,
    /** Number of classes any leaf can vote for (the widest leaf distribution). */
    readonly nClasses: number,
    /** The smallest row length every tree can be evaluated on (largest feature index + 1). */
    readonly nFeatures: number,
    /** Everything in baseModel except the trees: written back unchanged by toJSON(). */
    private readonly baseMeta: Record<string, unknown>,
    private readonly treeHeaders: TreeHeader[],
  ) {}

  get nTrees(): number {
    return this.roots.length;
  }
  get nNodes(): number {
    return this.nodes.feature.length;
  }

  /** Loads `RandomForestClassifier.toJSON()` output; throws FlatForestError naming what is wrong. */
  static fromJSON(json: unknown): FlatForest {
    const top = json as { name?: unknown; baseModel?: unknown } | null;
    if (!top || typeof top !== 'object' || top.name !== 'RFClassifier') {
      throw new FlatForestError(`not an ml-random-forest classifier (name: ${String(top?.name)})`);
    }
    const base = top.baseModel as Record<string, unknown> | undefined;
    if (!base || typeof base !== 'object') throw new FlatForestError('baseModel missing');
    if (base.isClassifier !== true) throw new FlatForestError('baseModel is not a classifier');
    const estimators = base.estimators;
    const indexes = base.indexes;
    if (!Array.isArray(estimators) || estimators.length === 0) {
      throw new FlatForestError('no estimators');
    }
    if (!Array.isArray(indexes) || indexes.length !== estimators.length) {
      throw new FlatForestError('indexes must list the columns of every estimator');
    }
    // The library loops over nEstimators, not estimators.length: both must agree.
    if (base.nEstimators !== estimators.length) {
      throw new FlatForestError(
        `nEstimators is ${String(base.nEstimators)} but there are ${estimators.length} estimators`,
      );
    }

    // First pass: count nodes and leaf distribution values, so the arrays are allocated once.
    let nNodes = 0;
    let nDist = 0;
    const headers: TreeHeader[] = [];
    for (let t = 0; t < estimators.length; t++) {
      const est = estimators[t] as { name?: unknown; options?: unknown; root?: unknown } | null;
      if (est?.name !== 'DTClassifier' || !est.root || typeof est.root !== 'object') {
        throw new FlatForestError(`estimator ${t}: not a DTClassifier with a root`);
      }
      headers.push({ name: est.name, options: est.options });
      const stack: unknown[] = [est.root];
      while (stack.length > 0) {
        const node = stack.pop() as TreeJsonNode;
        nNodes++;
        if (node.distribution !== undefined) {
          nDist += leafRow(node.distribution, t).length;
        } else {
          stack.push(childOf(node, 'right', t), childOf(node, 'left', t));
        }
      }
    }

    const nodes: Nodes = {
      feature: new Int32Array(nNodes),
      threshold: new Float64Array(nNodes),
      left: new Int32Array(nNodes),
      right: new Int32Array(nNodes),
      column: new Int32Array(nNodes),
    };
    const distribution = new Float64Array(nDist);
    const roots = new Int32Array(estimators.length);
    let next = 0;
    let distNext = 0;
    let nClasses = 0;
    let nFeatures = 0;

    for (let t = 0; t < estimators.length; t++) {
      const cols = indexes[t];
      if (!Array.isArray(cols)) throw new FlatForestError(`indexes[${t}] is not an array`);
      // Pre-order layout: a node's slot is taken when it is visited; children are patched in.
      const stack: { node: TreeJsonNode; parent: number; side: 0 | 1 }[] = [
        { node: (estimators[t] as { root: TreeJsonNode }).root, parent: -1, side: 0 },
      ];
      while (stack.length > 0) {
        const { node, parent, side } = stack.pop()!;
        const slot = next++;
        if (parent < 0) roots[t] = slot;
        else if (side === 0) nodes.left[parent] = slot;
        else nodes.right[parent] = slot;

        if (node.distribution !== undefined) {
          const row = leafRow(node.distribution, t);
          // ml-matrix maxRowIndex(0): the first entry strictly larger than all before it.
          let best = 0;
          for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
          nodes.feature[slot] = -1 - best;
          nodes.left[slot] = distNext;
          nodes.right[slot] = row.length;
          for (const v of row) distribution[distNext++] = v;
          nClasses = Math.max(nClasses, row.length);
          continue;
        }
        const column = node.splitColumn;
        if (!Number.isInteger(column) || (column as number) < 0 || (column as number) >= cols.length) {
          throw new FlatForestError(
            `estimator ${t}: splitColumn ${String(column)} is outside its ${cols.length} columns`,
          );
        }
        const feature = cols[column as number];
        if (!Number.isInteger(feature) || (feature as number) < 0) {
          throw new FlatForestError(`indexes[${t}][${String(column)}] is not a column index`);
        }
        if (typeof node.splitValue !== 'number') {
          throw new FlatForestError(`estimator ${t}: splitValue is not a number`);
        }
        nodes.feature[slot] = feature as number;
        nodes.column[slot] = column as number;
        nodes.threshold[slot] = node.splitValue;
        nFeatures = Math.max(nFeatures, (feature as number) + 1);
        stack.push(
          { node: node.right as TreeJsonNode, parent: slot, side: 1 },
          { node: node.left as TreeJsonNode, parent: slot, side: 0 },
        );
      }
    }

    const { estimators: _e, ...baseMeta } = base;
    return new FlatForest(nodes, distribution, roots, nClasses, nFeatures, baseMeta, headers);
  }

  /** The class tree `t` votes for. `row` must hold at least nFeatures values. */
  treeVote(row: ArrayLike<number>, t: number): number {
    const { feature, threshold, left, right } = this.nodes;
    let i = this.roots[t]!;
    let f = feature[i]!;
    while (f >= 0) {
      i = row[f]! < threshold[i]! ? left[i]! : right[i]!;
      f = feature[i]!;
    }
    return -1 - f;
  }

  /** How many trees vote for class `cls`. */
  countVotes(row: ArrayLike<number>, cls: number): number {
    this.checkRow(row);
    let n = 0;
    for (let t = 0; t < this.roots.length; t++) if (this.treeVote(row, t) === cls) n++;
    return n;
  }

  /** Votes per class into `out` (length >= nClasses), which is zeroed first. */
  votes(row: ArrayLike<number>, out: Int32Array): Int32Array {
    this.checkRow(row);
    out.fill(0);
    for (let t = 0; t < this.roots.length; t++) out[this.treeVote(row, t)]!++;
    return out;
  }

  /** Share of trees voting for class `cls` (votes / trees, as a vote count over the library's predictionValues row). */
  voteShare(row: ArrayLike<number>, cls: number): number {
    return this.countVotes(row, cls) / this.roots.length;
  }

  /** ml-random-forest's JSON for this forest: loads in the library and predicts the same. */
  toJSON(): { name: 'RFClassifier'; baseModel: Record<string, unknown> } {
    const { feature, threshold, left, right, column } = this.nodes;
    const nodeJson = (root: number): TreeJsonNode => {
      const out: TreeJsonNode = {};
      const stack: { slot: number; into: TreeJsonNode }[] = [{ slot: root, into: out }];
      while (stack.length > 0) {
        const { slot, into } = stack.pop()!;
        if (feature[slot]! < 0) {
          const start = left[slot]!;
          into.distribution = [Array.from(this.distribution.subarray(start, start + right[slot]!))];
          continue;
        }
        const l: TreeJsonNode = {};
        const r: TreeJsonNode = {};
        into.splitValue = threshold[slot];
        into.splitColumn = column[slot];
        into.left = l;
        into.right = r;
        stack.push({ slot: left[slot]!, into: l }, { slot: right[slot]!, into: r });
      }
      return out;
    };
    const estimators = Array.from(this.roots, (root, t) => ({
      options: this.treeHeaders[t]!.options,
      root: nodeJson(root),
      name: this.treeHeaders[t]!.name,
    }));
    return { name: 'RFClassifier', baseModel: { ...this.baseMeta, estimators } };
  }

  private checkRow(row: ArrayLike<number>): void {
    if (row.length < this.nFeatures) {
      throw new FlatForestError(`input has ${row.length} features, the forest reads ${this.nFeatures}`);
    }
  }
}

function leafRow(distribution: unknown, t: number): number[] {
  // ml-cart keeps `[[p0, p1, ...]]` (a 1-row matrix) per leaf; only row 0 decides the vote.
  const row = Array.isArray(distribution) ? distribution[0] : undefined;
  if (!Array.isArray(row) || row.length === 0 || row.some((v) => typeof v !== 'number')) {
    throw new FlatForestError(`estimator ${t}: a leaf distribution is not [[numbers]]`);
  }
  return row as number[];
}

function childOf(node: TreeJsonNode, side: 'left' | 'right', t: number): unknown {
  const child = node[side];
  if (!child || typeof child !== 'object') {
    throw new FlatForestError(`estimator ${t}: a split node has no ${side} child`);
  }
  return child;
}
