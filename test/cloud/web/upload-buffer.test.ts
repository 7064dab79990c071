import { describe, expect, it } from 'vitest';
import { readUpload, type UploadStream } from '../../../cloud/web/upload-buffer.ts';

function stream(chunks: Uint8Array[], truncated = false): UploadStream {
  return {
    truncated,
    async *[Symbol.asyncIterator]() {
      yield* chunks;
    },
  };
}

const chunk = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('readUpload', () => {
  it('copies the chunks into one buffer sized from Content-Length, the bytes in order', async () => {
    const chunks = [chunk(3, 1), chunk(5, 2), chunk(2, 3)];
    const out = await readUpload(stream(chunks), 64, 1000);
    expect([...out]).toEqual([1, 1, 1, 2, 2, 2, 2, 2, 3, 3]);
    // a view of its own buffer (framing bytes left over), not of a chunk: the worker may take it
    expect(out.buffer.byteLength).toBe(64);
    expect(chunks.some((c) => c.buffer === out.buffer)).toBe(false);
  });

  it('without a Content-Length it grows up to web.maxUploadBytes', async () => {
    const chunks = Array.from({ length: 5 }, (_, i) => chunk(700_000, i));
    const out = await readUpload(stream(chunks), undefined, 4_000_000);
    expect(out.byteLength).toBe(3_500_000);
    expect(out[699_999]).toBe(0);
    expect(out[700_000]).toBe(1);
    expect(out[3_499_999]).toBe(4);
    await expect(readUpload(stream(chunks), undefined, 3_000_000)).rejects.toMatchObject({
      code: 'WEB_UPLOAD_TOO_LARGE',
      statusCode: 413,
    });
  });

  it('a file busboy cut at the size limit is a 413 naming web.maxUploadBytes', async () => {
    await expect(readUpload(stream([chunk(10, 1)], true), 100, 10)).rejects.toMatchObject({
      code: 'WEB_UPLOAD_TOO_LARGE',
      message: expect.stringContaining('web.maxUploadBytes = 10'),
    });
  });
});
