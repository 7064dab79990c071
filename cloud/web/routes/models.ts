import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { requireAdmin, sessionOf, type WebContext } from '../context.ts';
import { WebError } from '../errors.ts';

/**
 * Model rollout: the models the bridge can hand out (list for everyone signed in, upload for
 * admins), the signed download sensors fetch without an account, and batch rollouts.
 */
export function modelRoutes(app: FastifyInstance, ctx: WebContext): void {
  const models = () => {
    const m = ctx.deps.models;
    if (!m) throw new WebError('WEB_UNAVAILABLE', 'model rollout is not available on this bridge');
    return m;
  };

  app.get('/api/models', async (request) => {
    sessionOf(request);
    return { models: models().library.list(), maxUploadBytes: models().maxUploadBytes };
  });

  app.post('/api/models', async (request, reply) => {
    const s = requireAdmin(request, 'uploading a model');
    const m = models();
    if (!request.isMultipart())
      throw new WebError('WEB_UPLOAD_MISSING', 'send the model as multipart/form-data with a "file" field');
    const part = await request.file({ limits: { fileSize: m.maxUploadBytes, files: 1 } });
    if (!part) throw new WebError('WEB_UPLOAD_MISSING', 'no file in the upload; send it in a "file" field');
    const chunks: Buffer[] = [];
    let total = 0;
    const tooLarge = () =>
      new WebError(
        'WEB_UPLOAD_TOO_LARGE',
        `the model file is larger than models.maxUploadBytes (${m.maxUploadBytes} bytes)`,
      );
    for await (const chunk of part.file) {
      total += chunk.byteLength;
      if (total > m.maxUploadBytes) throw tooLarge();
      chunks.push(chunk);
    }
    if (part.file.truncated) throw tooLarge();
    const { entry, created } = m.library.upload(Buffer.concat(chunks), s.username);
    return reply.code(created ? 201 : 200).send({ model: entry, created });
  });

  // Public (no session): the sensors' download. The signature is the authorisation.
  app.get('/model-files/:sha256', async (request, reply) => {
    const { sha256 } = request.params as { sha256: string };
    const { exp, sig } = request.query as { exp?: string; sig?: string };
    const { file, entry } = models().library.open(sha256, exp, sig);
    const bytes = readFileSync(file);
    request.log.info({ sha256, version: entry.version, ip: request.ip }, 'web: model downloaded');
    return reply.type('application/json').header('content-length', bytes.byteLength).send(bytes);
  });

  app.post(
    '/api/models/:sha256/rollout',
    {
      schema: {
        body: {
          type: 'object',
          properties: {
            sensorIds: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 1000 },
            group: { type: 'string', minLength: 1 },
            all: { type: 'boolean' },
            batchSize: { type: 'integer', minimum: 1, maximum: 100, default: 1 },
            timeoutS: { type: 'integer', minimum: 5, maximum: 86_400 },
          },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const s = requireAdmin(request, 'rolling out a model');
      const m = models();
      const { sha256 } = request.params as { sha256: string };
      const body = request.body as {
        sensorIds?: string[];
        group?: string;
        all?: boolean;
        batchSize: number;
        timeoutS?: number;
      };
      const targets = [body.sensorIds !== undefined, body.group !== undefined, body.all === true].filter(
        Boolean,
      );
      if (targets.length !== 1)
        throw new WebError('WEB_BAD_REQUEST', 'name exactly one target: sensorIds, group or all: true');
      const sensorIds = body.sensorIds
        ? body.sensorIds
        : body.group !== undefined
          ? m.group(body.group)
          : ctx.deps.registry.list().map((x) => x.id);
      if (body.group !== undefined && sensorIds.length === 0)
        throw new WebError('WEB_BAD_REQUEST', `no sensor in group ${body.group}`);
      const rollout = m.rollouts.start({
        sha256,
        sensorIds,
        batchSize: body.batchSize,
        startedBy: s.username,
        timeoutS: body.timeoutS,
      });
      return reply.code(202).send({ rollout });
    },
  );

  app.get('/api/rollouts', async (request) => {
    sessionOf(request);
    return { rollouts: models().rollouts.list() };
  });

  app.get('/api/rollouts/:id', async (request) => {
    sessionOf(request);
    const rollout = models().rollouts.get((request.params as { id: string }).id);
    if (!rollout) throw new WebError('WEB_NOT_FOUND', 'no such rollout');
    return { rollout };
  });
}
