import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ScreamwatchError } from '../../../protocol/errors.ts';
import { encodeCursor } from '../../store/query.ts';
import type {
  EventQuery,
  EventResponse,
  HistoryEntry,
  ResponseState,
  Review,
  StoredEvent,
} from '../../store/types.ts';
import { rateLimit, requireAdmin, type WebContext } from '../context.ts';
import { WebError } from '../errors.ts';
import { summary } from '../live-feed.ts';

const ISO = { type: 'string', format: 'date-time' } as const;

type ListQuery = {
  sensorId?: string;
  from?: string;
  to?: string;
  isScream?: boolean;
  response?: ResponseState;
  verdict?: Review['verdict'];
  before?: string;
};

const FILTERS = {
  sensorId: { type: 'string', maxLength: 64 },
  from: ISO,
  to: ISO,
  isScream: { type: 'boolean' },
  response: { type: 'string', enum: ['new', 'acknowledged', 'resolved'] },
  verdict: { type: 'string', enum: ['false-alarm', 'confirmed'] },
} as const;

function toQuery(q: ListQuery): EventQuery {
  if (q.from && q.to && Date.parse(q.from) > Date.parse(q.to)) {
    throw new WebError(
      'WEB_BAD_REQUEST',
      `"from" (${q.from}) is later than "to" (${q.to}): nothing can match`,
    );
  }
  const query: EventQuery = {};
  if (q.sensorId) query.sensorId = q.sensorId;
  if (q.from) query.from = new Date(q.from).toISOString();
  if (q.to) query.to = new Date(q.to).toISOString();
  if (q.isScream !== undefined) query.isScream = q.isScream;
  if (q.before) query.before = q.before;
  if (q.response) query.responseState = q.response;
  if (q.verdict) query.verdict = q.verdict;
  return query;
}

