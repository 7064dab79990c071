import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runAnalyze } from '../../cli/analyze.ts';
import { decodeAudio } from '../../core/audio/decode.ts';
import { scanMp3 } from '../../core/audio/mp3.ts';

const dir = mkdtempSync(join(tmpdir(), 'sw-bounds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 70 s of 8 kHz MPEG-2.5 at 8 kbit/s: 70 KB that decode to 70 s (the bomb's recipe, smaller). */
function longMp3(): string {
  const path = join(dir, 'long.mp3');
  execFileSync('sox', ['-n', '-r', '8000', '-c', '1', '-C', '8', path, 'synth', '70', 'sine', '300']);
  return path;
}

/** 70 s of 1 kHz 8-bit WAV: 70 KB that resample to 64x its size in float samples. */
function longWav(): string {
  const path = join(dir, 'long.wav');
  execFileSync('sox', ['-n', '-r', '1000', '-c', '1', '-b', '8', path, 'synth', '70', 'sine', '300']);
  return path;
}

describe('decoded duration is bounded before the big allocations', () => {
  it('MP3: refused from its frame headers, before mpg123 decodes anything', async () => {
    const bytes = readFileSync(longMp3());
    expect(scanMp3(bytes)!.durationS).toBeGreaterThan(69);
    await expect(decodeAudio(bytes, 'long.mp3', { maxSeconds: 60 })).rejects.toMatchObject({
      code: 'AUDIO_TOO_LONG',
      message: expect.stringMatching(/decodes to 70 s of audio; at most 60 s can be analysed/),
    });
    expect((await decodeAudio(bytes, 'long.mp3', { maxSeconds: 80 })).durationS).toBeGreaterThan(69);
  });

  it('WAV: refused before resampling', async () => {
    const bytes = readFileSync(longWav());
    await expect(decodeAudio(bytes, 'long.wav', { maxSeconds: 60 })).rejects.toMatchObject({
      code: 'AUDIO_TOO_LONG',
    });
  });

  it('the CLI takes --max-seconds and names the file and the limit', async () => {
    const lines: string[] = [];
    const out = { write: (s: string) => lines.push(s) } as unknown as NodeJS.WritableStream;
    expect(await runAnalyze([join(dir, 'long.wav'), '--json', '--max-seconds', '10'], out)).toBe(1);
    expect(JSON.parse(lines.join('')).error).toMatch(/long\.wav: decodes to 70 s of audio; at most 10 s/);
  });
});
