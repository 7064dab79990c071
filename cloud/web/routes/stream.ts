import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { SESSION_COOKIE } from '../auth/sessions.ts';
import { sessionOf, type WebContext } from '../context.ts';
import { WebError } from '../errors.ts';
import type { FeedEntry, LiveFeed } from '../live-feed.ts';

/** Open streams at once; each holds one socket and a listener. */
const MAX_STREAMS = 200;
/** A browser that does not read: its stream is dropped (it reconnects and resumes). */
const MAX_BUFFERED_BYTES = 1024 * 1024;
const KEEPALIVE_MS = 15_000;

function frame(entry: FeedEntry): string {
  return `id: ${entry.id}\nevent: ${entry.message.type}\ndata: ${JSON.stringify(entry.message)}\n\n`;
}

/**
 * GET /api/stream: server-sent events. Resumes after `Last-Event-ID` (what EventSource sends
 * on reconnect) or `?after=` (the `liveCursor` of the REST answer the page was drawn from), so
 * nothing that happened between the snapshot and the stream is lost or sent twice.
 */
export function streamRoutes(app: FastifyInstance, ctx: WebContext, feed: LiveFeed): () => void {
  const open = new Set<ServerResponse>();

  app.get(
    '/api/stream',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { after: { type: 'string', maxLength: 64 } },
        },
      },
    },
    async (request, reply) => {
      const session = sessionOf(request);
      if (open.size >= MAX_STREAMS)
        throw new WebError(
          'WEB_UNAVAILABLE',
          `too many live streams open (${MAX_STREAMS}); the page polls instead`,
        );
      const header = request.headers['last-event-id'];
      const after =
        (typeof header === 'string' && header) || (request.query as { after?: string }).after || null;
      const backlog = after ? feed.since(after) : [];
      const res = reply.raw;
      reply.hijack();
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-content-type-options': 'nosniff',
      });
      open.add(res);
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        open.delete(res);
        stopListening();
        clearInterval(keepalive);
        res.end();
      };
      const send = (text: string) => {
        if (closed) return;
        res.write(text);
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          request.log.warn(
            { userId: session.username },
            'web: live stream not read; dropped (the browser resumes)',
          );
          close();
        }
      };
      // retry: EventSource waits this long before reconnecting
      send(`retry: 2000\n: ${feed.cursor()}\n\n`);
      if (backlog === 'reset') send(`id: ${feed.cursor()}\nevent: reset\ndata: {}\n\n`);
      else for (const e of backlog) send(frame(e));
      const stopListening = feed.listen((e) => send(frame(e)));
      const keepalive = setInterval(() => {
        // a signed-out, expired or removed user stops receiving at once
        const s = ctx.sessions.read(request.cookies[SESSION_COOKIE]);
        if (!s || !ctx.users.some((u) => u.username === s.username)) {
          send('event: signed-out\ndata: {}\n\n');
          close();
          return;
        }
        send(': keepalive\n\n');
      }, KEEPALIVE_MS);
      keepalive.unref();
      res.on('close', close);
      res.on('error', close);
    },
  );

  return () => {
    for (const res of [...open]) res.end();
    open.clear();
  };
}
