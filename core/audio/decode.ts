import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { AudioDecodeError } from './errors.ts';
import { decodeMp3Stream, looksLikeMp3, type Mp3Scan, scanMp3 } from './mp3.ts';
import { StreamResampler } from './resample.ts';
import { openWav, type WavReader } from './wav.ts';

/** Every analysis path works on 16 kHz mono, the rate the sensors capture at. */
export const TARGET_SAMPLE_RATE = 16_000;

export interface DecodedAudio {
  /** May be a view on a slightly larger buffer (the decoded length was estimated up front). */
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
   * resamples to 64x its size. MP3: checked from the frame headers before decoding and
   * again while decoding (headers can lie); WAV: from the data chunk, which is exact.
   */
  maxSeconds?: number;
}

/** WAV frames downmixed and resampled per step: 64 Ki frames, 256 KiB of Float32. */
const WAV_BLOCK_FRAMES = 65_536;
/** MPEG audio never runs faster; a bound while the rate mpg123 reports is changing. */
const MAX_MPEG_RATE = 48_000;

function tooLong(name: string, seconds: number, max: number, stopped = false): AudioDecodeError {
  const amount = stopped
    ? `more than ${max} s of audio (stopped while decoding)`
    : `${Math.round(seconds)} s of audio`;
  return new AudioDecodeError(
    'AUDIO_TOO_LONG',
    name,
    `decodes to ${amount}; at most ${max} s can be analysed`,
  );
}

/**
 * Decodes WAV or MP3 bytes (sniffed, not by extension) to 16 kHz mono, piece by piece:
 * decode, downmix and resample run on blocks of the file, so memory holds the 16 kHz output
 * (38 MB for 600 s) and a few hundred KiB, never the file's audio at its own rate (a 600 s
 * 48 kHz stereo MP3 was 230 MB of Float32 per channel pair before, plus copies). The output
 * is identical, bit for bit, to decoding the whole file and resampling it at once.
 */
export async function decodeAudio(
  buf: Uint8Array,
  name: string,
  options: DecodeOptions = {},
): Promise<DecodedAudio> {
  const isWav = buf.byteLength >= 4 && String.fromCharCode(...buf.subarray(0, 4)) === 'RIFF';
  if (isWav) return decodeWav(openWav(buf, name), name, options.maxSeconds);
  if (looksLikeMp3(buf)) return decodeMp3(buf, name, options.maxSeconds);
  if (buf.byteLength === 0) throw new AudioDecodeError('AUDIO_EMPTY', name, 'file is empty');
  throw new AudioDecodeError('AUDIO_UNSUPPORTED', name, 'not a WAV or MP3 file');
}

function decodeWav(wav: WavReader, name: string, max: number | undefined): DecodedAudio {
  const seconds = wav.frames / wav.sampleRate;
  if (max !== undefined && seconds > max) throw tooLong(name, seconds, max);
  const resampler = new StreamResampler(wav.sampleRate, TARGET_SAMPLE_RATE);
  const out = new SampleAccumulator(resampler.outputLength(wav.frames));
  const block = new Float32Array(Math.min(WAV_BLOCK_FRAMES, wav.frames));
  for (let at = 0; at < wav.frames; at += block.length) {
    const count = Math.min(block.length, wav.frames - at);
    wav.read(at, count, block);
    out.append(resampler.push(block.subarray(0, count)));
  }
  out.append(resampler.end());
  return decoded(out.samples(), wav.sampleRate);
}

async function decodeMp3(buf: Uint8Array, name: string, max: number | undefined): Promise<DecodedAudio> {
  const scan = scanMp3(buf);
  if (scan && max !== undefined && scan.durationS > max) throw tooLong(name, scan.durationS, max);
  const first = await decodeMp3At(buf, name, max, scan, null);
  if (first.rate === first.finalRate) return decoded(first.samples, first.rate);
  // The rate mpg123 reports changed mid-file (concatenated MP3s). The whole-file decode
  // resampled all of it from the rate reported last; do the same in a second pass.
  const second = await decodeMp3At(buf, name, max, scan, first.finalRate);
  return decoded(second.samples, first.finalRate);
}

/** One streaming pass; `fixedRate` resamples from that rate whatever mpg123 reports. */
async function decodeMp3At(
  buf: Uint8Array,
  name: string,
  max: number | undefined,
  scan: Mp3Scan | null,
  fixedRate: number | null,
): Promise<{ samples: Float32Array; rate: number; finalRate: number }> {
  let resampler: StreamResampler | null = null;
  let rateChanged = false;
  let input = 0;
  const estimate = Math.ceil((scan?.durationS ?? 0) * TARGET_SAMPLE_RATE) + TARGET_SAMPLE_RATE;
  const out = new SampleAccumulator(
    max !== undefined
      ? Math.min(estimate, Math.ceil(max * TARGET_SAMPLE_RATE) + TARGET_SAMPLE_RATE)
      : estimate,
  );
  const { sampleRate } = await decodeMp3Stream(
    buf,
    name,
    (mono, reported) => {
      resampler ??= new StreamResampler(fixedRate ?? reported, TARGET_SAMPLE_RATE);
      if (fixedRate === null && reported !== resampler.fromRate) rateChanged = true;
      input += mono.length;
      // the frame scan can be fooled (frames it does not count, a decoder that disagrees):
      // stop as soon as the audio passes the bound, as the whole-file check would have
      const rate = rateChanged ? MAX_MPEG_RATE : resampler.fromRate;
      if (max !== undefined && input / rate > max) throw tooLong(name, input / rate, max, true);
      out.append(resampler.push(mono));
    },
    scan,
  );
  const used = resampler as StreamResampler | null;
  if (used) out.append(used.end());
  return { samples: out.samples(), rate: used?.fromRate ?? sampleRate, finalRate: fixedRate ?? sampleRate };
}

function decoded(samples: Float32Array, originalSampleRate: number): DecodedAudio {
  return {
    samples,
    sampleRate: TARGET_SAMPLE_RATE,
    durationS: samples.length / TARGET_SAMPLE_RATE,
    originalSampleRate,
  };
}

/**
 * The 16 kHz output, allocated once at its expected length (exact for WAV, from the frame
 * headers for MP3) and grown only if the decoder yields more, so the output is not held twice.
 */
class SampleAccumulator {
  private buf: Float32Array;
  private length = 0;

  constructor(capacity: number) {
    this.buf = new Float32Array(Math.max(0, capacity));
  }

  append(samples: Float32Array): void {
    if (this.length + samples.length > this.buf.length) {
      const grown = new Float32Array(
        Math.max(this.length + samples.length, Math.ceil(this.buf.length * 1.25)),
      );
      grown.set(this.buf.subarray(0, this.length));
      this.buf = grown;
    }
    this.buf.set(samples, this.length);
    this.length += samples.length;
  }

  samples(): Float32Array {
    // a view when the estimate was close (the usual case: one frame of gapless trimming),
    // a copy when it was far off so that the slack is not kept alive with the samples
    const slack = this.buf.length - this.length;
    return slack <= TARGET_SAMPLE_RATE ? this.buf.subarray(0, this.length) : this.buf.slice(0, this.length);
  }
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
