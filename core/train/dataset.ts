import { readdir, readFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { decodeAudioFile } from '../audio/decode.ts';

export interface Clip {
  /** Path relative to the data folder, e.g. `scream/x.wav`. */
  file: string;
  label: 0 | 1;
  /** Recording source, for grouped validation (manifest source_repo, else a guess). */
  source: string;
  /** The original recording the clip was cut from (source + path without `#t=`), for grouped splits. */
  recording: string;
  license: string;
  samples: Float32Array;
  durationS: number;
}

export interface DatasetOptions {
  /** Stop after this many clips per class (quick runs and tests). */
  limitPerClass?: number;
  onClip?: (done: number, total: number) => void;
}

/**
 * Reads a training folder: `scream/` and `non_scream/` with WAV/MP3 clips, and optionally
 * `manifest.csv` (file,label,source_repo,source_path,license,duration_s) naming each clip's
 * source. Without a manifest, the source is the part of the file name before `__`, or the
 * file itself, so a grouped split still never puts pieces of one recording on both sides.
 */
export async function loadDataset(dir: string, options: DatasetOptions = {}): Promise<Clip[]> {
  const manifest = await readManifest(join(dir, 'manifest.csv'));
  const files: { path: string; label: 0 | 1 }[] = [];
  for (const [sub, label] of [
    ['scream', 1],
    ['non_scream', 0],
  ] as const) {
    let found = await listAudio(join(dir, sub)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT')
        throw new Error(`${join(dir, sub)}: missing; a data folder needs scream/ and non_scream/`);
      throw err;
    });
    found.sort();
    if (options.limitPerClass) found = found.slice(0, options.limitPerClass);
    files.push(...found.map((path) => ({ path, label })));
  }
  const clips: Clip[] = [];
  let done = 0;
  for (const f of files) {
    const rel = relative(dir, f.path).split('\\').join('/');
    const audio = await decodeAudioFile(f.path);
    const m = manifest.get(rel);
    clips.push({
      file: rel,
      label: f.label,
      source: m?.source ?? guessSource(rel),
      recording:
        m?.recording ??
        `${m?.source ?? guessSource(rel)}:${rel.replace(/(__seg\d+|_\d+)?\.(wav|mp3)$/i, '')}`,
      license: m?.license ?? 'unknown',
      samples: audio.samples,
      durationS: audio.durationS,
    });
    options.onClip?.(++done, files.length);
  }
  return clips;
}

async function listAudio(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listAudio(p)));
    else if (/\.(wav|mp3)$/i.test(entry.name)) out.push(p);
  }
  return out;
}

function guessSource(rel: string): string {
  const name = basename(rel);
  const i = name.indexOf('__');
  return i > 0 ? name.slice(0, i) : rel;
}

async function readManifest(
  path: string,
): Promise<Map<string, { source: string; license: string; recording: string }>> {
  const map = new Map<string, { source: string; license: string; recording: string }>();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return map;
  }
  const rows = parseCsv(text);
  const header = rows.shift() ?? [];
  const col = (name: string) => header.indexOf(name);
  const fi = col('file');
  const si = col('source_repo');
  const li = col('license');
  const pi = col('source_path');
  if (fi < 0) return map;
  for (const r of rows) {
    const file = r[fi];
    if (!file) continue;
    const source = (si >= 0 && r[si]) || guessSource(file);
    // pieces of one recording (`x.wav#t=0-10s`, `x_0.wav`, `x_1.wav`) share a group
    const original = ((pi >= 0 && r[pi]) || file).replace(/#.*$/, '').replace(/(_\d+)?\.(wav|mp3)$/i, '');
    map.set(file, { source, license: (li >= 0 && r[li]) || 'unknown', recording: `${source}:${original}` });
  }
  return map;
}

/** RFC 4180 CSV: quoted fields may hold commas, quotes ("") and newlines. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      if (row.some((x) => x !== '')) rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
