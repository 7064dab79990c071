import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { buildThenStopService } from '../../runtime/esbuild-service.ts';
import { WebError } from './errors.ts';

export interface StaticAsset {
  body: Buffer;
  type: string;
  /** Pre-compressed once at start: the live bundle and the model are large and served to phones. */
  gzip: Buffer | null;
}

export function makeAsset(body: Buffer, type: string): StaticAsset {
  return { body, type, gzip: body.length > 1024 ? gzipSync(body, { level: 9 }) : null };
}

/** Sends an asset, gzipped when the client accepts it. */
export function sendAsset(
  request: FastifyRequest,
  reply: FastifyReply,
  asset: StaticAsset,
  cacheControl: string,
): FastifyReply {
  reply.type(asset.type).header('cache-control', cacheControl).header('vary', 'accept-encoding');
  if (asset.gzip && /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''))) {
    return reply.header('content-encoding', 'gzip').send(asset.gzip);
  }
  return reply.send(asset.body);
}

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/**
 * Bundles the front end in memory at server start, so users never run a build step.
 * `live.js` carries the shared detection core (features, detector, forest) so the browser
 * scores the microphone with exactly the code the sensors run.
 */
export async function bundleClient(): Promise<Map<string, StaticAsset>> {
  let result: Awaited<ReturnType<typeof buildThenStopService>>;
  try {
    result = await buildThenStopService({
      entryPoints: { app: here('./client/app.ts'), live: here('./client/live.ts') },
      bundle: true,
      write: false,
      outdir: '/static',
      format: 'esm',
      platform: 'browser',
      target: ['chrome110', 'firefox115', 'safari16'],
      minify: true,
      sourcemap: false,
      legalComments: 'none',
      logLevel: 'silent',
      // meyda's browser build assigns to a global; its node entry is plain CommonJS and bundles cleanly
      mainFields: ['module', 'main'],
      // random-js (via ml-random-forest) has a lazy `require("crypto")` engine the forest never uses
      external: ['crypto'],
    });
  } catch (err) {
    throw new WebError(
      'WEB_BUNDLE_FAILED',
      `web: bundling the front end failed: ${(err as Error).message}`,
      undefined,
      {
        cause: err,
      },
    );
  }
  const assets = new Map<string, StaticAsset>();
  for (const f of result.outputFiles ?? []) {
    const name = f.path.slice(f.path.lastIndexOf('/') + 1);
    assets.set(name, makeAsset(Buffer.from(f.contents), 'text/javascript; charset=utf-8'));
  }
  assets.set('styles.css', makeAsset(await readFile(here('./client/styles.css')), 'text/css; charset=utf-8'));
  assets.set(
    'leaflet.css',
    makeAsset(
      await readFile(fileURLToPath(import.meta.resolve('leaflet/dist/leaflet.css'))),
      'text/css; charset=utf-8',
    ),
  );
  const clusterCss = await Promise.all(
    ['MarkerCluster.css', 'MarkerCluster.Default.css'].map((f) =>
      readFile(fileURLToPath(import.meta.resolve(`leaflet.markercluster/dist/${f}`))),
    ),
  );
  assets.set('markercluster.css', makeAsset(Buffer.concat(clusterCss), 'text/css; charset=utf-8'));
  assets.set('favicon.svg', makeAsset(Buffer.from(FAVICON), 'image/svg+xml'));
  return assets;
}

const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#c0392b"/><path d="M9 20c2-8 4-8 5 0s3 8 5 0 3-8 4 0" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round"/></svg>`;
