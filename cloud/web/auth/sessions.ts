import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeJsonFileAtomic } from '../../../runtime/json-file.ts';
import type { UserRole } from '../types.ts';

export const SESSION_COOKIE = 'sw_session';
export const CSRF_HEADER = 'x-csrf-token';
/** An on-call shift plus margin; the cookie carries its own expiry. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

export interface Session {
  /** Random per login: what the CSRF token is bound to and what logout revokes. */
  sid: string;
  username: string;
  role: UserRole;
  /** Expiry, ms since the epoch. */
  exp: number;
}

/**
 * Stateless sessions in an HMAC-signed cookie, so a restart of the bridge does not log
 * on-call staff out. Logout revokes the session id until it would have expired; with
 * `revokedFile` the revocations are kept on disk (0600, written atomically), so a signed-out
 * cookie stays signed out across a restart of the bridge.
 */
export class SessionCodec {
  private readonly revoked = new Map<string, number>();

  constructor(
    private readonly secret: string,
    private readonly now: () => number,
    private readonly persist: { revokedFile?: string; onError?: (err: Error) => void } = {},
  ) {
    const file = persist.revokedFile;
    if (file && existsSync(file)) {
      try {
        const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
        for (const [sid, exp] of Object.entries(saved))
          if (typeof exp === 'number') this.revoked.set(sid, exp);
      } catch (err) {
        persist.onError?.(err as Error);
      }
    }
  }

  create(username: string, role: UserRole): { session: Session; cookie: string } {
    const session: Session = {
      sid: randomBytes(16).toString('base64url'),
      username,
      role,
      exp: this.now() + SESSION_TTL_MS,
    };
    const body = Buffer.from(JSON.stringify(session)).toString('base64url');
    return { session, cookie: `${body}.${this.mac(`session:${body}`)}` };
  }

  read(cookie: string | undefined): Session | null {
    if (!cookie) return null;
    const dot = cookie.lastIndexOf('.');
    if (dot <= 0) return null;
    const body = cookie.slice(0, dot);
    if (!safeEqual(cookie.slice(dot + 1), this.mac(`session:${body}`))) return null;
    let s: Session;
    try {
      s = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Session;
    } catch {
      return null;
    }
    if (typeof s.sid !== 'string' || typeof s.username !== 'string' || typeof s.exp !== 'number') return null;
    if (s.exp <= this.now() || this.revoked.has(s.sid)) return null;
    return s;
  }

  revoke(session: Session): void {
    const now = this.now();
    for (const [sid, exp] of this.revoked) if (exp <= now) this.revoked.delete(sid);
    this.revoked.set(session.sid, session.exp);
    const file = this.persist.revokedFile;
    if (!file) return;
    try {
      writeJsonFileAtomic(file, Object.fromEntries(this.revoked), 0o600);
    } catch (err) {
      // still revoked in memory; the log says it will not survive a restart
      this.persist.onError?.(err as Error);
    }
  }

  /** The CSRF token for a session: derived, so nothing to store, and useless with another session. */
  csrfToken(session: Session): string {
    return this.mac(`csrf:${session.sid}`);
  }

  checkCsrf(session: Session, token: string | undefined): boolean {
    return typeof token === 'string' && safeEqual(token, this.csrfToken(session));
  }

  private mac(data: string): string {
    return createHmac('sha256', this.secret).update(data).digest('base64url');
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
