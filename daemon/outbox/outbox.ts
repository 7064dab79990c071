import { EventEmitter } from 'node:events';
import { accessSync, constants, existsSync, renameSync, type Stats, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { backoffDelay, type RetryPolicy } from '../../runtime/backoff.ts';
import type { Clock } from '../clock.ts';
import { ensureDir } from '../ensure-dir.ts';
import { DaemonError } from '../errors.ts';
import { type AddResult, type OutboxKind, type OutboxRow, OutboxStore } from './outbox-store.ts';

/** What the publisher needs: rows in order, removal on PUBACK, the depth. */
export interface OutboxQueue {
  readonly depth: number;
  peek(afterId: number, limit: number): OutboxRow[];
  remove(id: number): void;
  /** 'rewind': rows moved to new ids; read again from the start. Plain stores never emit it. */
  on?(event: 'rewind', listener: () => void): unknown;
  off?(event: 'rewind', listener: () => void): unknown;
}

export interface OutboxOptions {
  stateDir: string;
  maxRows: number;
  /** Rows kept in memory while the disk refuses writes (events are shed last). */
  memoryMaxRows: number;
  /** Backoff between attempts to write to (or open) the disk again. */
  retry: RetryPolicy;
  logger: Logger;
  clock: Clock;
  /** How often the file is checked for having been deleted or replaced (default 5 s). */
  checkIntervalMs?: number;
}

export interface OutboxAddResult extends AddResult {
  /** The row is held in memory only: the disk refused it. */
  memory: boolean;
}

type DiskFault = 'full' | 'readonly' | 'io' | 'corrupt';

/** SQLite and errno codes that mean "the disk", not a bug: degrade instead of crashing. */
export function diskFaultOf(err: unknown): DiskFault | null {
  const code = String((err as { code?: unknown })?.code ?? '');
  if (code.startsWith('SQLITE_FULL') || code === 'ENOSPC' || code === 'EDQUOT') return 'full';
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS') return 'readonly';
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return 'corrupt';
  if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN') || code === 'EIO') return 'io';
  return null;
}

/** Facade ids: disk row ids are offset by the store's generation; memory rows live above MEM_BASE. */
const GEN_STRIDE = 2 ** 40;
const MEM_BASE = 2 ** 52;

/**
 * The outbox as the rest of the daemon sees it: the SQLite store while the disk takes
 * writes, and a bounded in-memory queue while it does not (disk full, filesystem remounted
 * read-only, I/O errors). Either way `add` returns and the publisher drains both, oldest
 * first, deleting on PUBACK; nothing is lost silently:
 * - the first refused write logs OUTBOX_WRITE_FAILED with SQLite's reason, `writable`
 *   turns false (heartbeat and status say so), the disk is retried with backoff and the
 *   memory rows are committed to it, in order, once it takes writes again;
 * - in memory, only the newest heartbeat is kept, then reports are shed, and events are
 *   dropped (logged with their eventId, counted in `lost`) only past `memoryMaxRows`;
 * - a file deleted or replaced while running (inode check) or found corrupt is moved
 *   aside as `outbox.corrupt-<time>.sqlite`, a fresh one is opened, and every row still
 *   readable is committed to it; what could not be read is counted in `lost`.
 */
export class Outbox extends EventEmitter implements OutboxQueue {
  readonly path: string;
  private store: OutboxStore | null = null;
  private storeId: { dev: number; ino: number } | null = null;
  private generation = 0;
  private memory: OutboxRow[] = [];
  private memorySeq = 0;
  /** A row that moved (memory → disk, old file → new file): acks of the old id delete the new one. */
  private readonly alias = new Map<number, number>();
  /** Disk rows acknowledged whose DELETE the disk refused; not sent again, deleted later. */
  private readonly acked = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private closed = false;
  private faultLogged = false;
  private replacing = false;
  /** False while the disk refuses writes (or could not be opened). */
  writable = true;
  /** Rows known lost since start (unreadable after corruption/deletion, or shed from a full memory queue). */
  lost = 0;
  /** Why the disk refused, while it does. */
  reason: string | null = null;

  constructor(private readonly options: OutboxOptions) {
    super();
    this.path = join(options.stateDir, 'outbox.sqlite');
  }

  /**
   * Opens the SQLite file. A disk fault (full, read-only, I/O) is not fatal: the daemon
   * comes up with the memory queue and keeps retrying. A path that cannot be a directory
   * or is not ours to write (ENOENT under /proc, EACCES) is a configuration error.
   */
  open(): void {
    try {
      ensureDir(this.options.stateDir);
    } catch (err) {
      if (diskFaultOf(err)) {
        this.onFault(err, 'create the state directory');
        return;
      }
      throw new DaemonError(
        'OUTBOX_OPEN_FAILED',
        `cannot open outbox ${this.path}: ${(err as Error).message} (check stateDir and its permissions)`,
        { path: this.path },
        { cause: err },
      );
    }
    this.tryOpenStore(true);
    this.schedule();
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  get depth(): number {
    return (this.store?.depth ?? 0) - this.acked.size + this.memory.length;
  }

  get memoryDepth(): number {
    return this.memory.length;
  }

  depthOf(kind: OutboxKind): number {
    let n = this.memory.filter((r) => r.kind === kind).length;
    if (this.store) n += this.disk('read', () => this.store!.depthOf(kind)) ?? 0;
    return n;
  }

  add(
    kind: OutboxKind,
    topic: string,
    payload: Buffer,
    createdAtMs: number,
    eventId: string | null = null,
  ): OutboxAddResult {
    this.checkFile();
    if (this.store && (this.memory.length === 0 || this.flush())) {
      const store = this.store;
      const r = this.disk('write', () => store.add(kind, topic, payload, createdAtMs, eventId));
      if (r) return { ...r, id: r.id === null ? null : r.id + this.generation * GEN_STRIDE, memory: false };
    }
    return this.addToMemory({ id: 0, kind, topic, payload, createdAtMs, eventId });
  }

  peek(afterId: number, limit: number): OutboxRow[] {
    const rows: OutboxRow[] = [];
    const base = this.generation * GEN_STRIDE;
    const store = this.store;
    if (store && afterId < MEM_BASE) {
      const from = Math.max(0, afterId - base);
      const disk = this.disk('read', () => store.peek(from, limit + this.acked.size));
      for (const r of disk ?? []) {
        if (this.acked.has(r.id)) continue;
        rows.push({ ...r, id: r.id + base });
        if (rows.length >= limit) return rows;
      }
    }
    for (const r of this.memory) {
      if (r.id <= afterId) continue;
      rows.push(r);
      if (rows.length >= limit) break;
    }
    return rows;
  }

  /** Called on PUBACK; a second call for the same row is harmless. */
  remove(id: number): void {
    const moved = this.alias.get(id);
    if (moved !== undefined) {
      this.alias.delete(id);
      this.remove(moved);
      return;
    }
    if (id >= MEM_BASE) {
      const i = this.memory.findIndex((r) => r.id === id);
      if (i >= 0) this.memory.splice(i, 1);
      return;
    }
    const gen = Math.floor(id / GEN_STRIDE);
    if (gen !== this.generation) return; // a row of a file that is gone: its copy, if any, is aliased
    const diskId = id - gen * GEN_STRIDE;
    const store = this.store;
    if (!store) return;
    const ok = this.disk('delete', () => {
      store.remove(diskId);
      return true;
    });
    if (!ok) this.acked.add(diskId);
  }

  /** Stops the retry timer, tries once more to commit memory rows, checkpoints and closes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.memory.length) this.flush();
    const left = this.memory.filter((r) => r.kind === 'event');
    if (left.length) {
      this.options.logger.error(
        { code: 'OUTBOX_WRITE_FAILED', eventIds: left.map((r) => r.eventId), path: this.path },
        `stopping with ${left.length} event(s) that neither reached the disk (${this.reason ?? 'not writable'}) nor the broker: they are lost`,
      );
    }
    this.memory = [];
    this.closeStore();
  }

  // --- internals ---

  /** Runs a disk operation; a disk fault is handled (logged, degraded) and yields undefined. */
  private disk<T>(op: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      if (!diskFaultOf(err)) throw err;
      this.onFault(err, op);
      return undefined;
    }
  }

  private onFault(err: unknown, op: string): void {
    const fault = diskFaultOf(err);
    const code = String((err as { code?: unknown }).code ?? 'error');
    if (fault === 'corrupt' && this.store && !this.replacing) {
      this.replaceStore(`is corrupt (${code}: ${(err as Error).message})`);
      return;
    }
    this.reason = `${code}: ${(err as Error).message}`;
    if (this.writable || !this.faultLogged) {
      this.faultLogged = true;
      this.options.logger.error(
        { code: 'OUTBOX_WRITE_FAILED', reason: code, op, path: this.path },
        `outbox ${this.path}: cannot ${op} (${this.reason}); events are kept in memory (up to ${this.options.memoryMaxRows} rows) and published directly; retrying the disk with backoff`,
      );
    }
    if (this.writable) {
      this.writable = false;
      this.emit('writable', false);
    }
    this.schedule();
  }

  private addToMemory(row: OutboxRow): OutboxAddResult {
    let evicted = 0;
    if (row.kind === 'heartbeat') {
      const before = this.memory.length;
      this.memory = this.memory.filter((r) => r.kind !== 'heartbeat');
      evicted += before - this.memory.length;
    }
    const full = this.memory.length >= this.options.memoryMaxRows;
    while (this.memory.length >= this.options.memoryMaxRows) {
      const victim =
        this.memory.findIndex((r) => r.kind === 'heartbeat') >= 0
          ? this.memory.findIndex((r) => r.kind === 'heartbeat')
          : this.memory.findIndex((r) => r.kind === 'report');
      if (victim >= 0) {
        this.memory.splice(victim, 1);
        evicted++;
        continue;
      }
      if (row.kind !== 'event') return { id: null, evicted, full, memory: true };
      const [dropped] = this.memory.splice(0, 1);
      this.lost++;
      this.options.logger.error(
        { code: 'OUTBOX_WRITE_FAILED', eventId: dropped!.eventId, memoryMaxRows: this.options.memoryMaxRows },
        'outbox: disk refuses writes and the memory queue is full of events: the oldest event is dropped',
      );
    }
    const id = MEM_BASE + ++this.memorySeq;
    this.memory.push({ ...row, id });
    return { id, evicted, full, memory: true };
  }

  /** Commits memory rows (and pending deletes) to the disk, in order. True when all went. */
  private flush(): boolean {
    if (!this.store) this.tryOpenStore(false);
    const store = this.store;
    if (!store) return false;
    for (const id of [...this.acked]) {
      const ok = this.disk('delete', () => {
        store.remove(id);
        return true;
      });
      if (!ok) return false;
      this.acked.delete(id);
    }
    // nothing to move, but the disk refused before: prove it takes a write again
    if (
      !this.writable &&
      this.memory.length === 0 &&
      !this.disk('write', () => {
        store.probe();
        return true;
      })
    ) {
      return false;
    }
    let moved = 0;
    while (this.memory.length) {
      const r = this.memory[0]!;
      const res = this.disk('write', () => store.add(r.kind, r.topic, r.payload, r.createdAtMs, r.eventId));
      if (!res) return false;
      this.memory.shift();
      if (res.id !== null) this.alias.set(r.id, res.id + this.generation * GEN_STRIDE);
      moved++;
    }
    this.recovered(moved);
    return true;
  }

  private recovered(moved: number): void {
    if (this.writable) return;
    this.writable = true;
    this.faultLogged = false;
    this.attempt = 0;
    this.options.logger.warn(
      { code: 'OUTBOX_WRITABLE', moved, path: this.path, was: this.reason },
      `outbox ${this.path} takes writes again; ${moved} row(s) held in memory are now on disk`,
    );
    this.reason = null;
    this.emit('writable', true);
    // moved rows got ids below the publisher's cursor
    this.emit('rewind');
  }

  private tryOpenStore(atStart: boolean, movedAside = false): void {
    let store: OutboxStore;
    try {
      store = new OutboxStore(this.options.stateDir, { maxRows: this.options.maxRows });
    } catch (err) {
      const cause = (err as Error).cause ?? err;
      const fault = diskFaultOf(cause);
      if (fault === 'corrupt' && !movedAside) {
        this.moveAside(`is corrupt (${(cause as { code?: string }).code})`);
        this.tryOpenStore(atStart, true);
        return;
      }
      if (fault === null || !this.dirIsOurs()) throw err;
      this.onFault(cause, atStart ? 'open the outbox' : 'reopen the outbox');
      return;
    }
    this.store = store;
    this.storeId = this.fileId();
    if (atStart) this.options.logger.info({ path: this.path, depth: store.depth }, 'outbox open');
  }

  /** EACCES is someone's configuration; EROFS/ENOSPC are the disk. */
  private dirIsOurs(): boolean {
    try {
      accessSync(this.options.stateDir, constants.W_OK);
      return true;
    } catch (err) {
      return diskFaultOf(err) !== null;
    }
  }

  private fileId(): { dev: number; ino: number } | null {
    const st: Stats | undefined = statSync(this.path, { throwIfNoEntry: false });
    return st ? { dev: st.dev, ino: st.ino } : null;
  }

  /** The file was deleted or replaced under us: SQLite would keep writing to a ghost. */
  private checkFile(): void {
    if (!this.store || !this.storeId) return;
    let now: { dev: number; ino: number } | null;
    try {
      now = this.fileId();
    } catch {
      return; // cannot stat: the next write will tell
    }
    if (now && now.dev === this.storeId.dev && now.ino === this.storeId.ino) return;
    this.replaceStore(now ? 'replaced by another file while running' : 'deleted while running');
  }

  /**
   * Reads every row the old handle still can, moves the old file aside (when it is still
   * there), opens a fresh one and commits the rows to it. What could not be read is lost,
   * logged and counted.
   */
  private replaceStore(why: string): void {
    this.replacing = true;
    try {
      this.replaceStoreNow(why);
    } finally {
      this.replacing = false;
    }
  }

  private replaceStoreNow(why: string): void {
    const old = this.store!;
    const oldBase = this.generation * GEN_STRIDE;
    const expected = old.depth - this.acked.size;
    const rescued: OutboxRow[] = [];
    try {
      let after = 0;
      for (;;) {
        const batch = old.peek(after, 500);
        if (!batch.length) break;
        for (const r of batch) if (!this.acked.has(r.id)) rescued.push(r);
        after = batch[batch.length - 1]!.id;
      }
    } catch {
      // corrupt pages: keep what was read before the error
    }
    this.closeStore();
    this.acked.clear();
    this.generation++;
    if (existsSync(this.path)) this.moveAside(why);
    const lost = Math.max(0, expected - rescued.length);
    this.lost += lost;
    this.options.logger.error(
      { code: 'OUTBOX_CORRUPT', path: this.path, rescued: rescued.length, lost },
      `outbox ${this.path} ${why}: opened a fresh one; ${rescued.length} queued row(s) recovered, ${lost} lost`,
    );
    this.tryOpenStore(false);
    for (const r of rescued) {
      const res = this.add(r.kind, r.topic, r.payload, r.createdAtMs, r.eventId);
      if (res.id !== null) this.alias.set(r.id + oldBase, res.id);
    }
    this.emit('rewind');
  }

  private moveAside(why: string): void {
    const stamp = new Date(this.options.clock.now()).toISOString().replace(/[:.]/g, '-');
    const target = join(this.options.stateDir, `outbox.corrupt-${stamp}.sqlite`);
    try {
      renameSync(this.path, target);
      for (const suffix of ['-wal', '-shm']) {
        if (existsSync(this.path + suffix)) renameSync(this.path + suffix, target + suffix);
      }
      this.options.logger.error(
        { code: 'OUTBOX_CORRUPT', path: this.path, movedTo: target },
        `outbox ${this.path} ${why}: moved aside to ${target}; a fresh outbox is opened`,
      );
    } catch (err) {
      this.onFault(err, `move the corrupt outbox aside (${why})`);
    }
  }

  private closeStore(): void {
    const store = this.store;
    this.store = null;
    this.storeId = null;
    if (!store) return;
    try {
      store.close();
    } catch {
      // closing a file on a dead disk: nothing more to save
    }
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    const delay = this.writable
      ? (this.options.checkIntervalMs ?? 5000)
      : backoffDelay(this.options.retry, this.attempt++);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.closed) return;
      this.checkFile();
      if (!this.writable || this.memory.length || this.acked.size) this.flush();
      this.schedule();
    }, delay);
    this.timer.unref();
  }
}
