import type { BaselineReport } from './baseline.ts';
import { familyOf } from './families.ts';
import type { GroupFigures, RuleComparison, ValidationReport } from './pipeline.ts';

/**
 * The model card's tables, written from the model file: its training summary and the
 * leave-one-family-out figures `train` stored in it. Prose stays hand-written; the numbers a
 * reader compares against the targets cannot drift from the model that ships
 * (`screamwatch model-card --check` fails when they do; a test runs it on the shipped pair).
 */

/** What the card reads from a model file (the fields `buildModelFile` writes). */
export interface CardModel {
  version: string;
  threshold: number;
  confirm: { k: number; n: number; releaseWindows: number; singleWindowThreshold?: number };
  levelGateDbfs: number;
  featureNames: readonly string[];
  training?: {
    clips?: number;
    screamClips?: number;
    nonScreamClips?: number;
    sources?: { source: string; license: string; screams: number; nonScreams: number; minutes: number }[];
    forest?: { nEstimators: number; maxDepth: number; minSamplesLeaf: number; minSamplesSplit: number };
    validationTrees?: number | null;
    seconds?: number;
  };
  metrics?: Partial<ValidationReport>;
}

/** Targets of issue 10, checked in the validation table. */
export const CARD_TARGETS = {
  rocAuc: 0.97,
  eventRecall: 0.9,
  falseAlarmsPerHour: 2,
  recall10Db: 0.85,
  medianLatencyS: 1.5,
};

/** A share as a percentage with one decimal, '-' for a figure that does not exist. */
export const pct = (x: number | null | undefined) =>
  x === null || x === undefined || Number.isNaN(x) ? '-' : `${(x * 100).toFixed(1)}%`;
/** A number with `d` decimals, '-' for a figure that does not exist. */
export const num = (x: number | null | undefined, d = 2) =>
  x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d);
const cell = (s: string) => s.replace(/\|/g, '/').replace(/\s+/g, ' ').trim();
const met = (ok: boolean) => (ok ? 'met' : 'missed');

function rule(c: CardModel['confirm'], threshold: number): string {
  const single = c.singleWindowThreshold !== undefined ? `, or one window ≥ ${c.singleWindowThreshold}` : '';
  return `threshold ${threshold}, ${c.k} of ${c.n} window${c.n === 1 ? '' : 's'}${single}, release after ${c.releaseWindows} quiet windows`;
}