/** Most rows one export holds (the store is paged through; memory stays bounded by this). */
export const EXPORT_MAX_ROWS = 50_000;
const CSV_COLUMNS = [
  'eventId',
  'timestamp',
  'receivedAt',
  'sensorId',
  'audioSource',
  'screamProbability',
  'isScream',
  'thresholdValue',
  'alertType',
  'responseStatus',
  'latitude',
  'longitude',
  'accuracy',
  'address',
  'locationSource',
  'room',
  'responseState',
  'respondedBy',
  'verdict',
  'reviewedBy',
  'reviewNote',
  'deliveries',
  'modelVersion',
  'notes',
] as const;

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = String(v);
  // a cell a spreadsheet would run as a formula is quoted as text (CSV injection)
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvRow(e: StoredEvent): string {
  const cells: Record<(typeof CSV_COLUMNS)[number], unknown> = {
    eventId: e.eventId,
    timestamp: e.timestamp,
    receivedAt: e.receivedAt,
    sensorId: e.sensorId,
    audioSource: e.audioSource,
    screamProbability: e.screamProbability,
    isScream: e.isScream,
    thresholdValue: e.thresholdValue,
    alertType: e.alertType,
    responseStatus: e.responseStatus,
    latitude: e.location.latitude,
    longitude: e.location.longitude,
    accuracy: e.location.accuracy,
    address: e.location.address,
    locationSource: e.location.source,
    room: e.location.room,
    responseState: e.response?.state ?? 'new',
    respondedBy: e.response?.userId,
    verdict: e.review?.verdict,
    reviewedBy: e.review?.userId,
    reviewNote: e.review?.note,
    deliveries: (e.deliveries ?? []).map((d) => `${d.channel}:${d.to}:${d.status}`).join('; '),
    modelVersion: e.modelVersion,
    notes: e.notes,
  };
  return CSV_COLUMNS.map((c) => csvCell(cells[c])).join(',');
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
            ...FILTERS,
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 100 },
            before: { type: 'string', maxLength: 200 },
          },
        },
      },
    },
    async (request) => {
      const q = request.query as ListQuery & { limit: number };
      const query = toQuery(q);
      query.limit = q.limit;
      // taken before the read: a change racing the read is then pushed again, never lost
      const liveCursor = ctx.feed.cursor();
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
        liveCursor,
      };
    },
  );

  app.get(
    '/api/events/export',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { ...FILTERS, format: { type: 'string', enum: ['csv', 'json'], default: 'csv' } },
        },
      },
    },
    async (request, reply) => {
      const q = request.query as ListQuery & { format: 'csv' | 'json' };
      const query = toQuery({ ...q, before: undefined } as ListQuery);
      const stamp = ctx.now().toISOString().replace(/[:.]/g, '-');
      reply
        .type(q.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
        .header('content-disposition', `attachment; filename="screamwatch-events-${stamp}.${q.format}"`);
      const out: string[] = [];
      if (q.format === 'csv') out.push(CSV_COLUMNS.join(','));
      let before: string | undefined;
      let rows = 0;
      const json: StoredEvent[] = [];
      for (;;) {
        const page = await store.list({ ...query, limit: 500, ...(before ? { before } : {}) });
        for (const e of page) {
          if (q.format === 'csv') out.push(csvRow(e));
          else {
            const { features: _f, ...rest } = e;
            json.push(rest as StoredEvent);
          }
        }
        rows += page.length;
        const last = page.at(-1);
        if (page.length < 500 || !last || rows >= EXPORT_MAX_ROWS) break;
        before = encodeCursor(last);
      }
      request.log.info({ userId: request.session?.username, rows, format: q.format }, 'web: events exported');
      return q.format === 'csv'
        ? `${out.join('\r\n')}\r\n`
        : JSON.stringify({ events: json, exportedAt: ctx.now().toISOString() });
    },
  );

  app.get('/api/events/:id', async (request) => {
    const { id } = request.params as { id: string };
    const liveCursor = ctx.feed.cursor();
    const event = await store.get(id);
    if (!event) throw new WebError('WEB_NOT_FOUND', `no event ${id}`);
    return { event, liveCursor };
  });

  const NOTE = { type: ['string', 'null'], maxLength: 2000 } as const;
  const respond = async (
    id: string,
    userId: string,
    state: ResponseState,
    verdict: Review['verdict'] | null,
    note: string | null | undefined,
  ): Promise<StoredEvent> => {
    const at = ctx.now().toISOString();
    const text = note?.trim() || null;
    const response: EventResponse = { state, userId, at };
    if (verdict) response.verdict = verdict;
    if (text) response.note = text;
    const entry: HistoryEntry = {
      at,
      userId,
      action: state === 'resolved' ? 'resolved' : state === 'new' ? 'reopened' : 'acknowledged',
      state,
    };
    if (verdict) entry.verdict = verdict;
    if (text) entry.note = text;
    const event = await store.recordResponse(id, { response, entry });
    if (!event) throw new WebError('WEB_NOT_FOUND', `no event ${id}`);
    return event;
  };

  // "I'm responding": everyone sees who took it, and escalation stops (cloud/alerts)
  app.post(
    '/api/events/:id/acknowledge',
    {
      schema: { body: { type: ['object', 'null'], additionalProperties: false, properties: { note: NOTE } } },
    },
    async (request, reply) => {
      const s = requireAdmin(request, 'acknowledging an event');
      const { id } = request.params as { id: string };
      const current = await store.get(id);
      if (!current) throw new WebError('WEB_NOT_FOUND', `no event ${id}`);
      const r = current.response;
      if (r && r.state !== 'new' && r.userId !== s.username) {
        // two people pressing at once: the second learns who is already on it
        reply.code(409);
        return {
          error: {
            code: 'WEB_CONFLICT',
            message: `already ${r.state} by ${r.userId} at ${r.at}`,
          },
          event: current,
        };
      }
      if (r?.state === 'acknowledged') return { event: current };
      const body = (request.body ?? {}) as { note?: string | null };
      const event = await respond(id, s.username, 'acknowledged', null, body.note);
      request.log.info({ eventId: id, userId: s.username }, 'web: event acknowledged');
      return { event };
    },
  );

  const resolveSchema = {
    body: {
      type: 'object',
      additionalProperties: false,
      required: ['verdict'],
      properties: { verdict: { type: 'string', enum: ['false-alarm', 'confirmed'] }, note: NOTE },
    },
  };
  const resolve = async (request: FastifyRequest) => {
    const s = requireAdmin(request, 'resolving an event');
    const { id } = request.params as { id: string };
    const body = request.body as { verdict: Review['verdict']; note?: string | null };
    const event = await respond(id, s.username, 'resolved', body.verdict, body.note);
    request.log.info({ eventId: id, userId: s.username, verdict: body.verdict }, 'web: event resolved');
    return { event };
  };
  app.post('/api/events/:id/resolve', { schema: resolveSchema }, resolve);
  // the earlier name; a re-review is appended to the history like any resolution
  app.post('/api/events/:id/review', { schema: resolveSchema }, resolve);

  app.post(
    '/api/events/review-bulk',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['eventIds', 'verdict'],
          properties: {
            eventIds: { type: 'array', minItems: 1, maxItems: 200, items: { type: 'string', maxLength: 64 } },
            verdict: { type: 'string', enum: ['false-alarm', 'confirmed'] },
            note: NOTE,
          },
        },
      },
    },
    async (request) => {
      const s = requireAdmin(request, 'reviewing events');
      const body = request.body as { eventIds: string[]; verdict: Review['verdict']; note?: string | null };
      const resolved: string[] = [];
      const missing: string[] = [];
      for (const id of new Set(body.eventIds)) {
        try {
          await respond(id, s.username, 'resolved', body.verdict, body.note);
          resolved.push(id);
        } catch (err) {
          if (err instanceof WebError && err.code === 'WEB_NOT_FOUND') missing.push(id);
          else throw err;
        }
      }
      request.log.info(
        { userId: s.username, verdict: body.verdict, resolved: resolved.length, missing: missing.length },
        'web: events reviewed in bulk',
      );
      return { resolved, missing };
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
