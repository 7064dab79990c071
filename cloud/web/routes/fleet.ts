import type { FastifyInstance } from 'fastify';
import type { WebContext } from '../context.ts';
import { WebError } from '../errors.ts';
import type { SensorView } from '../types.ts';

const ORDER: Record<SensorView['status'], number> = { offline: 0, unknown: 2, online: 3 };
/** Degraded (online but deaf) comes right after offline: both mean "would miss a scream". */
const rank = (s: SensorView): number => (s.degraded ? 1 : ORDER[s.status]);

export function fleetRoutes(app: FastifyInstance, ctx: WebContext): void {
  // offline first: that is what the person looking at the fleet needs to act on
  app.get('/api/sensors', async () => {
    const liveCursor = ctx.feed.cursor();
    const sensors = [...ctx.deps.registry.list()].sort(
      (a, b) => rank(a) - rank(b) || a.id.localeCompare(b.id),
    );
    // `online` counts every online sensor; `degraded` those of them whose input is not ok
    const counts = { online: 0, offline: 0, unknown: 0, degraded: 0 };
    for (const s of sensors) {
      counts[s.status]++;
      if (s.degraded) counts.degraded++;
    }
    return { sensors, counts, at: ctx.now().toISOString(), liveCursor };
  });

  app.get('/api/sensors/:id', async (request) => {
    const { id } = request.params as { id: string };
    const sensor = ctx.deps.registry.get(id);
    if (!sensor) throw new WebError('WEB_NOT_FOUND', `no sensor ${id}`);
    return { sensor };
  });

  /** Input level and max probability over 24 h (5-minute buckets) or 7 d (hourly), and state periods. */
  app.get(
    '/api/sensors/:id/history',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { range: { type: 'string', enum: ['24h', '7d'], default: '24h' } },
        },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const { range } = request.query as { range: '24h' | '7d' };
      if (!ctx.deps.registry.get(id)) throw new WebError('WEB_NOT_FOUND', `no sensor ${id}`);
      const now = ctx.now();
      const h = ctx.deps.history?.history(id, range, now.getTime()) ?? {
        bucketS: 0,
        buckets: [],
        periods: [],
      };
      return { sensorId: id, range, at: now.toISOString(), ...h, recorded: ctx.deps.history !== undefined };
    },
  );
}
