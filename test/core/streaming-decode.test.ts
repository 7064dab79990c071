import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MPEGDecoder } from 'mpg123-decoder';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeAudio } from '../../core/audio/decode.ts';
import { resample, StreamResampler } from '../../core/audio/resample.ts';
import { openWav } from '../../core/audio/wav.ts';
import { tempDir } from '../support/audio-fixtures.ts';

// The decoder now works piece by piece (decode, downmix, resample per block) so that a
// 10-minute upload never exists at its source rate in memory. The model's features depend on
// every sample, so the output must be what the whole-buffer decode gave, bit for bit. The
// reference below is that decode as it was (core/audio/*.ts before the change): one
// mpg123 call on the whole file, one downmix, one `resample` over the whole signal.

/** The whole-buffer resampler, verbatim. */
function wholeResample(input: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (fromRate === toRate) return input;
  const ratio = toRate / fromRate;
  const outLength = Math.floor(input.length * ratio);
  const out = new Float32Array(outLength);
  const cutoff = Math.min(1, ratio) * 0.95;
  const halfTaps = 16;
  const support = Math.ceil(halfTaps / Math.min(1, ratio));
  const beta = 8;
  const i0Beta = besselI0(beta);
  for (let n = 0; n < outLength; n++) {
    const center = n / ratio;
    const first = Math.max(0, Math.ceil(center - support));
    const last = Math.min(input.length - 1, Math.floor(center + support));
    let acc = 0;
    let norm = 0;
    for (let k = first; k <= last; k++) {
      const x = k - center;
      const w = kaiser(x / support, beta, i0Beta);
      const s = sinc(x * cutoff) * cutoff * w;
      acc += input[k]! * s;
      norm += s;
    }
    out[n] = norm > 0 ? acc / norm : 0;
  }
  return out;
}
function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}
function kaiser(t: number, beta: number, i0Beta: number): number {
  if (t <= -1 || t >= 1) return 0;
  return besselI0(beta * Math.sqrt(1 - t * t)) / i0Beta;
}
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 30; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

/** The whole-buffer MP3 decode and downmix, verbatim. */
async function wholeMp3(buf: Uint8Array): Promise<{ samples: Float32Array; sampleRate: number }> {
  const decoder = new MPEGDecoder();
  await decoder.ready;
  try {
    const { channelData, samplesDecoded, sampleRate } = decoder.decode(buf);
    const samples = new Float32Array(samplesDecoded);
    for (const channel of channelData) {
      for (let i = 0; i < samplesDecoded; i++) samples[i]! += channel[i]! / channelData.length;
    }
    return { samples, sampleRate };
  } finally {
    decoder.free();
  }
}

async function wholeDecode(buf: Uint8Array): Promise<{ samples: Float32Array; originalSampleRate: number }> {
  let pcm: { samples: Float32Array; sampleRate: number };
  if (String.fromCharCode(...buf.subarray(0, 4)) === 'RIFF') {
    // header parsing did not change; the downmix of all frames in one read is the old loop
    const wav = openWav(buf, 'ref.wav');
    const samples = new Float32Array(wav.frames);
    wav.read(0, wav.frames, samples);
    pcm = { samples, sampleRate: wav.sampleRate };
  } else pcm = await wholeMp3(buf);
  return { samples: wholeResample(pcm.samples, pcm.sampleRate, 16_000), originalSampleRate: pcm.sampleRate };
}

function bytesOf(x: Float32Array): Buffer {
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
}

const tmp = tempDir('sw-streamdecode-');
afterAll(() => tmp.cleanup());
const sox = (...args: string[]) => execFileSync('sox', args);

// sox arguments after `-n`; lengths in samples are odd on purpose (no block lines up)
const FIXTURES: [name: string, make: (path: string) => void][] = [
  [
    '44.1 kHz stereo 16-bit.wav',
    (p) =>
      sox(
        '-n',
        '-r',
        '44100',
        '-c',
        '2',
        '-b',
        '16',
        p,
        'synth',
        '132301s',
        'sine',
        '440',
        'sine',
        '1000:6000',
        'vol',
        '0.7',
      ),
  ],
  [
    '48 kHz mono 24-bit.wav',
    (p) => sox('-n', '-r', '48000', '-c', '1', '-b', '24', p, 'synth', '96001s', 'pinknoise', 'vol', '0.5'),
  ],
  [
    '8 kHz 8-bit.wav',
    (p) => sox('-n', '-r', '8000', '-c', '1', '-b', '8', p, 'synth', '16003s', 'sine', '300:3900'),
  ],
  [
    '11.025 kHz 3-channel float.wav',
    (p) =>
      sox(
        '-n',
        '-r',
        '11025',
        '-c',
        '3',
        '-e',
        'floating-point',
        '-b',
        '32',
        p,
        'synth',
        '22051s',
        'sine',
        '500',
        'whitenoise',
        'sine',
        '2000',
        'vol',
        '0.5',
      ),
  ],
  [
    '16 kHz (no resampling).wav',
    (p) =>
      sox('-n', '-r', '16000', '-c', '1', '-b', '16', p, 'synth', '70001s', 'sine', '1200', 'vol', '0.5'),
  ],
  [
    '48 kHz shorter than the kernel.wav',
    (p) => sox('-n', '-r', '48000', '-c', '1', '-b', '16', p, 'synth', '37s', 'sine', '1000'),
  ],
  [
    '22.05 kHz mono.mp3',
    (p) => sox('-n', '-r', '22050', '-c', '1', p, 'synth', '2.5', 'sine', '600:4000', 'vol', '0.6'),
  ],
  [
    '44.1 kHz stereo.mp3',
    (p) => sox('-n', '-r', '44100', '-c', '2', p, 'synth', '2.3', 'sine', '440', 'pinknoise', 'vol', '0.6'),
  ],
  [
    '48 kHz stereo VBR.mp3',
    (p) =>
      sox(
        '-n',
        '-r',
        '48000',
        '-c',
        '2',
        '-C',
        '-4.2',
        p,
        'synth',
        '3.1',
        'whitenoise',
        'sine',
        '900:1400',
        'vol',
        '0.4',
      ),
  ],
  [
    '8 kHz MPEG-2.5.mp3',
    (p) => sox('-n', '-r', '8000', '-c', '1', '-C', '8', p, 'synth', '3.3', 'sine', '300'),
  ],
];

