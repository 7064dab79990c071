import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeAudio, decodeAudioFile } from '../../core/audio/decode.ts';
import { AudioDecodeError } from '../../core/audio/errors.ts';
import { encodeWav16 } from '../../core/audio/wav.ts';
import { sox, tempDir } from '../support/audio-fixtures.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Dominant frequency by brute-force DFT over a range (Hz). */
function dominantHz(x: Float32Array, rate: number, from: number, to: number, step = 5): number {
  let best = 0;
  let bestHz = 0;
  const n = Math.min(x.length, rate);
  for (let f = from; f <= to; f += step) {
    let re = 0;
    let im = 0;
    for (let i = 0; i < n; i++) {
      re += x[i]! * Math.cos((2 * Math.PI * f * i) / rate);
      im += x[i]! * Math.sin((2 * Math.PI * f * i) / rate);
    }
    const p = re * re + im * im;
    if (p > best) {
      best = p;
      bestHz = f;
    }
  }
  return bestHz;
}

describe('WAV decoding', () => {
  const formats: [string, string[]][] = [
    ['16-bit 16 kHz mono', ['-r', '16000', '-b', '16', '-c', '1']],
    ['8-bit unsigned 8 kHz', ['-r', '8000', '-b', '8', '-e', 'unsigned-integer', '-c', '1']],
    ['24-bit 48 kHz stereo', ['-r', '48000', '-b', '24', '-c', '2']],
    ['32-bit int 44.1 kHz', ['-r', '44100', '-b', '32', '-e', 'signed-integer', '-c', '1']],
    ['32-bit float 22.05 kHz stereo', ['-r', '22050', '-b', '32', '-e', 'floating-point', '-c', '2']],
    ['64-bit float 11.025 kHz', ['-r', '11025', '-b', '64', '-e', 'floating-point', '-c', '1']],
  ];
  for (const [name, args] of formats) {
    it(`decodes ${name} to 16 kHz mono, keeping the tone's pitch and length`, async () => {
      const path = join(tmp.dir, `${name.replace(/\W+/g, '_')}.wav`);
      await sox('-n', ...args, path, 'synth', '1.5', 'sine', '1000', 'vol', '0.5');
      const audio = await decodeAudioFile(path);
      expect(audio.sampleRate).toBe(16000);
      expect(audio.durationS).toBeCloseTo(1.5, 2);
      expect(dominantHz(audio.samples, 16000, 500, 2000)).toBe(1000);
      const peak = audio.samples.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(peak).toBeGreaterThan(0.4);
      expect(peak).toBeLessThan(0.6);
    });
  }

  it('downmixes channels by averaging (opposite-phase stereo cancels)', async () => {
    const path = join(tmp.dir, 'antiphase.wav');
    await sox(
      '-n',
      '-r',
      '16000',
      '-b',
      '16',
      '-c',
      '2',
      path,
      'synth',
      '1',
      'sine',
      '440',
      'sine',
      '440',
      'remix',
      '1',
      '2v-1',
    );
    const audio = await decodeAudioFile(path);
    expect(audio.samples.reduce((m, v) => Math.max(m, Math.abs(v)), 0)).toBeLessThan(1e-3);
  });

  it('reads a WAV whose data chunk claims more than the file holds (cut-off recording)', async () => {
    const wav = encodeWav16(new Float32Array(16000).fill(0.25), 16000);
    const cut = wav.subarray(0, 44 + 10_001); // odd byte count: half a sample at the end
    const audio = await decodeAudio(cut, 'cut.wav');
    expect(audio.samples.length).toBe(5000);
    expect(audio.samples[100]).toBeCloseTo(0.25, 3);
  });

  it('round-trips encodeWav16', async () => {
    const x = Float32Array.from({ length: 1600 }, (_, i) => Math.sin(i / 10) * 0.5);
    const audio = await decodeAudio(encodeWav16(x, 16000), 'rt.wav');
    expect(audio.samples.length).toBe(1600);
    for (let i = 0; i < 1600; i += 97) expect(audio.samples[i]).toBeCloseTo(x[i]!, 3);
  });
});

describe('MP3 decoding', () => {
  it('decodes an MP3 (wasm mpg123) to 16 kHz mono', async () => {
    const path = join(tmp.dir, 'tone.mp3');
    await sox('-n', '-r', '44100', '-c', '2', path, 'synth', '2', 'sine', '800', 'vol', '0.5');
    const audio = await decodeAudioFile(path);
    expect(audio.originalSampleRate).toBe(44100);
    expect(audio.durationS).toBeGreaterThan(1.9);
    expect(audio.durationS).toBeLessThan(2.2);
    expect(dominantHz(audio.samples.subarray(8000), 16000, 400, 1600)).toBe(800);
  });
});

describe('bad audio files', () => {
  async function codeOf(bytes: Uint8Array, name: string): Promise<{ code: string; message: string }> {
    const path = join(tmp.dir, name);
    writeFileSync(path, bytes);
    try {
      await decodeAudioFile(path);
    } catch (err) {
      expect(err).toBeInstanceOf(AudioDecodeError);
      return { code: (err as AudioDecodeError).code, message: (err as Error).message };
    }
    throw new Error('decoded a bad file');
  }

  it('empty file', async () => {
    const r = await codeOf(new Uint8Array(0), 'empty.wav');
    expect(r.code).toBe('AUDIO_EMPTY');
    expect(r.message).toContain('empty.wav');
  });

  it('truncated header', async () => {
    expect((await codeOf(Buffer.from('RIFF\x00\x00'), 'short.wav')).code).toBe('AUDIO_TRUNCATED');
  });

  it('header without a data chunk', async () => {
    const wav = encodeWav16(new Float32Array(100), 16000).subarray(0, 36);
    const r = await codeOf(wav, 'nodata.wav');
    expect(r.code).toBe('AUDIO_TRUNCATED');
    expect(r.message).toMatch(/no data chunk/);
  });

  it('not audio at all', async () => {
    const r = await codeOf(Buffer.from('this is a text file, not audio'), 'notes.wav');
    expect(r.code).toBe('AUDIO_UNSUPPORTED');
    expect(r.message).toContain('notes.wav');
  });

  it('RIFF but not WAVE', async () => {
    expect((await codeOf(Buffer.from('RIFF\x04\x00\x00\x00AVI LIST'), 'video.wav')).code).toBe(
      'AUDIO_CORRUPT',
    );
  });

  it('compressed WAV encodings are refused by name', async () => {
    const wav = Buffer.from(encodeWav16(new Float32Array(100), 16000));
    wav.writeUInt16LE(0x11, 20); // IMA ADPCM
    const r = await codeOf(wav, 'adpcm.wav');
    expect(r.code).toBe('AUDIO_UNSUPPORTED');
    expect(r.message).toMatch(/encoding 0x11/);
  });

  it('an MP3 with garbage after the sync word', async () => {
    const junk = Buffer.alloc(4000, 0x55);
    junk[0] = 0xff;
    junk[1] = 0xfb;
    expect((await codeOf(junk, 'broken.mp3')).code).toBe('AUDIO_CORRUPT');
  });

  it('a missing file names the path', async () => {
    await expect(decodeAudioFile(join(tmp.dir, 'nope.wav'))).rejects.toThrow(
      /nope\.wav: cannot read file \(ENOENT\)/,
    );
  });
});
