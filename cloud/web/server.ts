import { join } from 'node:path';
import fastifyCookie from '@fastify/cookie';
import fastifyMultipart from '@fastify/multipart';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { httpStatusFor, ScreamwatchError } from '../../protocol/errors.ts';
import { AnalysisPool } from './analysis-pool.ts';
import { CSRF_HEADER, SESSION_COOKIE, SessionCodec } from './auth/sessions.ts';
import { resolveSessionSecret, resolveUsers } from './auth/users.ts';
import { bundleClient, makeAsset, type StaticAsset, sendAsset } from './bundle.ts';
import { makeIds, type WebContext } from './context.ts';
import { WebError } from './errors.ts';
import { LiveFeed } from './live-feed.ts';
import { type PageName, renderPage } from './pages.ts';
import { SlidingWindowLimiter } from './rate-limit.ts';
import { analyseRoutes } from './routes/analyse.ts';
import { authRoutes } from './routes/auth.ts';
import { commandRoutes } from './routes/commands.ts';
import { eventRoutes } from './routes/events.ts';
import { fleetRoutes } from './routes/fleet.ts';
import { liveRoutes } from './routes/live.ts';
import { modelRoutes } from './routes/models.ts';
import { streamRoutes } from './routes/stream.ts';
import type { WebDeps, WebService } from './types.ts';
import { uploadTooLarge } from './upload-buffer.ts';

export type { SensorView, WebConfig, WebDeps, WebService, WebUser } from './types.ts';

const PUBLIC_PATHS = new Set(['/login', '/api/login', '/healthz', '/livez']);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Image origins the map may load tiles from, for the Content-Security-Policy. */
export function tileOrigin(tileUrl: string): string {
  const m = /^(https?:\/\/[^/]+)/.exec(tileUrl.replace(/\{s\}/g, 'a'));
  if (!m) return '';
  // {s} subdomains (a/b/c.tile.example) become a wildcard host
  return tileUrl.includes('{s}') ? m[1]!.replace('://a.', '://*.') : m[1]!;
}

/**
 * The dashboard: a fastify server with a JSON API under /api, server-rendered page
 * shells and a front end bundled with esbuild at start. It depends only on interfaces
 * (EventStore, the sensor registry, the alert sender), so it runs the same against the
 * bridge's real services and against a test's in-memory ones.
 */
