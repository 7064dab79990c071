import type { FastifyInstance } from 'fastify';
import { ScreamwatchError } from '../../../protocol/errors.ts';
import { encodeCursor } from '../../store/query.ts';
import type { EventQuery, Review, StoredEvent } from '../../store/types.ts';
import { rateLimit, requireAdmin, type WebContext } from '../context.ts';
import { WebError } from '../errors.ts';

const ISO = { type: 'string', format: 'date-time' } as const;

/** The list carries what the list and the map draw; the per-window detail stays in GET /api/events/:id. */
function summary(e: StoredEvent): Omit<StoredEvent, 'windows' | 'features'> & { hasWindows: boolean } {
  const { windows, features: _features, ...rest } = e;
  return { ...rest, hasWindows: Array.isArray(windows) && windows.length > 0 };
}

export function eventRoutes(app: FastifyInstance, ctx: WebContext): void {
  const { store } = ctx.deps;

  app.get(
    '/api/events',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            sensorId: { type: 'string', maxLength: 64 },
            from: ISO,
            to: ISO,
            isScream: { type: 'boolean' },
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
            before: { type: 'string', maxLength: 200 },
          },
        },
      },
    },
    async (request) => {
      const q = request.query as EventQuery & { limit: number };
      const query: EventQuery = { limit: q.limit };
      if (q.sensorId) query.sensorId = q.sensorId;
      if (q.from) query.from = new Date(q.from).toISOString();
      if (q.to) query.to = new Date(q.to).toISOString();
      if (q.isScream !== undefined) query.isScream = q.isScream;
      if (q.before) query.before = q.before;
      let events: StoredEvent[];
      try {
        events = await store.list(query);
      } catch (err) {
        // a malformed `before` cursor is the caller's mistake, not a server fault
        if (err instanceof ScreamwatchError && err.code === 'STORE_CURSOR_INVALID') {
          throw new WebError('WEB_BAD_REQUEST', err.message);
        }
        throw err;
      }
      const last = events.at(-1);
      return {
        events: events.map(summary),
        nextBefore: last && events.length === q.limit ? encodeCursor(last) : null,
        total: await store.count(),
      };
    },
  );

  app.get('/api/events/:id', async (request) => {
    const { id } = request.params as { id: string };
    const event = await store.get(id);
    if (!event) throw new WebError('WEB_NOT_FOUND', `no event ${id}`);
    return { event };
  });

  app.post(
    '/api/events/:id/review',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['verdict'],
          properties: {
            verdict: { type: 'string', enum: ['false-alarm', 'confirmed'] },
            note: { type: ['string', 'null'], maxLength: 2000 },
          },
        },
      },
    },
    async (request) => {
      const s = requireAdmin(request, 'reviewing an event');
      const { id } = request.params as { id: string };
      const body = request.body as { verdict: Review['verdict']; note?: string | null };
      if (!(await store.get(id))) throw new WebError('WEB_NOT_FOUND', `no event ${id}`);
      const review: Review = { verdict: body.verdict, userId: s.username, at: ctx.now().toISOString() };
      const note = body.note?.trim();
      if (note) review.note = note;
      await store.setReview(id, review);
      request.log.info({ eventId: id, userId: s.username, verdict: review.verdict }, 'web: event reviewed');
      return { event: await store.get(id) };
    },
  );

  app.post('/api/events/:id/alert', async (request, reply) => {
    const s = requireAdmin(request, 'sending a manual alert');
    const { id } = request.params as { id: string };
    if (!(await store.get(id))) throw new WebError('WEB_NOT_FOUND', `no event ${id}`);
    // per user (a stuck button or a script must not text every contact repeatedly) and
    // per event (two people on call pressing the button at once send one alert)
    rateLimit(ctx.limits.manualAlert, `user:${s.username}`, 'manual alerts', reply);
    rateLimit(ctx.limits.manualAlert, `event:${id}`, 'manual alerts for this event', reply);
    request.log.info({ eventId: id, userId: s.username }, 'web: manual alert requested');
    const { deliveries } = await ctx.deps.alerts.sendManualAlert(id, s.username);
    return { deliveries, event: await store.get(id) };
  });
}
