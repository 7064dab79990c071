import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { StoredEvent } from '../../store/types.ts';
import { requireAdmin, sessionOf, type WebContext } from '../context.ts';
import { WebError } from '../errors.ts';
import { readUpload } from '../upload-buffer.ts';

/** A file name that is safe to keep in audioSource and show: no path, no control characters. */
export function cleanFileName(name: string): string {
  const base = [...basename(name.replace(/\\/g, '/'))]
    .filter((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) !== 0x7f)
    .join('')
    .trim();
  return (base || 'upload').slice(0, 200);
}

export function analyseRoutes(app: FastifyInstance, ctx: WebContext): void {
  const { config } = ctx.deps;

  app.post(
    '/api/analyze',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            store: { type: 'boolean', default: false },
            threshold: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
          },
        },
      },
    },
    async (request, reply) => {
      const s = sessionOf(request);
      const { store, threshold } = request.query as { store: boolean; threshold?: number };
      if (store) requireAdmin(request, 'storing an analysis as an event');
      if (!request.isMultipart()) {
        throw new WebError('WEB_UPLOAD_MISSING', 'send the audio as multipart/form-data with a "file" field');
      }
      // A slot is taken before the body is read and held until the analysis ends: at most a
      // few bodies (each <= web.maxUploadBytes) in memory, whatever the number of uploaders
      // (twenty 19 MB uploads buffered at once stalled the bridge and a sensor's PUBACK).
      const release = ctx.analysis.reserve();
      if (!release) {
        reply.header('retry-after', '30');
        throw new WebError('WEB_RATE_LIMITED', 'the server is analysing other files; try again in 30 s', {
          retryAfterS: 30,
        });
      }
      let name: string;
      let bytes: number;
      let analysed: Awaited<ReturnType<typeof ctx.analysis.analyse>>;
      try {
        const part = await request.file({ limits: { fileSize: config.maxUploadBytes, files: 1 } });
        if (!part)
          throw new WebError('WEB_UPLOAD_MISSING', 'no file in the upload; send it in a "file" field');
        name = cleanFileName(part.filename);
        const length = Number(request.headers['content-length']);
        const buf = await readUpload(
          part.file,
          Number.isNaN(length) ? undefined : length,
          config.maxUploadBytes,
        );
        bytes = buf.byteLength;
        request.log.debug({ file: name, bytes }, 'web: analysis started');
        analysed = await ctx.analysis.analyse(buf, name, threshold, true);
      } finally {
        release();
      }
      const { result, originalSampleRate } = analysed;
      request.log.info(
        {
          file: name,
          bytes,
          durationS: result.durationS,
          isScream: result.isScream,
          userId: s.username,
        },
        'web: file analysed',
      );
      let event: StoredEvent | null = null;
      if (store) {
        const now = ctx.now();
        const peak = result.events[0];
        event = {
          eventId: ctx.ids.next(now.getTime()),
          sensorId: 'dashboard',
          timestamp: now.toISOString(),
          receivedAt: now.toISOString(),
          startedAt: null,
          audioSource: `upload:${name}`,
          screamProbability: result.maxProbability,
          isScream: result.isScream,
          thresholdValue: result.thresholdValue,
          levelDbfs: null,
          modelVersion: result.modelVersion,
          location: { latitude: null, longitude: null, accuracy: null, address: null, source: 'unknown' },
          alertType: 'upload',
          responseStatus: 'none',
          deliveries: [],
          userId: s.username,
          notes: peak
            ? `Uploaded file; first detection at ${peak.startS.toFixed(2)}-${peak.endS.toFixed(2)} s`
            : 'Uploaded file; no scream detected',
          windows: result.windows,
        };
        // Stored, not ingested: analysing a recording is review work, and the bridge's ingest
        // would text the contacts for a file someone uploaded to test. Alerting stays one
        // deliberate click away (POST /api/events/:id/alert).
        await ctx.deps.store.insertIfNew(event);
      }
      return {
        file: name,
        bytes,
        originalSampleRate,
        result,
        eventId: event?.eventId ?? null,
      };
    },
  );
}
