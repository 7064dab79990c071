import type { FastifyInstance, FastifyReply } from 'fastify';
import { PasswordGate } from '../../auth/password-gate.ts';
import { verifyPassword } from '../../auth/passwords.ts';
import { CSRF_HEADER, SESSION_COOKIE, SESSION_TTL_MS } from '../auth/sessions.ts';
import { sessionOf, type WebContext } from '../context.ts';
import { WebError } from '../errors.ts';
import { renderLogin } from '../pages.ts';

// A hash to verify against for unknown users, so a login's timing does not reveal which usernames exist.
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/**
 * 429 with Retry-After, and the wait said as a time of day ("try again at 14:32 UTC"):
 * "in 873 s" is not something a person can act on.
 */
function refuseUntil(reply: FastifyReply, atMs: number, what: string): never {
  const s = Math.max(1, Math.ceil((atMs - Date.now()) / 1000));
  reply.header('retry-after', String(s));
  const at = new Date(atMs).toLocaleTimeString('en-GB', {
    hour: '2-digit',
    minute: '2-digit',
    timeZoneName: 'short',
  });
  throw new WebError('WEB_RATE_LIMITED', `${what}; try again at ${at}`, {
    retryAfterS: s,
    retryAt: new Date(atMs).toISOString(),
  });
}

export function authRoutes(app: FastifyInstance, ctx: WebContext): void {
  // per-IP failures across usernames, scrypt concurrency, and a cache of recent successes
  const gate = new PasswordGate({ failuresPerUser: 1_000_000, now: () => ctx.now().getTime() });
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
      // Only failures count: ten correct sign-ins used to lock a user out for 15 minutes.
      const key = `${request.ip}|${username.toLowerCase()}`;
      const waitMs = ctx.limits.login.wait(key);
      if (waitMs > 0) refuseUntil(reply, ctx.now().getTime() + waitMs, 'too many failed sign-ins');
      const user = ctx.users.find((u) => u.username === username);
      const hash = user?.passwordHash ?? DUMMY_HASH;
      const verdict = await gate.check(request.ip, username, password, hash, () =>
        verifyPassword(password, hash),
      );
      if (verdict === 'busy' || verdict === 'rate-limited') {
        const retryAt = gate.retryAt(request.ip, username) ?? ctx.now().getTime() + 5000;
        refuseUntil(
          reply,
          retryAt,
          verdict === 'busy' ? 'too many sign-ins at once' : 'too many failed sign-ins',
        );
      }
      if (!user || verdict !== 'ok') {
        ctx.limits.login.record(key);
        request.log.warn({ username, ip: request.ip }, 'web: failed sign-in');
        throw new WebError('WEB_LOGIN_FAILED', 'wrong username or password');
      }
      ctx.limits.login.clear(key);
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

/**
 * Only same-origin paths: `?next=https://evil.example` must not become an open redirect.
 * Decided after URL parsing, as the browser will parse it: `/%09/evil.example` decodes to
 * `/<TAB>/evil.example`, the WHATWG parser drops the tab and the browser went to
 * //evil.example; `/\\evil.example` is `//evil.example` too.
 */
export function safeNext(next: string | undefined): string {
  if (!next?.startsWith('/')) return '/events';
  const base = 'http://screamwatch.invalid';
  let u: URL;
  try {
    u = new URL(next, base);
  } catch {
    return '/events';
  }
  // control characters and backslashes have no business in a path we redirect to
  const suspicious = [...next].some((ch) => ch.charCodeAt(0) < 0x20 || ch === '\\');
  if (u.origin !== base || suspicious) return '/events';
  return `${u.pathname}${u.search}${u.hash}`;
}
