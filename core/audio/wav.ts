import { AudioDecodeError } from './errors.ts';

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

/** A WAV file's audio, read from its bytes block by block (see `openWav`). */
export interface WavReader {
  sampleRate: number;
  /** Whole frames in the data chunk (one sample per channel each). */
  frames: number;
  /** Writes frames [from, from + count), downmixed to mono in [-1, 1], to out[0..count). */
  read(from: number, count: number, out: Float32Array): void;
}

/**
 * Parses a RIFF/WAVE (or RF64-less) header: integer PCM 8/16/24/32-bit, IEEE float 32/64,
 * WAVE_FORMAT_EXTENSIBLE wrapping either; any channel count, downmixed to mono.
 * A data chunk that claims more bytes than the file holds (a recording cut off by a power
 * loss, or arecord streaming with a 0x7fffffff size) is read up to the last whole frame;
 * bytes after the size the data chunk declares are not audio. So `frames` is exact before a
 * sample is decoded, and the caller can refuse a file that is too long without allocating.
 */
export function openWav(buf: Uint8Array, file: string): WavReader {
  if (buf.byteLength === 0) throw new AudioDecodeError('AUDIO_EMPTY', file, 'file is empty');
  if (buf.byteLength < 12)
    throw new AudioDecodeError('AUDIO_TRUNCATED', file, `only ${buf.byteLength} bytes, no WAV header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = ascii(buf, 0, 4);
  if (tag !== 'RIFF' && tag !== 'RIFX')
    throw new AudioDecodeError('AUDIO_CORRUPT', file, 'not a WAV file (no RIFF header)');
  if (tag === 'RIFX')
    throw new AudioDecodeError('AUDIO_UNSUPPORTED', file, 'big-endian RIFX WAV is not supported');
  if (ascii(buf, 8, 4) !== 'WAVE') throw new AudioDecodeError('AUDIO_CORRUPT', file, 'RIFF file is not WAVE');

  let offset = 12;
  let fmt: { format: number; channels: number; rate: number; bits: number; blockAlign: number } | null = null;
  let dataStart = -1;
  let dataLength = 0;
  while (offset + 8 <= buf.byteLength) {
    const id = ascii(buf, offset, 4);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > buf.byteLength)
        throw new AudioDecodeError('AUDIO_CORRUPT', file, 'fmt chunk is too short');
      let format = view.getUint16(body, true);
      const channels = view.getUint16(body + 2, true);
      const rate = view.getUint32(body + 4, true);
      const blockAlign = view.getUint16(body + 12, true);
      const bits = view.getUint16(body + 14, true);
      if (format === WAVE_FORMAT_EXTENSIBLE) {
        if (size < 40 || body + 26 > buf.byteLength)
          throw new AudioDecodeError('AUDIO_CORRUPT', file, 'extensible fmt chunk is too short');
        format = view.getUint16(body + 24, true); // first two bytes of the SubFormat GUID
      }
      fmt = { format, channels, rate, bits, blockAlign };
    } else if (id === 'data') {
      dataStart = body;
      dataLength = Math.min(size, buf.byteLength - body);
      break;
    }
    offset = body + size + (size % 2); // chunks are word-aligned
  }
  if (!fmt) throw new AudioDecodeError('AUDIO_CORRUPT', file, 'no fmt chunk before the audio data');
  if (dataStart < 0) throw new AudioDecodeError('AUDIO_TRUNCATED', file, 'no data chunk (file cut off?)');
  const { format, channels, rate, bits } = fmt;
  if (channels < 1 || channels > 32)
    throw new AudioDecodeError('AUDIO_CORRUPT', file, `invalid channel count ${channels}`);
  if (rate < 1000 || rate > 768_000)
    throw new AudioDecodeError('AUDIO_UNSUPPORTED', file, `unsupported sample rate ${rate} Hz`);
  const isFloat = format === WAVE_FORMAT_IEEE_FLOAT;
  if (format !== WAVE_FORMAT_PCM && !isFloat) {
    throw new AudioDecodeError(
      'AUDIO_UNSUPPORTED',
      file,
      `unsupported WAV encoding 0x${format.toString(16)} (only PCM and IEEE float)`,
    );
  }
  const validBits = isFloat ? [32, 64] : [8, 16, 24, 32];
  if (!validBits.includes(bits)) {
    throw new AudioDecodeError(
      'AUDIO_UNSUPPORTED',
      file,
      `unsupported ${isFloat ? 'float' : 'PCM'} bit depth ${bits}`,
    );
  }
  const bytesPerSample = bits / 8;
  const frameBytes = bytesPerSample * channels;
  const frames = Math.floor(dataLength / frameBytes);
  if (frames === 0) throw new AudioDecodeError('AUDIO_EMPTY', file, 'WAV data chunk holds no audio');

  const sample = sampleReader(view, bits, isFloat);
  return {
    sampleRate: rate,
    frames,
    read(from, count, out) {
      for (let i = 0; i < count; i++) {
        let acc = 0;
        const base = dataStart + (from + i) * frameBytes;
        for (let c = 0; c < channels; c++) acc += sample(base + c * bytesPerSample);
        out[i] = acc / channels;
      }
    },
  };
}

function sampleReader(view: DataView, bits: number, isFloat: boolean): (at: number) => number {
  if (isFloat)
    return bits === 32
      ? (at) => sanitize(view.getFloat32(at, true))
      : (at) => sanitize(view.getFloat64(at, true));
  switch (bits) {
    case 8:
      return (at) => (view.getUint8(at) - 128) / 128;
    case 16:
      return (at) => view.getInt16(at, true) / 32768;
    case 24:
      return (at) => {
        const v = view.getUint8(at) | (view.getUint8(at + 1) << 8) | (view.getInt8(at + 2) << 16);
        return v / 8388608;
      };
    default:
      return (at) => view.getInt32(at, true) / 2147483648;
  }
}

function sanitize(x: number): number {
  if (!Number.isFinite(x)) return 0;
  return x > 1 ? 1 : Math.max(x, -1);
}

function ascii(buf: Uint8Array, at: number, len: number): string {
  return String.fromCharCode(...buf.subarray(at, at + len));
}

/** Encodes mono 16-bit PCM WAV (clips saved by the daemon, fixtures, the demo recording). */
export function encodeWav16(samples: Float32Array, sampleRate: number): Buffer {
  const out = Buffer.alloc(44 + samples.length * 2);
  out.write('RIFF', 0, 'ascii');
  out.writeUInt32LE(36 + samples.length * 2, 4);
  out.write('WAVE', 8, 'ascii');
  out.write('fmt ', 12, 'ascii');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(sampleRate, 24);
  out.writeUInt32LE(sampleRate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'ascii');
  out.writeUInt32LE(samples.length * 2, 40);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]!));
    out.writeInt16LE(Math.round(s < 0 ? s * 32768 : s * 32767), 44 + i * 2);
  }
  return out;
}
