import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { AnalysisPool } from '../../../cloud/web/analysis-pool.ts';
import { loadModelFile } from '../../../core/model/load.ts';

/** Nice level of each thread of this process (field 19 of /proc/self/task/<tid>/stat). */
function threadNice(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), Number(fields[16]));
  }
  return out;
}

let pool: AnalysisPool | null = null;
afterEach(async () => {
  await pool?.stop();
  pool = null;
});

describe.runIf(process.platform === 'linux')('AnalysisPool', () => {
  it('runs the analysis worker 10 nice levels below the main thread, so ingest wins the core', async () => {
    pool = new AnalysisPool(JSON.stringify(loadModelFile().toJSON()));
    await pool.start();
    const before = new Set(threadNice().keys());
    const main = threadNice().get(process.pid)!;
    // junk bytes: refused by the decoder, but the worker is up and has lowered itself
    await expect(pool.analyse(new Uint8Array([1, 2, 3, 4]), 'junk.bin')).rejects.toThrow();
    const added = [...threadNice()].filter(([tid]) => !before.has(tid)).map(([, nice]) => nice);
    expect(added).toContain(Math.min(19, main + 10));
    expect(threadNice().get(process.pid)).toBe(main);
  });

  it('transfers an owned buffer to the worker (detached here) and copies a borrowed one', async () => {
    pool = new AnalysisPool(JSON.stringify(loadModelFile().toJSON()));
    await pool.start();
    const owned = new Uint8Array(64).subarray(0, 4);
    await expect(pool.analyse(owned, 'a.bin', undefined, true)).rejects.toThrow();
    expect(owned.buffer.byteLength).toBe(0);
    const borrowed = new Uint8Array(64).subarray(0, 4);
    await expect(pool.analyse(borrowed, 'b.bin')).rejects.toThrow();
    expect(borrowed.buffer.byteLength).toBe(64);
  });
});