describe('streaming decode equals the whole-buffer decode, bit for bit', () => {
  for (const [name, make] of FIXTURES) {
    it(name, async () => {
      const path = join(tmp.dir, name);
      make(path);
      const bytes = readFileSync(path);
      const ref = await wholeDecode(bytes);
      const got = await decodeAudio(bytes, name);
      expect(ref.samples.length).toBeGreaterThan(0);
      expect(got.samples.length).toBe(ref.samples.length);
      expect(got.originalSampleRate).toBe(ref.originalSampleRate);
      expect(bytesOf(got.samples).equals(bytesOf(ref.samples))).toBe(true);
    });
  }

  // mpg123 reports one rate per 64 KiB piece, the one it decoded last; the whole-file decode
  // took the file's last rate for all of it. 5 s of 44.1 kHz stereo fill more than one piece,
  // so the change to 22.05 kHz is seen while streaming and a second pass resamples from it.
  async function twoRates(name: string): Promise<Buffer> {
    const a = join(tmp.dir, `${name}-44.mp3`);
    const b = join(tmp.dir, `${name}-22.mp3`);
    sox('-n', '-r', '44100', '-c', '2', a, 'synth', '5', 'sine', '900', 'vol', '0.5');
    sox('-n', '-r', '22050', '-c', '1', b, 'synth', '3', 'sine', '500', 'vol', '0.5');
    return Buffer.concat([readFileSync(a), readFileSync(b)]);
  }

  it('MP3s of two rates back to back resample from the rate reported last, as before', async () => {
    const bytes = await twoRates('mixed');
    const ref = await wholeDecode(bytes);
    const got = await decodeAudio(bytes, 'mixed.mp3');
    expect(got.originalSampleRate).toBe(22_050);
    expect(got.originalSampleRate).toBe(ref.originalSampleRate);
    expect(bytesOf(got.samples).equals(bytesOf(ref.samples))).toBe(true);
  });

  it('an MP3 whose frame headers understate what it decodes to is stopped while decoding', async () => {
    // the headers say 8 s (5 s + 3 s); read at the last rate, as it always was, it is 13 s
    const bytes = await twoRates('understated');
    await expect(decodeAudio(bytes, 'understated.mp3', { maxSeconds: 7 })).rejects.toThrow(
      /decodes to 8 s of audio; at most 7 s/,
    );
    await expect(decodeAudio(bytes, 'understated.mp3', { maxSeconds: 10 })).rejects.toMatchObject({
      code: 'AUDIO_TOO_LONG',
      message: expect.stringMatching(/more than 10 s of audio \(stopped while decoding\); at most 10 s/),
    });
  });
});

describe('StreamResampler', () => {
  function noise(n: number, seed: number): Float32Array {
    let s = seed;
    return Float32Array.from({ length: n }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s / 1073741824 - 1;
    });
  }

  for (const [from, to] of [
    [48_000, 16_000],
    [44_100, 16_000],
    [22_050, 16_000],
    [8_000, 16_000],
    [1_000, 16_000],
    [16_000, 16_000],
  ] as const) {
    it(`${from} -> ${to} Hz in blocks of 1, 7, 4096 and random sizes matches resample`, () => {
      const input = noise(Math.round(from / 5) + 1, from); // 0.2 s, odd
      const whole = resample(input, from, to);
      expect(bytesOf(whole).equals(bytesOf(wholeResample(input, from, to)))).toBe(true);
      for (const sizes of [[1], [7], [4096], [3, 500, 1, 2000, 77, 9000]]) {
        const r = new StreamResampler(from, to);
        const parts: number[] = [];
        for (let at = 0, i = 0; at < input.length; i++) {
          const n = sizes[i % sizes.length]!;
          parts.push(...r.push(input.subarray(at, at + n)));
          at += n;
        }
        parts.push(...r.end());
        expect(r.outputLength(input.length)).toBe(whole.length);
        expect(bytesOf(Float32Array.from(parts)).equals(bytesOf(whole))).toBe(true);
      }
    });
  }
});
