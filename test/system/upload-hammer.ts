// Uploaders for the system suite's upload-load scenario, run as their own process (node
// --import tsx) so that sending twenty 19 MB bodies does not share an event loop or a core's
// timeslice with the sensor whose PUBACK latency the scenario measures. Loops POSTing one WAV
// to /api/analyze from `uploaders` concurrent clients until the deadline or `maxPerUploader`
// requests each, without honouring Retry-After (a client hammering the endpoint), and prints
// one JSON line: UploadHammerResult.
import { readFile } from 'node:fs/promises';

export interface UploadHammerOptions {
  web: string;
  cookie: string;
  csrfToken: string;
  file: string;
  uploaders: number;
  /** Date.now() after which no uploader starts another request. */
  deadlineMs: number;
  maxPerUploader: number;
}

export interface UploadHammerResult {
  /** status code (or "error") -> count */
  statuses: Record<string, number>;
  /** 429s without a Retry-After header */
  missingRetryAfter: number;
  /** the first few network errors and unexpected bodies */
  errors: string[];
  /** milliseconds from request to the last byte of the answer, per 200 */
  acceptedMs: number[];
  bytes: number;
}

async function hammer(o: UploadHammerOptions): Promise<UploadHammerResult> {
  const wav = await readFile(o.file);
  const blob = new Blob([wav], { type: 'audio/wav' });
  const out: UploadHammerResult = {
    statuses: {},
    missingRetryAfter: 0,
    errors: [],
    acceptedMs: [],
    bytes: wav.byteLength,
  };
  const count = (k: string) => {
    out.statuses[k] = (out.statuses[k] ?? 0) + 1;
  };
  const uploader = async (n: number) => {
    for (let i = 0; i < o.maxPerUploader && Date.now() < o.deadlineMs; i++) {
      const form = new FormData();
      form.set('file', blob, `load-${n}-${i}.wav`);
      const t0 = performance.now();
      try {
        const res = await fetch(`${o.web}/api/analyze`, {
          method: 'POST',
          headers: { cookie: o.cookie, 'x-csrf-token': o.csrfToken },
          body: form,
          signal: AbortSignal.timeout(120_000),
        });
        const text = await res.text();
        count(String(res.status));
        if (res.status === 200) out.acceptedMs.push(performance.now() - t0);
        else if (res.status === 429 && !res.headers.get('retry-after')) out.missingRetryAfter++;
        if (res.status !== 200 && res.status !== 429 && out.errors.length < 10)
          out.errors.push(`${res.status}: ${text.slice(0, 300)}`);
      } catch (err) {
        count('error');
        const e = err as Error & { cause?: Error };
        if (out.errors.length < 10) out.errors.push(`${e.message}${e.cause ? `: ${e.cause.message}` : ''}`);
      }
    }
  };
  await Promise.all(Array.from({ length: o.uploaders }, (_, n) => uploader(n)));
  return out;
}

const options = JSON.parse(process.env.UPLOAD_HAMMER ?? '') as UploadHammerOptions;
process.stdout.write(`${JSON.stringify(await hammer(options))}\n`);
