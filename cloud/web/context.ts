import type { FastifyReply, FastifyRequest } from 'fastify';
import { UlidFactory } from '../../protocol/event-id.ts';
import type { AnalysisPool } from './analysis-pool.ts';
import type { Session, SessionCodec } from './auth/sessions.ts';
import { WebError } from './errors.ts';
import type { LiveFeed } from './live-feed.ts';
import type { SlidingWindowLimiter } from './rate-limit.ts';
import type { WebDeps, WebUser } from './types.ts';

/** What every route module needs, built once by createWebService. */
export interface WebContext {
  deps: WebDeps;
  users: WebUser[];
  sessions: SessionCodec;
  now: () => Date;
  ids: UlidFactory;
  limits: { login: SlidingWindowLimiter; manualAlert: SlidingWindowLimiter; liveAlert: SlidingWindowLimiter };
  secureCookies: boolean;
  analysis: AnalysisPool;
  /** The change feed behind GET /api/stream; REST answers carry its cursor as `liveCursor`. */
  feed: LiveFeed;
}

declare module 'fastify' {
  interface FastifyRequest {
    session: Session | null;
  }
}

export function sessionOf(request: FastifyRequest): Session {
  if (!request.session) throw new WebError('WEB_UNAUTHENTICATED', 'sign in first');
  return request.session;
}

/** Actions that alert people or change the record are for admins; viewers can look and analyse. */
export function requireAdmin(request: FastifyRequest, action: string): Session {
  const s = sessionOf(request);
  if (s.role !== 'admin')
    throw new WebError('WEB_FORBIDDEN', `${action} needs the admin role (${s.username} is ${s.role})`);
  return s;
}

export function rateLimit(
  limiter: SlidingWindowLimiter,
  key: string,
  what: string,
  reply: FastifyReply,
): void {
  const waitMs = limiter.take(key);
  if (waitMs > 0) {
    const s = Math.ceil(waitMs / 1000);
    reply.header('retry-after', String(s));
    throw new WebError('WEB_RATE_LIMITED', `too many ${what}; try again in ${s} s`, { retryAfterS: s });
  }
}

export function makeIds(): UlidFactory {
  return new UlidFactory();
}
