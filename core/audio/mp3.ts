import { MPEGDecoder } from 'mpg123-decoder';
import { AudioDecodeError } from './errors.ts';

/** True when the bytes start like an MP3: an ID3v2 tag or an MPEG audio frame sync. */
export function looksLikeMp3(buf: Uint8Array): boolean {
  if (buf.byteLength >= 3 && buf[0] === 0x49 && buf[1] === 0x44 && buf[2] === 0x33) return true; // "ID3"
  return buf.byteLength >= 2 && buf[0] === 0xff && (buf[1]! & 0xe0) === 0xe0;
}

// kbit/s by [version is MPEG-1][layer 1..3][index 1..14] (ISO 11172-3 2.4.2.3, ISO 13818-3)
const BITRATES = {
  v1: [
    [32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    [32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    [32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  ],
  v2: [
    [32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  ],
};
const SAMPLE_RATES: Record<number, number[]> = {
  3: [44100, 48000, 32000],
  2: [22050, 24000, 16000],
  0: [11025, 12000, 8000],
};

interface FrameHeader {
  length: number;
  samples: number;
  sampleRate: number;
}

/** One MPEG audio frame header at `i`, or null if the 4 bytes are not a valid one. */
function frameAt(buf: Uint8Array, i: number): FrameHeader | null {
  if (i + 4 > buf.byteLength || buf[i] !== 0xff || (buf[i + 1]! & 0xe0) !== 0xe0) return null;
  const version = (buf[i + 1]! >> 3) & 3; // 0: 2.5, 2: 2, 3: 1 (1 is reserved)
  const layer = 4 - ((buf[i + 1]! >> 1) & 3); // 1..3 (4 = reserved)
  const bitrateIndex = buf[i + 2]! >> 4;
  const rateIndex = (buf[i + 2]! >> 2) & 3;
  const padding = (buf[i + 2]! >> 1) & 1;
  if (version === 1 || layer === 4 || bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3)
    return null;
  const sampleRate = SAMPLE_RATES[version]![rateIndex]!;
  const kbps = (version === 3 ? BITRATES.v1 : BITRATES.v2)[layer - 1]![bitrateIndex - 1]!;
  const bitrate = kbps * 1000;
  let length: number;
  let samples: number;
  if (layer === 1) {
    length = (Math.floor((12 * bitrate) / sampleRate) + padding) * 4;
    samples = 384;
  } else if (layer === 2 || version === 3) {
    length = Math.floor((144 * bitrate) / sampleRate) + padding;
    samples = 1152;
  } else {
    length = Math.floor((72 * bitrate) / sampleRate) + padding;
    samples = 576;
  }
  return length >= 4 ? { length, samples, sampleRate } : null;
}

/** Where the audio starts: after an ID3v2 tag (syncsafe size, optional footer), if any. */
function audioStart(buf: Uint8Array): number {
  if (buf.byteLength < 10 || buf[0] !== 0x49 || buf[1] !== 0x44 || buf[2] !== 0x33) return 0;
  const size =
    ((buf[6]! & 0x7f) << 21) | ((buf[7]! & 0x7f) << 14) | ((buf[8]! & 0x7f) << 7) | (buf[9]! & 0x7f);
  return 10 + size + (buf[5]! & 0x10 ? 10 : 0);
}

/** Consecutive frames needed to believe a file is MPEG audio (random bytes chain 4 ~never). */
const MIN_FRAME_RUN = 4;

export interface Mp3Scan {
  frames: number;
  /** Decoded duration, from the frame headers alone (no decoding). */
  durationS: number;
}

/**
 * Walks the frame headers: finds the first run of MIN_FRAME_RUN frames that chain (each
 * header where the previous frame's length says) in the first 64 KiB of audio, then counts
 * frames to the end, resyncing over junk. Returns null when no such run exists: random
 * bytes named .mp3 sometimes start with a sync word and mpg123 happily decodes 70 s of noise.
 */
export function scanMp3(buf: Uint8Array): Mp3Scan | null {
  const start = audioStart(buf);
  const searchEnd = Math.min(buf.byteLength, start + 65_536);
  let first = -1;
  for (let i = start; i < searchEnd && first < 0; i++) {
    let at = i;
    let run = 0;
    while (run < MIN_FRAME_RUN) {
      const h = frameAt(buf, at);
      if (!h) break;
      run++;
      at += h.length;
      if (at === buf.byteLength) break; // a short file ending exactly on a frame
    }
    if (run >= MIN_FRAME_RUN || (run > 0 && at === buf.byteLength)) first = i;
  }
  if (first < 0) return null;
  let frames = 0;
  let seconds = 0;
  for (let i = first; i < buf.byteLength; ) {
    const h = frameAt(buf, i);
    if (!h) {
      i++;
      continue;
    }
    frames++;
    seconds += h.samples / h.sampleRate;
    i += h.length;
  }
  return { frames, durationS: seconds };
}

/**
 * mpg123-decoder's `decode` feeds its input to mpg123 in pieces this big (its WASM input
 * buffer). Calling it once per piece of this size makes exactly the same feed and read calls
 * as one call on the whole file, so the decoded samples are the same, without the whole
 * file's decoded audio (2 channels of Float32 at the source rate) existing at once.
 */
const FEED_BYTES = 65_536;

export interface Mp3Decoded {
  /** The rate mpg123 reported last, which the whole-file decode reported for all of it. */
  sampleRate: number;
  samples: number;
}

/**
 * Decodes MP3 with mpg123 compiled to WebAssembly (no ffmpeg on the machine at run time),
 * one 64 KiB piece at a time: `onAudio` gets each piece's audio downmixed to mono with the
 * rate mpg123 reports for it, and may throw to stop decoding (a duration bound).
 * `scan` is `scanMp3(buf)` if the caller already has it.
 */
export async function decodeMp3Stream(
  buf: Uint8Array,
  file: string,
  onAudio: (mono: Float32Array, sampleRate: number) => void,
  scan: Mp3Scan | null = scanMp3(buf),
): Promise<Mp3Decoded> {
  if (buf.byteLength === 0) throw new AudioDecodeError('AUDIO_EMPTY', file, 'file is empty');
  if (!looksLikeMp3(buf))
    throw new AudioDecodeError('AUDIO_CORRUPT', file, 'not an MP3 file (no ID3 tag or MPEG frame sync)');
  if (!scan)
    throw new AudioDecodeError(
      'AUDIO_CORRUPT',
      file,
      `not an MP3 file: no run of ${MIN_FRAME_RUN} valid MPEG audio frames in a row`,
    );
  const decoder = new MPEGDecoder();
  await decoder.ready;
  try {
    let samples = 0;
    let sampleRate = 0;
    let peak = 0;
    let errors = 0;
    let firstError: string | undefined;
    for (let at = 0; at < buf.byteLength; at += FEED_BYTES) {
      const piece = decoder.decode(buf.subarray(at, at + FEED_BYTES));
      sampleRate = piece.sampleRate;
      errors += piece.errors?.length ?? 0;
      firstError ??= piece.errors?.[0]?.message;
      const { channelData, samplesDecoded } = piece;
      if (samplesDecoded === 0 || channelData.length === 0) continue;
      // the whole-file downmix, operation for operation (Float32 accumulation in channel order)
      const mono = new Float32Array(samplesDecoded);
      for (const channel of channelData) {
        for (let i = 0; i < samplesDecoded; i++) mono[i]! += channel[i]! / channelData.length;
      }
      for (const v of mono) peak = Math.max(peak, Math.abs(v));
      samples += samplesDecoded;
      onAudio(mono, piece.sampleRate);
    }
    if (samples === 0) {
      const why = firstError ? ` (${firstError})` : '';
      throw new AudioDecodeError('AUDIO_CORRUPT', file, `MP3 holds no decodable audio frames${why}`);
    }
    // mpg123 skips what it cannot parse; junk after a sync word comes back as errors plus silence
    if (errors > 0 && peak === 0) {
      throw new AudioDecodeError(
        'AUDIO_CORRUPT',
        file,
        `MP3 frames are damaged (${errors} decoder errors, no audio)`,
      );
    }
    return { sampleRate, samples };
  } finally {
    decoder.free();
  }
}
