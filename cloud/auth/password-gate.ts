import { createHash } from 'node:crypto';

export interface PasswordGateOptions {
  /** Failed checks allowed per IP per window before more are refused without hashing. */
  failuresPerIp: number;
  /** Failed checks allowed per username per window. */
  failuresPerUser: number;
  windowMs: number;
  /** scrypt runs at most this many at once (each costs ~32 MiB and a thread-pool thread). */
  concurrency: number;
  /** Checks waiting for a slot; beyond it a check is refused at once ("busy"). */
  maxQueued: number;
  /** A successful check is remembered this long (the same username and password skip scrypt). */
  cacheMs: number;
  now?: () => number;
}

export type GateVerdict = 'ok' | 'wrong' | 'rate-limited' | 'busy';

export const DEFAULT_PASSWORD_GATE: PasswordGateOptions = {
  failuresPerIp: 20,
  failuresPerUser: 10,
  windowMs: 60_000,
  concurrency: 2,
  maxQueued: 32,
  cacheMs: 10 * 60_000,
};

/**
 * Stands in front of scrypt. A wrong password costs the server a hash (~50-100 ms of a
 * thread-pool thread and 32 MiB), so 100 bad MQTT connects starved a valid sensor's
 * connect (8 s; its timeout is 10 s). Here, in order:
 * 1. a username + password that verified recently is accepted from a cache (keyed by a
 *    SHA-256 of both, never the password itself), so a real sensor reconnects without
 *    hashing even while its username is being attacked;
 * 2. an IP or username with too many recent failures is refused without hashing;
 * 3. at most `concurrency` hashes run at once, `maxQueued` wait, the rest are refused ("busy").
 */
export class PasswordGate {
  private readonly options: PasswordGateOptions;
  private readonly failures = new Map<string, number[]>();
  private readonly cache = new Map<string, number>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(options: Partial<PasswordGateOptions> = {}) {
    this.options = { ...DEFAULT_PASSWORD_GATE, ...options };
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private cacheKey(username: string, password: string, hash: string): string {
    return createHash('sha256').update(`${username}\0${password}\0${hash}`).digest('base64');
  }

  private recent(key: string): number[] {
    const cutoff = this.now() - this.options.windowMs;
    const list = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list;
  }

  /** When a refused IP or username may try again (ms since epoch), or null. */
  retryAt(ip: string | null, username: string): number | null {
    const times: number[] = [];
    const ipList = ip ? this.recent(`ip:${ip}`) : [];
    if (ipList.length >= this.options.failuresPerIp) times.push(ipList[0]! + this.options.windowMs);
    const userList = this.recent(`user:${username}`);
    if (userList.length >= this.options.failuresPerUser) times.push(userList[0]! + this.options.windowMs);
    return times.length ? Math.max(...times) : null;
  }

  /**
   * `hash` is the stored hash (part of the cache key, so a changed password is checked
   * afresh); `verify` runs scrypt. Unknown usernames should pass a fixed dummy hash so they
   * cost the same and are rate-limited the same.
   */
  async check(
    ip: string | null,
    username: string,
    password: string,
    hash: string,
    verify: () => Promise<boolean>,
  ): Promise<GateVerdict> {
    const key = this.cacheKey(username, password, hash);
    const cached = this.cache.get(key);
    if (cached !== undefined && cached > this.now()) return 'ok';
    if (this.retryAt(ip, username) !== null) return 'rate-limited';
    if (this.running >= this.options.concurrency) {
      if (this.waiting.length >= this.options.maxQueued) return 'busy';
      // the slot is handed over by the check that finishes (running stays the same)
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    const release = () => {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
    // Failures recorded while this check waited for a slot count too: without this second
    // look, a flood queued behind the first hashes (up to maxQueued of them) all got hashed.
    if (this.retryAt(ip, username) !== null) {
      release();
      return 'rate-limited';
    }
    let ok: boolean;
    try {
      ok = await verify();
    } finally {
      release();
    }
    if (ok) {
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(key, this.now() + this.options.cacheMs);
      return 'ok';
    }
    const t = this.now();
    if (ip) this.failures.set(`ip:${ip}`, [...this.recent(`ip:${ip}`), t]);
    this.failures.set(`user:${username}`, [...this.recent(`user:${username}`), t]);
    if (this.failures.size > 50_000) this.failures.clear();
    return 'wrong';
  }

  /** Forget a user's cached successes (password changed, user removed). */
  forget(): void {
    this.cache.clear();
  }
}
