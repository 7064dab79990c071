import { MPEGDecoder } from 'mpg123-decoder';
import { AudioDecodeError } from './errors.ts';
import type { PcmAudio } from './wav.ts';

/** True when the bytes start like an MP3: an ID3v2 tag or an MPEG audio frame sync. */
export function looksLikeMp3(buf: Uint8Array): boolean {
  if (buf.byteLength >= 3 && buf[0] === 0x49 && buf[1] === 0x44 && buf[2] === 0x33) return true; // "ID3"
  return buf.byteLength >= 2 && buf[0] === 0xff && (buf[1]! & 0xe0) === 0xe0;
}

/** Decodes MP3 with mpg123 compiled to WebAssembly: no ffmpeg on the machine at run time. */
export async function decodeMp3(buf: Uint8Array, file: string): Promise<PcmAudio> {
  if (buf.byteLength === 0) throw new AudioDecodeError('AUDIO_EMPTY', file, 'file is empty');
  if (!looksLikeMp3(buf))
    throw new AudioDecodeError('AUDIO_CORRUPT', file, 'not an MP3 file (no ID3 tag or MPEG frame sync)');
  const decoder = new MPEGDecoder();
  await decoder.ready;
  try {
    const { channelData, samplesDecoded, sampleRate, errors } = decoder.decode(buf);
    if (samplesDecoded === 0 || channelData.length === 0) {
      const why = errors?.[0]?.message ? ` (${errors[0].message})` : '';
      throw new AudioDecodeError('AUDIO_CORRUPT', file, `MP3 holds no decodable audio frames${why}`);
    }
    const samples = new Float32Array(samplesDecoded);
    let peak = 0;
    for (const channel of channelData) {
      for (let i = 0; i < samplesDecoded; i++) samples[i]! += channel[i]! / channelData.length;
    }
    for (const v of samples) peak = Math.max(peak, Math.abs(v));
    // mpg123 skips what it cannot parse; junk after a sync word comes back as errors plus silence
    if (errors?.length && peak === 0) {
      throw new AudioDecodeError(
        'AUDIO_CORRUPT',
        file,
        `MP3 frames are damaged (${errors.length} decoder errors, no audio)`,
      );
    }
    return { samples, sampleRate };
  } finally {
    decoder.free();
  }
}
