import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeAudio } from '../../core/audio/decode.ts';
import { scanMp3 } from '../../core/audio/mp3.ts';

const dir = mkdtempSync(join(tmpdir(), 'sw-mp3-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function soxMp3(name: string, args: string[]): Buffer {
  const path = join(dir, name);
  execFileSync('sox', ['-n', ...args, path, 'synth', '3', 'sine', '440']);
  return readFileSync(path);
}

describe('MP3 frame sync', () => {
  it('random bytes that start with a sync word (or an ID3 tag) are refused as not audio', async () => {
    for (let i = 0; i < 20; i++) {
      const junk = randomBytes(200_000);
      junk[0] = 0xff;
      junk[1] = 0xfb;
      expect(scanMp3(junk)).toBeNull();
      await expect(decodeAudio(junk, 'junk.mp3')).rejects.toMatchObject({ code: 'AUDIO_CORRUPT' });
    }
    const tagged = Buffer.concat([
      Buffer.from('ID3\x04\x00\x00\x00\x00\x00\x10'),
      Buffer.alloc(16),
      randomBytes(100_000),
    ]);
    await expect(decodeAudio(tagged, 'tagged.mp3')).rejects.toThrow(/no run of 4 valid MPEG audio frames/);
  });

  it('real MP3s (MPEG-1, MPEG-2 and MPEG-2.5 rates) pass, and the header walk gives their duration', async () => {
    for (const [rate, name] of [
      ['44100', 'a.mp3'],
      ['22050', 'b.mp3'],
      ['8000', 'c.mp3'],
    ] as const) {
      const mp3 = soxMp3(name, ['-r', rate, '-c', '1']);
      const scan = scanMp3(mp3);
      expect(scan, name).not.toBeNull();
      expect(scan!.durationS).toBeGreaterThan(2.9);
      expect(scan!.durationS).toBeLessThan(3.3);
      const decoded = await decodeAudio(mp3, name);
      expect(decoded.durationS).toBeGreaterThan(2.9);
    }
  });
});