function modelTable(m: CardModel, bytes: number): string {
  const f = m.training?.forest;
  const rows: [string, string][] = [
    ['Version', `\`${m.version}\` (in every event as \`modelVersion\`)`],
    [
      'Forest',
      f
        ? `${f.nEstimators} trees, depth ≤ ${f.maxDepth}, ≥ ${f.minSamplesLeaf} rows per leaf (≥ ${f.minSamplesSplit} to split), ${m.featureNames.length} window features; ${(bytes / 1e6).toFixed(2)} MB`
        : `${m.featureNames.length} window features; ${(bytes / 1e6).toFixed(2)} MB`,
    ],
    ['Defaults', `${rule(m.confirm, m.threshold)}, level gate ${m.levelGateDbfs} dBFS`],
  ];
  const t = m.training;
  if (t?.clips !== undefined)
    rows.push([
      'Trained on',
      `${t.screamClips} scream and ${t.nonScreamClips} non-scream clips from ${t.sources?.length ?? '?'} sources${t.seconds !== undefined ? `, in ${t.seconds} s` : ''}${t.validationTrees ? ` (with ${t.validationTrees}-tree validation folds)` : ' (not validated)'}`,
    ]);
  return ['| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${cell(v)} |`)].join('\n');
}

function sourcesTable(m: CardModel): string {
  const sources = [...(m.training?.sources ?? [])].sort(
    (a, b) => familyOf(a.source).localeCompare(familyOf(b.source)) || a.source.localeCompare(b.source),
  );
  return [
    '| family | source (manifest `source_repo`) | screams | non-screams | minutes | licence as stated (most common) |',
    '|---|---|---:|---:|---:|---|',
    ...sources.map(
      (s) =>
        `| ${familyOf(s.source)} | ${cell(s.source)} | ${s.screams} | ${s.nonScreams} | ${s.minutes.toFixed(1)} | ${cell(s.license)} |`,
    ),
  ].join('\n');
}

function validationTable(r: Partial<ValidationReport>): string {
  const w = r.windows;
  const e = r.events;
  const at = w?.atThreshold;
  const noisy = (snr: number) => r.noisy?.find((n) => n.snrDb === snr);
  const rows: [string, string, string][] = [
    [
      'ROC-AUC (windows)',
      num(w?.rocAuc, 3),
      `≥ ${CARD_TARGETS.rocAuc}: ${met((w?.rocAuc ?? 0) >= CARD_TARGETS.rocAuc)}`,
    ],
    ['average precision (windows)', num(w?.averagePrecision, 3), ''],
  ];
  if (r.clips)
    rows.push(
      ['ROC-AUC (clips, each by its highest window)', num(r.clips.rocAuc, 3), ''],
      ['average precision (clips)', num(r.clips.averagePrecision, 3), ''],
    );
  if (r.baseline && Number.isFinite(r.baseline.clips.rocAuc))
    rows.push([
      'plain whole-clip baseline on the same folds: clip ROC-AUC',
      num(r.baseline.clips.rocAuc, 3),
      r.clips && Number.isFinite(r.clips.rocAuc)
        ? `this recipe ${r.clips.rocAuc >= r.baseline.clips.rocAuc ? 'ahead' : 'behind'} by ${Math.abs(r.clips.rocAuc - r.baseline.clips.rocAuc).toFixed(3)}`
        : '',
    ]);
  if (at)
    rows.push([
      `at the default threshold ${at.threshold}: precision / recall / F1 / window FPR`,
      `${pct(at.precision)} / ${pct(at.recall)} / ${num(at.f1, 3)} / ${pct(at.falsePositiveRate)}`,
      '',
    ]);
  if (e) {
    const ok =
      e.eventRecall >= CARD_TARGETS.eventRecall && e.falseAlarmsPerHour <= CARD_TARGETS.falseAlarmsPerHour;
    rows.push(
      [
        'scream clips with a confirmed event',
        `${pct(e.eventRecall)} of ${e.screamClips}`,
        `≥ ${pct(CARD_TARGETS.eventRecall)} at ≤ ${CARD_TARGETS.falseAlarmsPerHour} false alarms/h: ${met(ok)}`,
      ],
      [
        'confirmed false alarms',
        `${e.falseAlarms} in ${(e.nonScreamHours * 60).toFixed(1)} min = ${num(e.falseAlarmsPerHour, 1)} per hour`,
        `≤ ${CARD_TARGETS.falseAlarmsPerHour}`,
      ],
    );
  }
  for (const snr of [0, 5, 10, 20]) {
    const n = noisy(snr);
    if (!n) continue;
    rows.push([
      `mixed into held-out backgrounds at ${snr} dB: event recall`,
      pct(n.eventRecall),
      snr === 10 ? `≥ ${pct(CARD_TARGETS.recall10Db)}: ${met(n.eventRecall >= CARD_TARGETS.recall10Db)}` : '',
    ]);
  }
  if (r.latencyFromOnset)
    rows.push([
      'latency from onset (noisy mixes, all SNRs), median / p90',
      `${num(r.latencyFromOnset.medianS, 2)} s / ${num(r.latencyFromOnset.p90S, 2)} s`,
      `median ≤ ${CARD_TARGETS.medianLatencyS} s: ${met(r.latencyFromOnset.medianS <= CARD_TARGETS.medianLatencyS)}`,
    ]);
  return [
    '| metric (pooled over the held-out families, at the defaults) | value | target |',
    '|---|---|---|',
    ...rows.map(([a, b, c]) => `| ${cell(a)} | ${cell(b)} | ${cell(c)} |`),
  ].join('\n');
}

function familiesTable(groups: readonly GroupFigures[], baseline?: BaselineReport): string {
  const base = (g: string) => num(baseline?.groups.find((b) => b.group === g)?.clipRocAuc, 3);
  return [
    `| held-out family | screams / non-screams | window ROC-AUC | clip ROC-AUC${baseline ? ' (plain baseline)' : ''} | window FPR | clip event recall | false alarms / h | recall at 0 / 5 / 10 / 20 dB | latency median / p90 |`,
    '|---|---|---|---|---|---|---|---|---|',
    ...groups.map((g) => {
      const noisy = [0, 5, 10, 20]
        .map((s) => pct(g.noisyRecall.find((n) => n.snrDb === s)?.eventRecall))
        .join(' / ');
      return `| ${cell(g.group)} | ${g.screamClips} / ${g.nonScreamClips} | ${num(g.rocAuc, 3)} | ${num(g.clipRocAuc, 3)}${baseline ? ` (${base(g.group)})` : ''} | ${pct(g.windowFalsePositiveRate)} | ${pct(g.eventRecall)} | ${num(g.falseAlarmsPerHour, 1)} (${g.falseAlarms}) | ${g.screamClips ? noisy : '-'} | ${num(g.medianLatencyS, 2)} / ${num(g.p90LatencyS, 2)} s |`;
    }),
  ].join('\n');
}

function rulesTable(rules: readonly RuleComparison[]): string {
  return [
    '| rule | threshold | k of n | single-window threshold | clip recall | 10 dB recall | false alarms/h | median latency |',
    '|---|---|---|---|---|---|---|---|',
    ...rules.map(
      (x) =>
        `| ${cell(x.rule)} | ${x.threshold} | ${x.k} of ${x.n} | ${x.singleWindowThreshold ?? '-'} | ${pct(x.eventRecall)} | ${pct(x.noisyRecall10Db)} | ${num(x.falseAlarmsPerHour, 1)} | ${num(x.medianLatencyS, 2)} s |`,
    ),
  ].join('\n');
}

/** Every generated section of the card, by marker name. A model without validation figures gets a note instead. */
export function cardSections(m: CardModel, bytes: number): Record<string, string> {
  const r = m.metrics;
  const none = '_This model was trained with `--no-validate`: it has no held-out figures._';
  return {
    model: modelTable(m, bytes),
    sources: sourcesTable(m),
    validation: r?.windows ? validationTable(r) : none,
    families: r?.groups?.length ? familiesTable(r.groups, r.baseline) : none,
    rules: r?.rules?.length
      ? `Compared within ${r.rules[0]!.falseAlarmBudgetPerHour} false alarms/h (the smallest budget within which some setting catches half the screams), each rule at its best setting:\n\n${rulesTable(r.rules)}`
      : none,
  };
}

const MARKER = /<!-- BEGIN generated: ([\w-]+) -->\r?\n([\s\S]*?)<!-- END generated: \1 -->/g;

/** The body of every generated block of a card, by name. */
export function cardBlocks(card: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of card.matchAll(MARKER)) out.set(m[1]!, m[2]!.replace(/\r?\n$/, ''));
  return out;
}

