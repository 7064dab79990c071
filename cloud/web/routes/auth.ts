import type { FastifyInstance } from 'fastify';
import { verifyPassword } from '../../auth/passwords.ts';
import { CSRF_HEADER, SESSION_COOKIE, SESSION_TTL_MS } from '../auth/sessions.ts';
import { rateLimit, sessionOf, type WebContext } from '../context.ts';
import { WebError } from '../errors.ts';
import { renderLogin } from '../pages.ts';

// A hash to verify against for unknown users, so a login's timing does not reveal which usernames exist.
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export function authRoutes(app: FastifyInstance, ctx: WebContext): void {
  app.get('/login', async (request, reply) => {
    const next = safeNext((request.query as { next?: string }).next);
    if (request.session) return reply.redirect(next);
    return reply.type('text/html; charset=utf-8').send(renderLogin(next));
  });

  app.post(
    '/api/login',
    {
      schema: {
        body: {
          type: 'object',
          required: ['username', 'password'],
          properties: {
            username: { type: 'string', maxLength: 200 },
            password: { type: 'string', maxLength: 1000 },
          },
        },
      },
    },
    async (request, reply) => {
      const { username, password } = request.body as { username: string; password: string };
      rateLimit(ctx.limits.login, `${request.ip}|${username.toLowerCase()}`, 'sign-in attempts', reply);
      const user = ctx.users.find((u) => u.username === username);
      const ok = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
      if (!user || !ok) {
        request.log.warn({ username, ip: request.ip }, 'web: failed sign-in');
        throw new WebError('WEB_LOGIN_FAILED', 'wrong username or password');
      }
      const { session, cookie } = ctx.sessions.create(user.username, user.role);
      reply.setCookie(SESSION_COOKIE, cookie, {
        path: '/',
        httpOnly: true,
        sameSite: 'strict',
        secure: ctx.secureCookies,
        maxAge: Math.floor(SESSION_TTL_MS / 1000),
      });
      request.log.info({ userId: user.username }, 'web: signed in');
      return { username: user.username, role: user.role, csrfToken: ctx.sessions.csrfToken(session) };
    },
  );

  app.post('/api/logout', async (request, reply) => {
    const s = sessionOf(request);
    ctx.sessions.revoke(s);
    reply.clearCookie(SESSION_COOKIE, { path: '/' });
    request.log.info({ userId: s.username }, 'web: signed out');
    return reply.code(204).send();
  });

  app.get('/api/session', async (request) => {
    const s = sessionOf(request);
    return {
      username: s.username,
      role: s.role,
      csrfToken: ctx.sessions.csrfToken(s),
      csrfHeader: CSRF_HEADER,
      expiresAt: new Date(s.exp).toISOString(),
    };
  });
}

/** Only same-site paths: `?next=https://evil.example` must not become an open redirect. */
export function safeNext(next: string | undefined): string {
  if (!next?.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/events';
  return next;
}
