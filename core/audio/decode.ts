import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { AudioDecodeError } from './errors.ts';
import { decodeMp3, looksLikeMp3, scanMp3 } from './mp3.ts';
import { resample } from './resample.ts';
import { decodeWav } from './wav.ts';

/** Every analysis path works on 16 kHz mono, the rate the sensors capture at. */
export const TARGET_SAMPLE_RATE = 16_000;

export interface DecodedAudio {
  samples: Float32Array;
  sampleRate: typeof TARGET_SAMPLE_RATE;
  durationS: number;
  /** The file's own sample rate before resampling. */
  originalSampleRate: number;
}

export interface DecodeOptions {
  /**
   * Refuse audio that decodes to more than this (AUDIO_TOO_LONG) before the big
   * allocations: a 19 MB MP3 of tiny MPEG-2.5 frames decodes to hours, a 1 kHz 8-bit WAV
   * resamples to 64x its size. MP3: checked from the frame headers before decoding; WAV:
   * from the data chunk before resampling.
   */
  maxSeconds?: number;
}

function tooLong(name: string, seconds: number, max: number): AudioDecodeError {
  return new AudioDecodeError(
    'AUDIO_TOO_LONG',
    name,
    `decodes to ${Math.round(seconds)} s of audio; at most ${max} s can be analysed`,
  );
}

/** Decodes WAV or MP3 bytes (sniffed, not by extension) to 16 kHz mono. */
export async function decodeAudio(
  buf: Uint8Array,
  name: string,
  options: DecodeOptions = {},
): Promise<DecodedAudio> {
  const isWav = buf.byteLength >= 4 && String.fromCharCode(...buf.subarray(0, 4)) === 'RIFF';
  const max = options.maxSeconds;
  let pcm: { samples: Float32Array; sampleRate: number };
  if (isWav) pcm = decodeWav(buf, name);
  else if (looksLikeMp3(buf)) {
    const scan = max !== undefined ? scanMp3(buf) : null;
    if (scan && max !== undefined && scan.durationS > max) throw tooLong(name, scan.durationS, max);
    pcm = await decodeMp3(buf, name);
  } else if (buf.byteLength === 0) throw new AudioDecodeError('AUDIO_EMPTY', name, 'file is empty');
  else throw new AudioDecodeError('AUDIO_UNSUPPORTED', name, 'not a WAV or MP3 file');
  const seconds = pcm.samples.length / pcm.sampleRate;
  if (max !== undefined && seconds > max) throw tooLong(name, seconds, max);
  const samples = resample(pcm.samples, pcm.sampleRate, TARGET_SAMPLE_RATE);
  return {
    samples,
    sampleRate: TARGET_SAMPLE_RATE,
    durationS: samples.length / TARGET_SAMPLE_RATE,
    originalSampleRate: pcm.sampleRate,
  };
}

export async function decodeAudioFile(path: string, options: DecodeOptions = {}): Promise<DecodedAudio> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    throw new AudioDecodeError('AUDIO_READ_FAILED', path, `cannot read file (${code})`, { cause: err });
  }
  return decodeAudio(buf, path || basename(path), options);
}

/** Converts raw S16_LE mono bytes (what arecord streams) to float samples. */
export function s16leToFloat(buf: Uint8Array): Float32Array {
  const n = Math.floor(buf.byteLength / 2);
  const view = new DataView(buf.buffer, buf.byteOffset, n * 2);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}
