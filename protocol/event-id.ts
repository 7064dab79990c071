import { createHash } from 'node:crypto';

/**
 * ULIDs: 48-bit millisecond time + 80 random bits, Crockford base32, 26 chars.
 * Lexicographic order is time order, so the outbox and the store sort by id alone.
 * Monotonic within a millisecond (the random part is incremented), per the ULID spec.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export class UlidFactory {
  private lastTime = -1;
  private lastRandom: number[] = [];
  constructor(private readonly random: () => number = Math.random) {}

  next(nowMs: number): string {
    let time = Math.floor(nowMs);
    if (time <= this.lastTime) {
      time = this.lastTime;
      this.increment();
    } else {
      this.lastTime = time;
      this.lastRandom = Array.from({ length: 16 }, () => Math.floor(this.random() * 32));
    }
    let timePart = '';
    for (let i = 0; i < 10; i++) {
      timePart = ALPHABET[time % 32] + timePart;
      time = Math.floor(time / 32);
    }
    return timePart + this.lastRandom.map((d) => ALPHABET[d]).join('');
  }

  private increment(): void {
    for (let i = this.lastRandom.length - 1; i >= 0; i--) {
      const d = this.lastRandom[i]!;
      if (d < 31) {
        this.lastRandom[i] = d + 1;
        return;
      }
      this.lastRandom[i] = 0;
    }
  }
}

/**
 * A ULID that is a pure function of `basis` (its random part from SHA-256 of it) at `timeMs`:
 * every bridge that derives an id for the same thing gets the same id, so the store's
 * de-duplication by eventId covers it.
 */
export function digestUlid(basis: string, timeMs: number): string {
  const digest = createHash('sha256').update(basis).digest();
  let i = 0;
  return new UlidFactory(() => digest[i++ % digest.length]! / 256).next(Number.isFinite(timeMs) ? timeMs : 0);
}

/** Milliseconds since the epoch encoded in a ULID. */
export function ulidTime(id: string): number {
  let t = 0;
  for (const ch of id.slice(0, 10)) t = t * 32 + ALPHABET.indexOf(ch);
  return t;
}