export function createWebService(deps: WebDeps): WebService {
  const { config, logger } = deps;
  const now = deps.clock ?? (() => new Date());
  const nowMs = () => now().getTime();
  const secureCookies = (config.publicUrl ?? '').startsWith('https:');
  const app = Fastify({
    loggerInstance: logger.child({ component: 'web' }),
    // the dashboard logs what users do (sign-in, review, alert), not every asset request
    logController: new LogController({ disableRequestLogging: true }),
    // only a reverse proxy on this host may set X-Forwarded-For (used for the IP location fallback)
    trustProxy: ['127.0.0.1', '::1'],
    bodyLimit: 256 * 1024,
    // pino's Logger and fastify's FastifyBaseLogger differ only in generics
  }) as unknown as FastifyInstance;
  app.decorateRequest('session', null);

  let ctx: WebContext | null = null;
  let assets = new Map<string, StaticAsset>();
  let url = '';
  let started: Promise<void> | null = null;
  const modelJson = JSON.stringify(deps.model.toJSON());
  const analysis = new AnalysisPool(modelJson, config.maxAnalysisSeconds ?? 600);
  const feed = new LiveFeed({
    store: deps.store,
    changes: deps.changes ?? null,
    registry: deps.registry,
    commands: deps.control,
    logger: logger.child({ component: 'web-live' }),
  });
  let endStreams: () => void = () => {};
  const csp = [
    "default-src 'self'",
    "script-src 'self'",
    // Leaflet positions tiles and markers with inline style attributes
    "style-src 'self' 'unsafe-inline'",
    `img-src 'self' data: ${tileOrigin(config.tileUrl)}`.trim(),
    "connect-src 'self'",
    "media-src 'self'",
    "worker-src 'self' blob:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-security-policy', csp);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'same-origin');
    reply.header('x-frame-options', 'DENY');
    reply.header('permissions-policy', 'microphone=(self), geolocation=(self), camera=()');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });

  const authenticate = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!ctx) throw new WebError('WEB_NOT_FOUND', 'dashboard is starting');
    const session = ctx.sessions.read(request.cookies[SESSION_COOKIE]);
    // the config is the authority: a removed user is out and a changed role applies at once
    const user = session ? ctx.users.find((u) => u.username === session.username) : undefined;
    request.session = session && user ? { ...session, role: user.role } : null;
    const path = request.url.split('?')[0]!;
    // /model-files/: the sensors' model download, authorised by its signed link (routes/models.ts)
    if (PUBLIC_PATHS.has(path) || path.startsWith('/static/') || path.startsWith('/model-files/')) {
      // login has no session to bind a token to; requiring JSON keeps a cross-site form from posting it
      if (path === '/api/login' && request.method === 'POST' && !isJson(request)) {
        throw new WebError('WEB_BAD_REQUEST', 'sign in with a JSON body (Content-Type: application/json)');
      }
      return;
    }
    if (!request.session) {
      if (path.startsWith('/api/'))
        throw new WebError('WEB_UNAUTHENTICATED', 'sign in first (no valid session cookie)');
      return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`);
    }
    if (!SAFE_METHODS.has(request.method)) {
      const token = request.headers[CSRF_HEADER];
      if (!ctx.sessions.checkCsrf(request.session, typeof token === 'string' ? token : undefined)) {
        throw new WebError(
          'WEB_CSRF_INVALID',
          `missing or wrong ${CSRF_HEADER} header for this session; reload the page`,
        );
      }
    }
  };

  app.setErrorHandler((err: FastifyError | ScreamwatchError, request, reply) => {
    const { status, code, message } = describeError(err, config.maxUploadBytes);
    if (status >= 500) request.log.error({ err, url: request.url }, 'web: request failed');
    else request.log.debug({ code, url: request.url }, 'web: request refused');
    return reply.code(status).type('application/json; charset=utf-8').send({ error: { code, message } });
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    // a person following a wrong link gets the dashboard's page, a program the JSON error
    if (
      ctx &&
      request.session &&
      request.method === 'GET' &&
      !path.startsWith('/api/') &&
      !path.startsWith('/static/')
    ) {
      const s = request.session;
      return reply
        .code(404)
        .type('text/html; charset=utf-8')
        .send(
          renderPage('notfound', s, ctx.sessions.csrfToken(s), {
            tileUrl: config.tileUrl,
            maxUploadBytes: config.maxUploadBytes,
            path,
          }),
        );
    }
    const err = new WebError(
      'WEB_NOT_FOUND',
      `no such page or API: ${request.method} ${request.url.split('?')[0]}`,
    );
    return reply.code(404).send({ error: { code: err.code, message: err.message } });
  });

  // Readiness as the bridge sees it (broker accepting, store and alert queue writable): 503
  // with the failing checks, so a load balancer or monitor does not trust a half-dead bridge.
  app.get('/healthz', async (_request, reply) => {
    if (!deps.readiness) return { ok: true };
    const checks = await deps.readiness().catch((err: Error) => ({
      readiness: { ok: false, detail: err.message },
    }));
    const ok = Object.values(checks).every((c) => c.ok);
    reply.header('cache-control', 'no-store');
    return reply.code(ok ? 200 : 503).send({ ok, checks });
  });
  // Liveness: the process answers (restart it only when this fails).
  app.get('/livez', async () => ({ ok: true }));

  app.get('/static/:name', async (request, reply) => {
    const asset = assets.get((request.params as { name: string }).name);
    if (!asset)
      throw new WebError('WEB_NOT_FOUND', `no static file ${(request.params as { name: string }).name}`);
    return sendAsset(request, reply, asset, 'private, max-age=60');
  });

  const page = (name: PageName) => async (request: FastifyRequest, reply: FastifyReply) => {
    const s = request.session!;
    const data: { tileUrl: string; maxUploadBytes: number; eventId?: string; sensorId?: string } = {
      tileUrl: config.tileUrl,
      maxUploadBytes: config.maxUploadBytes,
    };
    if (name === 'event') data.eventId = (request.params as { id: string }).id;
    if (name === 'sensor') data.sensorId = (request.params as { id: string }).id;
    return reply.type('text/html; charset=utf-8').send(renderPage(name, s, ctx!.sessions.csrfToken(s), data));
  };
  app.get('/', async (_request, reply) => reply.redirect('/events'));
  app.get('/events', page('events'));
  app.get('/events/:id', page('event'));
  app.get('/fleet', page('fleet'));
  app.get('/sensors/:id', page('sensor'));
  app.get('/analyse', page('analyse'));
  app.get('/live', page('live'));
  app.get('/models', page('models'));

  let released: Promise<void> | null = null;
  /** Once: after a failed start, stop() finds it done. */
  function release(): Promise<void> {
    released ??= (async () => {
      endStreams();
      await app.close();
      await feed.stop();
      await analysis.stop();
    })();
    return released;
  }

  async function doStart(): Promise<void> {
    const [users, secret, bundled] = await Promise.all([
      resolveUsers(config.users, config.dataDir, logger),
      resolveSessionSecret(config.sessionSecret, config.dataDir),
      bundleClient(),
      analysis.start(),
    ]);
    assets = bundled;
    ctx = {
      deps,
      users,
      sessions: new SessionCodec(secret, nowMs, {
        revokedFile: join(config.dataDir, 'web-revoked-sessions.json'),
        onError: (err) =>
          logger.error(
            { err: err.message, code: 'WEB_SESSION_STORE_FAILED' },
            'web: cannot keep signed-out sessions on disk; a sign-out lasts only until the bridge restarts',
          ),
      }),
      now,
      ids: makeIds(),
      limits: {
        login: new SlidingWindowLimiter(10, 15 * 60_000, nowMs),
        manualAlert: new SlidingWindowLimiter(5, 10 * 60_000, nowMs),
        liveAlert: new SlidingWindowLimiter(3, 60_000, nowMs),
      },
      secureCookies,
      analysis,
      feed,
    };
    feed.start();
    await app.register(fastifyCookie);
    // added after the cookie plugin's own onRequest hook, which parses request.cookies
    app.addHook('onRequest', authenticate);
    await app.register(fastifyMultipart, {
      limits: { fileSize: config.maxUploadBytes, files: 1, fields: 10 },
    });
    authRoutes(app, ctx);
    eventRoutes(app, ctx);
    fleetRoutes(app, ctx);
    commandRoutes(app, ctx);
    modelRoutes(app, ctx);
    analyseRoutes(app, ctx);
    endStreams = streamRoutes(app, ctx, feed);
    // open streams would keep app.close() waiting for their sockets
    app.addHook('preClose', async () => endStreams());
    liveRoutes(app, ctx, makeAsset(Buffer.from(modelJson), 'application/json; charset=utf-8'));
    try {
      url = await app.listen({ host: config.host, port: config.port });
    } catch (err) {
      throw new WebError(
        'WEB_LISTEN_FAILED',
        `web: cannot listen on ${config.host}:${config.port} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        { host: config.host, port: config.port },
        { cause: err },
      );
    }
    const addr = app.server.address();
    if (addr && typeof addr === 'object') {
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      url = `http://${host}:${addr.port}`;
    }
    logger.info({ url, publicUrl: config.publicUrl, users: users.length }, 'web: dashboard listening');
  }

  return {
    app,
    get url() {
      return url;
    },
    analysisStats: () => analysis.stats(),
    start() {
      // The service runner does not stop a service whose start failed (the port taken, a bad
      // user): release what doStart got going, the live feed's timer first of all.
      started ??= doStart().catch(async (err) => {
        await release().catch(() => undefined);
        throw err;
      });
      return started;
    },
    async stop() {
      if (started) await started.catch(() => undefined);
      await release();
    },
  };
}

function isJson(request: FastifyRequest): boolean {
  return String(request.headers['content-type'] ?? '').startsWith('application/json');
}

function describeError(err: FastifyError | ScreamwatchError, maxUploadBytes: number) {
  if (err instanceof WebError) return { status: err.statusCode, code: err.code, message: err.message };
  if (err instanceof ScreamwatchError) {
    // the registry says: AUDIO_* (a file that cannot be decoded) is the client's input (422), ...
    return { status: httpStatusFor(err), code: err.code, message: err.message };
  }
  const fe = err as FastifyError;
  if (fe.code === 'FST_REQ_FILE_TOO_LARGE' || fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const e = uploadTooLarge(maxUploadBytes);
    return { status: e.statusCode, code: e.code, message: e.message };
  }
  if (fe.validation) return { status: 400, code: 'WEB_BAD_REQUEST', message: fe.message };
  if (fe.statusCode && fe.statusCode < 500)
    return { status: fe.statusCode, code: fe.code ?? 'WEB_BAD_REQUEST', message: fe.message };
  return { status: 500, code: 'WEB_INTERNAL', message: 'internal error; see the server log' };
}
