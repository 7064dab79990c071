import type { FastifyInstance } from 'fastify';
import { DetectionOverridesSchema } from '../../../protocol/messages.ts';
import { requireAdmin, sessionOf, type WebContext } from '../context.ts';
import { WebError } from '../errors.ts';

/** What an admin may send from a sensor page (set-model goes through the model rollout). */
const PAGE_COMMANDS = ['set-detection', 'ping', 'reload'] as const;

/**
 * A sensor's remote control from its page: the audit list of commands (who, when, what, and
 * what the sensor answered) for everyone signed in, sending for admins.
 */
export function commandRoutes(app: FastifyInstance, ctx: WebContext): void {
  const control = () => {
    const c = ctx.deps.control;
    if (!c) throw new WebError('WEB_UNAVAILABLE', 'remote control is not available on this bridge');
    return c;
  };
  const known = (id: string) => {
    if (!ctx.deps.registry.get(id)) throw new WebError('WEB_NOT_FOUND', `no sensor ${id}`);
  };

  app.get(
    '/api/sensors/:id/commands',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 } },
        },
      },
    },
    async (request) => {
      sessionOf(request);
      const { id } = request.params as { id: string };
      const { limit } = request.query as { limit: number };
      known(id);
      return { sensorId: id, commands: await control().list(id, limit) };
    },
  );

  app.post(
    '/api/sensors/:id/commands',
    {
      schema: {
        body: {
          type: 'object',
          required: ['command'],
          properties: {
            command: { type: 'string', enum: [...PAGE_COMMANDS] },
            detection: { type: 'object' },
          },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const s = requireAdmin(request, 'changing a sensor');
      const { id } = request.params as { id: string };
      const body = request.body as { command: (typeof PAGE_COMMANDS)[number]; detection?: unknown };
      known(id);
      let detection: ReturnType<typeof DetectionOverridesSchema.parse> | undefined;
      if (body.command === 'set-detection') {
        const parsed = DetectionOverridesSchema.safeParse(body.detection ?? {});
        if (!parsed.success) {
          const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'detection'}: ${i.message}`);
          throw new WebError('WEB_BAD_REQUEST', `detection settings refused: ${problems.join('; ')}`);
        }
        detection = parsed.data;
      }
      const record = await control().send(
        id,
        { command: body.command, ...(detection && { detection }) },
        s.username,
      );
      // 202 either way: `state` says whether the broker took it (queued) or not (send-failed);
      // what the sensor did comes later, as its answer on the record
      return reply.code(202).send({ command: record });
    },
  );
}