/**
 * The card with every `<!-- BEGIN generated: name -->` ... `<!-- END generated: name -->`
 * block replaced by its section. Throws naming a marker the card has that no section fills,
 * and a section the card has no marker for, so a renamed marker cannot leave stale numbers.
 */
export function renderCard(card: string, sections: Record<string, string>): string {
  const seen = new Set<string>();
  const begins = [...card.matchAll(/<!-- BEGIN generated: ([^\s>]*)/g)].map((m) => m[1]!);
  const out = card.replace(MARKER, (_all, name: string) => {
    const body = sections[name];
    if (body === undefined) throw new Error(`model card: no generated section named "${name}"`);
    if (seen.has(name)) throw new Error(`model card: the section "${name}" is marked twice`);
    seen.add(name);
    return `<!-- BEGIN generated: ${name} -->\n${body}\n<!-- END generated: ${name} -->`;
  });
  const unclosed = begins.find((n) => !seen.has(n));
  if (unclosed !== undefined)
    throw new Error(`model card: <!-- BEGIN generated: ${unclosed} --> has no matching END marker`);
  const missing = Object.keys(sections).filter((n) => !seen.has(n));
  if (missing.length)
    throw new Error(
      `model card: no <!-- BEGIN generated: ${missing[0]} --> marker for section "${missing[0]}"`,
    );
  return out;
}
