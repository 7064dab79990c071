import type { FastifyInstance } from 'fastify';
import type { StoredEvent, StoredLocation } from '../../store/types.ts';
import { type StaticAsset, sendAsset } from '../bundle.ts';
import { rateLimit, requireAdmin, type WebContext } from '../context.ts';

interface LiveAlertBody {
  screamProbability: number;
  thresholdValue: number;
  startedAt?: string;
  levelDbfs?: number;
  modelVersion?: string;
  position?: { latitude: number; longitude: number; accuracy?: number | null } | null;
  windows?: { startS: number; endS: number; probability: number }[];
  note?: string;
}

const UNKNOWN: StoredLocation = {
  latitude: null,
  longitude: null,
  accuracy: null,
  address: null,
  source: 'unknown',
};

export function liveRoutes(app: FastifyInstance, ctx: WebContext, model: StaticAsset): void {
  // The forest the browser scores the microphone with: the same file the server uses.
  app.get('/api/model', async (request, reply) => sendAsset(request, reply, model, 'private, max-age=300'));

  app.post(
    '/api/live/alert',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['screamProbability', 'thresholdValue'],
          properties: {
            screamProbability: { type: 'number', minimum: 0, maximum: 1 },
            thresholdValue: { type: 'number', minimum: 0, maximum: 1 },
            startedAt: { type: 'string', format: 'date-time' },
            levelDbfs: { type: 'number', minimum: -200, maximum: 10 },
            modelVersion: { type: 'string', maxLength: 100 },
            note: { type: 'string', maxLength: 2000 },
            position: {
              type: ['object', 'null'],
              required: ['latitude', 'longitude'],
              properties: {
                latitude: { type: 'number', minimum: -90, maximum: 90 },
                longitude: { type: 'number', minimum: -180, maximum: 180 },
                accuracy: { type: ['number', 'null'], minimum: 0 },
              },
            },
            windows: {
              type: 'array',
              maxItems: 600,
              items: {
                type: 'object',
                required: ['startS', 'endS', 'probability'],
                properties: {
                  startS: { type: 'number' },
                  endS: { type: 'number' },
                  probability: { type: 'number', minimum: 0, maximum: 1 },
                },
              },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const s = requireAdmin(request, 'sending an alert');
      rateLimit(ctx.limits.liveAlert, s.username, 'live alerts', reply);
      const body = request.body as LiveAlertBody;
      let location: StoredLocation = UNKNOWN;
      if (body.position) {
        location = {
          latitude: body.position.latitude,
          longitude: body.position.longitude,
          accuracy: body.position.accuracy ?? null,
          address: null,
          source: 'browser',
        };
      } else if (ctx.deps.locateIp) {
        try {
          location = (await ctx.deps.locateIp(request.ip)) ?? UNKNOWN;
        } catch (err) {
          request.log.warn({ err, ip: request.ip }, 'web: IP location failed; alerting without a location');
        }
      }
      const now = ctx.now();
      const event: StoredEvent = {
        eventId: ctx.ids.next(now.getTime()),
        sensorId: 'browser',
        timestamp: now.toISOString(),
        receivedAt: now.toISOString(),
        startedAt: body.startedAt ?? null,
        audioSource: 'browser:microphone',
        screamProbability: body.screamProbability,
        isScream: true,
        thresholdValue: body.thresholdValue,
        levelDbfs: body.levelDbfs ?? null,
        modelVersion: body.modelVersion ?? ctx.deps.model.version,
        location,
        alertType: 'scream',
        responseStatus: 'pending',
        deliveries: [],
        userId: s.username,
        deviceInfo: { userAgent: String(request.headers['user-agent'] ?? '').slice(0, 300) },
        notes: body.note?.trim() || 'Live detection in the dashboard (browser microphone)',
        windows: body.windows ?? null,
      };
      request.log.warn(
        { eventId: event.eventId, userId: s.username, locationSource: location.source },
        'web: live detection alert',
      );
      if (ctx.deps.ingestLocal) {
        await ctx.deps.ingestLocal(event);
      } else {
        await ctx.deps.store.insertIfNew(event);
        await ctx.deps.alerts.sendManualAlert(event.eventId, s.username);
      }
      return { event: (await ctx.deps.store.get(event.eventId)) ?? event };
    },
  );
}
