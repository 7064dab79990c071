import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_PATH, readModelFile } from '../core/model/load.ts';
import { ScreamModel } from '../core/model/scream-model.ts';
import { type CardModel, cardBlocks, cardSections, renderCard } from '../core/train/model-card.ts';

const USAGE = `usage: screamwatch model-card [--model FILE] [--card FILE] [--check]
  Rewrites the generated tables of the model card (--card, default MODEL_CARD.md beside the
  model) from the model file (default: the shipped one): version, defaults, training data per
  source, the leave-one-family-out figures against the targets, per family, and the decision
  rules. Run it after every \`screamwatch train\`. Prose outside the
  <!-- BEGIN generated: ... --> markers is left alone.
  --check: change nothing; exit 1 naming the first table that is out of date.`;

export async function runModelCard(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      card: { type: 'string' },
      check: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const modelPath = resolve(values.model ?? DEFAULT_MODEL_PATH);
  const cardPath = resolve(values.card ?? join(dirname(modelPath), 'MODEL_CARD.md'));
  const { text, json } = readModelFile(modelPath);
  // checked as a sensor checks a model (MODEL_INVALID naming what is wrong) before it is described
  ScreamModel.fromJSON(json, modelPath);
  const model = json as CardModel;
  const card = await readFile(cardPath, 'utf8');
  const sections = cardSections(model, Buffer.byteLength(text));
  const next = renderCard(card, sections);
  if (values.check) {
    if (next === card) {
      process.stdout.write(`${cardPath} is up to date with model ${model.version}\n`);
      return 0;
    }
    const blocks = cardBlocks(card);
    const stale =
      Object.keys(sections).find((name) => blocks.get(name) !== sections[name]) ?? '(outside the tables)';
    process.stderr.write(
      `${cardPath} is out of date with model ${model.version} (table "${stale}"): run screamwatch model-card\n`,
    );
    return 1;
  }
  if (next !== card) await writeFile(cardPath, next);
  process.stdout.write(`${next === card ? 'unchanged' : 'updated'}: ${cardPath} (model ${model.version})\n`);
  return 0;
}
