import { execFile } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { cardSections, renderCard } from '../../core/train/model-card.ts';
import { tempDir } from '../support/audio-fixtures.ts';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../bin/screamwatch.js');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function cli(args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    return err as { code: number; stdout: string; stderr: string };
  }
}

const MODELS = join(import.meta.dirname, '../../models');

describe('model card', () => {
  it("the shipped card's generated tables are those of the shipped model (run `screamwatch model-card` after training)", () => {
    const text = readFileSync(join(MODELS, 'screamwatch-forest.json'), 'utf8');
    const model = JSON.parse(text);
    const card = readFileSync(join(MODELS, 'MODEL_CARD.md'), 'utf8');
    const sections = cardSections(model, Buffer.byteLength(text));
    for (const name of Object.keys(sections)) expect(card).toContain(`<!-- BEGIN generated: ${name} -->`);
    expect(renderCard(card, sections)).toBe(card);
    expect(card).toContain(`\`${model.version}\``);
  });

  it('fills every marker, keeps the prose, and refuses a marker or a section without its counterpart', () => {
    const model = {
      version: 'v-test',
      threshold: 0.7,
      confirm: { k: 2, n: 3, releaseWindows: 4, singleWindowThreshold: 0.9 },
      levelGateDbfs: -60,
      featureNames: ['a', 'b'],
    };
    const sections = cardSections(model, 2_000_000);
    expect(sections.model).toContain('| Version | `v-test`');
    expect(sections.model).toContain('threshold 0.7, 2 of 3 windows, or one window ≥ 0.9');
    expect(sections.model).toContain('2 window features; 2.00 MB');
    expect(sections.validation).toMatch(/no held-out figures/);
    const card = `# card\n\nprose stays\n\n${Object.keys(sections)
      .map((n) => `<!-- BEGIN generated: ${n} -->\nold numbers\n<!-- END generated: ${n} -->`)
      .join('\n\nmore prose\n\n')}\n`;
    const out = renderCard(card, sections);
    expect(out).not.toContain('old numbers');
    expect(out.match(/more prose/g)).toHaveLength(Object.keys(sections).length - 1);
    expect(out.startsWith('# card\n\nprose stays\n\n')).toBe(true);
    // idempotent
    expect(renderCard(out, sections)).toBe(out);
    expect(() =>
      renderCard(`${card}<!-- BEGIN generated: bogus -->\nx\n<!-- END generated: bogus -->\n`, sections),
    ).toThrow(/no generated section named "bogus"/);
    // a BEGIN without its END fails, so its stale numbers cannot stay unnoticed
    expect(() =>
      renderCard(card.replace('<!-- END generated: rules -->', '<!-- END generated: rulez -->'), sections),
    ).toThrow(/BEGIN generated: rules --> has no matching END/);
    expect(() =>
      renderCard(
        `${card}<!-- BEGIN generated: per-family -->\nx\n<!-- END generated: per-family -->\n`,
        sections,
      ),
    ).toThrow(/no generated section named "per-family"/);
    expect(() =>
      renderCard(`${card}<!-- BEGIN generated: rules -->\nx\n<!-- END generated: rules -->\n`, sections),
    ).toThrow(/"rules" is marked twice/);
    // a card saved with CRLF line ends still renders
    expect(renderCard(card.replace(/\n/g, '\r\n'), sections)).toContain(sections.model);
    const noRules = card.replace(/<!-- BEGIN generated: rules -->[\s\S]*?<!-- END generated: rules -->/, '');
    expect(() => renderCard(noRules, sections)).toThrow(/marker for section "rules"/);
  });

  it('screamwatch model-card --check names a stale table and exits 1; without --check it rewrites the card', async () => {
    const model = join(tmp.dir, 'model.json');
    const card = join(tmp.dir, 'MODEL_CARD.md');
    copyFileSync(join(MODELS, 'screamwatch-forest.json'), model);
    const shipped = readFileSync(join(MODELS, 'MODEL_CARD.md'), 'utf8');
    const version = JSON.parse(readFileSync(model, 'utf8')).version as string;
    // a retrained model whose card was not regenerated: the version and a figure differ
    writeFileSync(card, shipped.replace(`| Version | \`${version}\``, '| Version | `old-version`'));
    const stale = await cli(['model-card', '--model', model, '--check']);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/out of date with model .* \(table "model"\): run screamwatch model-card/);
    expect(readFileSync(card, 'utf8')).toContain('old-version');
    const fixed = await cli(['model-card', '--model', model]);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).toMatch(/^updated: /);
    expect(readFileSync(card, 'utf8')).toBe(shipped);
    expect((await cli(['model-card', '--model', model, '--check'])).code).toBe(0);
    const notModel = join(tmp.dir, 'x.json');
    writeFileSync(notModel, '{"hello": 1}');
    const bad = await cli(['model-card', '--model', notModel, '--card', card]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/MODEL_INVALID.*x\.json: not a screamwatch-forest\/1 model file/);
    const missing = await cli(['model-card', '--model', join(tmp.dir, 'none.json'), '--card', card]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/MODEL_NOT_FOUND.*none\.json/);
    // a stale table whose fresh version is a prefix of it (a row left over) is named too
    const families = shipped.indexOf('<!-- END generated: families -->');
    writeFileSync(card, `${shipped.slice(0, families)}| left-over | row |\n${shipped.slice(families)}`);
    const leftover = await cli(['model-card', '--model', model, '--check']);
    expect(leftover.code).toBe(1);
    expect(leftover.stderr).toMatch(/\(table "families"\)/);
  });
});
