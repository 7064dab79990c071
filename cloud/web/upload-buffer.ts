import { WebError } from './errors.ts';

/** The 413 for a file over web.maxUploadBytes (the route's own check and fastify's agree). */
export function uploadTooLarge(maxUploadBytes: number): WebError {
  return new WebError(
    'WEB_UPLOAD_TOO_LARGE',
    `file is larger than the ${Math.round(maxUploadBytes / 1024 / 1024)} MB limit (web.maxUploadBytes = ${maxUploadBytes})`,
  );
}

/** A file part as @fastify/multipart hands it over: its chunks, and whether busboy cut it at the size limit. */
export interface UploadStream extends AsyncIterable<Uint8Array> {
  readonly truncated: boolean;
}

/** Starting size when the request has no Content-Length (chunked); grown by doubling up to the limit. */
const UNKNOWN_SIZE_START = 1024 * 1024;

/**
 * Reads an uploaded file into one buffer that belongs to this upload alone, so the analysis
 * worker can take it without a copy. Each chunk is copied in as it arrives: @fastify/multipart's
 * toBuffer() keeps every chunk and then joins 19 MB in one Buffer.concat, which held the
 * event loop (and a sensor's PUBACK) for 280 ms on a loaded 2-core VM (issue 11). The buffer
 * is sized from the request's Content-Length, which bounds the file (the multipart framing
 * adds a few hundred bytes), capped at web.maxUploadBytes; its pages are only touched as
 * bytes arrive.
 */
export async function readUpload(
  file: UploadStream,
  contentLength: number | undefined,
  maxUploadBytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const known = contentLength !== undefined && Number.isFinite(contentLength) && contentLength > 0;
  let buf = new Uint8Array(
    Math.min(maxUploadBytes, known ? contentLength : Math.min(UNKNOWN_SIZE_START, maxUploadBytes)),
  );
  let length = 0;
  for await (const chunk of file) {
    if (length + chunk.byteLength > buf.byteLength) {
      if (buf.byteLength >= maxUploadBytes || known) throw uploadTooLarge(maxUploadBytes);
      const grown = new Uint8Array(
        Math.min(maxUploadBytes, Math.max(buf.byteLength * 2, length + chunk.byteLength)),
      );
      grown.set(buf.subarray(0, length));
      buf = grown;
      if (length + chunk.byteLength > buf.byteLength) throw uploadTooLarge(maxUploadBytes);
    }
    buf.set(chunk, length);
    length += chunk.byteLength;
  }
  if (file.truncated) throw uploadTooLarge(maxUploadBytes);
  return buf.subarray(0, length);
}
