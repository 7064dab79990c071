import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeAudioFile } from '../core/audio/decode.ts';
import { type AnalysisResult, analyzeSamples } from '../core/detect/analyze.ts';
import { loadModelFile } from '../core/model/load.ts';

const USAGE = `usage: screamwatch analyze <file|dir>... [--json] [--model FILE] [--threshold P] [--k K] [--n N] [--max-seconds S]
  Scores WAV/MP3 files (directories are searched recursively). --json prints one JSON object per file per line.
  --max-seconds S refuses files that decode to more than S seconds (default 3600).`;

export async function runAnalyze(
  argv: string[],
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: 'boolean', default: false },
      model: { type: 'string' },
      threshold: { type: 'string' },
      k: { type: 'string' },
      n: { type: 'string' },
      'max-seconds': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) {
    (values.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const model = loadModelFile(values.model);
  const overrides = {
    ...(values.threshold !== undefined ? { threshold: numberFlag('--threshold', values.threshold) } : {}),
    ...(values.k !== undefined ? { k: numberFlag('--k', values.k) } : {}),
    ...(values.n !== undefined ? { n: numberFlag('--n', values.n) } : {}),
  };
  const maxSeconds =
    values['max-seconds'] !== undefined ? numberFlag('--max-seconds', values['max-seconds']) : 3600;
  let failed = false;
  const files: string[] = [];
  for (const p of positionals) {
    try {
      files.push(...(await expand(p)));
    } catch (err) {
      failed = true;
      report(
        out,
        values.json,
        p,
        null,
        `cannot read ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  for (const file of files) {
    try {
      const audio = await decodeAudioFile(file, { maxSeconds });
      report(out, values.json, file, analyzeSamples(audio.samples, model, overrides), null);
    } catch (err) {
      failed = true;
      report(out, values.json, file, null, (err as Error).message);
    }
  }
  return failed ? 1 : 0;
}

function numberFlag(name: string, v: string): number {
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`${name} must be a number, got ${JSON.stringify(v)}`);
  return x;
}

async function expand(path: string): Promise<string[]> {
  const s = await stat(path);
  if (!s.isDirectory()) return [path];
  const out: string[] = [];
  const entries = (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const p = join(path, e.name);
    if (e.isDirectory()) out.push(...(await expand(p)));
    else if (/\.(wav|mp3)$/i.test(e.name)) out.push(p);
  }
  return out;
}

function report(
  out: NodeJS.WritableStream,
  json: boolean,
  file: string,
  r: AnalysisResult | null,
  error: string | null,
): void {
  if (json) {
    if (r) {
      const { modelVersion: _v, ...rest } = r;
      out.write(`${JSON.stringify({ file, ...rest })}\n`);
    } else out.write(`${JSON.stringify({ file, error })}\n`);
    return;
  }
  if (!r) {
    out.write(`${file}\n  ERROR ${error}\n\n`);
    return;
  }
  const verdict = r.isScream
    ? `SCREAM (${r.events.length} event${r.events.length === 1 ? '' : 's'})`
    : 'no scream';
  out.write(
    `${file}\n  ${r.durationS.toFixed(1)} s  max p=${r.maxProbability.toFixed(2)}  threshold ${r.thresholdValue}  ${verdict}\n`,
  );
  out.write(`  ${timeline(r)}\n`);
  for (const e of r.events) {
    out.write(
      `  event ${fmt(e.startS)}-${fmt(e.endS)}  confirmed at ${fmt(e.detectedAtS)}  peak p=${e.peakProbability.toFixed(2)}\n`,
    );
  }
  out.write('\n');
}

/** One character per window: ' ' low, '.' under half the threshold, ':' under it, '#' over it. */
function timeline(r: AnalysisResult): string {
  const marks = r.windows.map((w) =>
    w.probability >= r.thresholdValue
      ? '#'
      : w.probability >= r.thresholdValue / 2
        ? ':'
        : w.probability > 0.1
          ? '.'
          : '_',
  );
  const line = marks.join('');
  return `|${line.length > 120 ? `${line.slice(0, 117)}...` : line}|`;
}

function fmt(s: number): string {
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, '0')}`;
}
