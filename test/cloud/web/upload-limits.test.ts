import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type ClientRequest, request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../support/eventually.ts';
import { login, startWeb, tempDir, type WebHarness } from './support.ts';

describe('upload limits', () => {
  let h: WebHarness;
  const fixtures = tempDir('sw-upload-');
  beforeAll(async () => {
    h = await startWeb({ config: { maxAnalysisSeconds: 60 } });
  });
  afterAll(async () => {
    await h?.close();
    fixtures.remove();
  });

  it('audio that decodes to more than web.maxAnalysisSeconds is refused with 413 and says why', async () => {
    const wav = join(fixtures.dir, 'long.wav');
    // 70 s at 1 kHz 8-bit: 70 KB on the wire, 64x that once resampled
    execFileSync('sox', ['-n', '-r', '1000', '-c', '1', '-b', '8', wav, 'synth', '70', 'sine', '300']);
    const s = await login(h.web.url);
    const form = new FormData();
    form.append('file', new Blob([readFileSync(wav)], { type: 'audio/wav' }), 'long.wav');
    const res = await fetch(`${h.web.url}/api/analyze`, {
      method: 'POST',
      headers: { cookie: s.cookie, 'x-csrf-token': s.csrf },
      body: form,
    });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('AUDIO_TOO_LONG');
    expect(body.error.message).toMatch(/long\.wav: decodes to 70 s of audio; at most 60 s can be analysed/);
  });

  it('uploads still sending their body hold the analysis slots: the next is 429 before its body is read; an aborted one gives its slot back', async () => {
    const s = await login(h.web.url);
    const boundary = 'sw-slow-upload';
    const url = new URL(`${h.web.url}/api/analyze`);
    /** A multipart upload that sends its first bytes and then waits (a slow phone, a stalled client). */
    const stalled = (): ClientRequest => {
      const req = request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          cookie: s.cookie,
          'x-csrf-token': s.csrf,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': String(10_000_000),
        },
      });
      req.on('error', () => {});
      req.write(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF`,
      );
      req.flushHeaders();
      return req;
    };
    const slow = [stalled(), stalled(), stalled(), stalled()];
    try {
      await eventually(() => h.web.analysisStats().busy === 4, 5000, 'four slots held by bodies being read');
      const form = new FormData();
      form.append('file', new Blob([Buffer.alloc(1000)], { type: 'audio/wav' }), 'fifth.wav');
      const res = await fetch(url, {
        method: 'POST',
        headers: { cookie: s.cookie, 'x-csrf-token': s.csrf },
        body: form,
      });
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toBe('30');
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('WEB_RATE_LIMITED');
      expect(h.web.analysisStats()).toMatchObject({ busy: 4, capacity: 4, refused: 1 });
    } finally {
      for (const r of slow) r.destroy();
    }
    await eventually(() => h.web.analysisStats().busy === 0, 5000, 'slots released by the aborted uploads');
  });

  it('random bytes named .mp3 are 422, not minutes of noise', async () => {
    const s = await login(h.web.url);
    const junk = Buffer.alloc(300_000);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + (i >> 3) * 104_729) & 0xff;
    junk[0] = 0xff;
    junk[1] = 0xfb;
    const form = new FormData();
    form.append('file', new Blob([junk], { type: 'audio/mpeg' }), 'noise.mp3');
    const res = await fetch(`${h.web.url}/api/analyze`, {
      method: 'POST',
      headers: { cookie: s.cookie, 'x-csrf-token': s.csrf },
      body: form,
    });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('AUDIO_CORRUPT');
  });
});
